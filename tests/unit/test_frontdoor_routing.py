"""The front door's routing by model: the role's real templates and router, rendered by Ansible,
run by this machine's nginx with njs (Debian's libnginx-mod-http-js) in front of small fake
engines that report what reached them. The molecule default scenario checks the same through
the deployed appliance (molecule/default/tests/test_frontdoor.py)."""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import shutil
import socket
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
ROLE = REPO / "roles/llm_frontdoor"
PLAYBOOK = shutil.which("ansible-playbook", path=str(REPO / ".venv/bin")) or shutil.which("ansible-playbook")
NGINX = shutil.which("nginx") or "/usr/sbin/nginx"
NJS = Path("/usr/lib/nginx/modules/ngx_http_js_module.so")
CLIENT_KEY = "c" * 40
UPSTREAM_KEY = "u" * 40

pytestmark = pytest.mark.skipif(
    not (Path(NGINX).exists() and NJS.exists()),
    reason="needs nginx and libnginx-mod-http-js (apt-get install nginx libnginx-mod-http-js)",
)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class FakeEngine(ThreadingHTTPServer):
    """Answers like an engine and says what it got: path, model, body hash and length, key."""

    daemon_threads = True

    def __init__(self, name: str) -> None:
        self.name = name
        self.healthy = True
        super().__init__(("127.0.0.1", 0), _Handler)
        threading.Thread(target=self.serve_forever, daemon=True).start()

    @property
    def port(self) -> int:
        return int(self.server_address[1])


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: FakeEngine

    def log_message(self, *args: object) -> None:
        pass

    def _send(self, status: int, body: dict) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        if self.path == "/health":
            self._send(200 if self.server.healthy else 503, {"engine": self.server.name})
        elif self.path == "/metrics":
            self._send(200, {"metrics_of": self.server.name})
        else:
            self._send(404, {"engine": self.server.name, "path": self.path})

    def do_POST(self) -> None:
        raw = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        body = json.loads(raw)
        seen = {
            "engine": self.server.name,
            "path": self.path,
            "model": body.get("model"),
            "sha256": hashlib.sha256(raw).hexdigest(),
            "length": len(raw),
            "authorization": self.headers.get("Authorization"),
        }
        if not body.get("stream"):
            self._send(200, seen)
            return
        # Server-sent events, 0.3 s apart: through the door they must arrive one by one.
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        for number in range(5):
            event = f"data: {json.dumps({**seen, 'n': number})}\n\n".encode()
            self.wfile.write(f"{len(event):x}\r\n".encode() + event + b"\r\n")
            self.wfile.flush()
            time.sleep(0.3)
        self.wfile.write(b"0\r\n\r\n")


def _render(out: Path, configs: dict[str, dict]) -> None:
    """The role's templates with its defaults and vars, one site file per entry of `configs`."""
    common = {
        "ansible_python_interpreter": sys.executable,
        "__llm_frontdoor_dir": str(out),
        "__llm_frontdoor_access_log": str(out / "access.log"),
        "__llm_frontdoor_error_log": str(out / "error.log"),
        "__llm_frontdoor_cert": str(out / "server.crt"),
        "__llm_frontdoor_key": str(out / "server.key"),
        "llm_frontdoor_api_keys": [{"name": "default", "key": CLIENT_KEY}],
        "llm_frontdoor_upstream_api_key": UPSTREAM_KEY,
    }
    tasks = [
        {
            "ansible.builtin.template": {
                "src": str(ROLE / "templates/api-keys.conf.j2"),
                "dest": f"{out}/api-keys.conf",
            }
        }
    ]
    for name, variables in configs.items():
        for template, suffix in (("frontdoor.conf.j2", "conf"), ("firewall.nft.j2", "nft")):
            tasks.append(
                {
                    "ansible.builtin.template": {
                        "src": str(ROLE / "templates" / template),
                        "dest": f"{out}/{name}.{suffix}",
                    },
                    "vars": variables,
                }
            )
    play = [
        {
            "hosts": "localhost",
            "gather_facts": False,
            "connection": "local",
            "vars_files": [str(ROLE / "defaults/main.yml"), str(ROLE / "vars/main.yml")],
            "tasks": tasks,
        }
    ]
    (out / "play.yml").write_text(json.dumps(play))
    (out / "vars.json").write_text(json.dumps(common))
    done = subprocess.run(
        [PLAYBOOK, "-i", "localhost,", str(out / "play.yml"), "-e", f"@{out}/vars.json"],
        cwd=REPO,
        env=dict(
            os.environ,
            ANSIBLE_CONFIG=str(REPO / "ansible.cfg"),
            ANSIBLE_FILTER_PLUGINS=str(ROLE / "filter_plugins"),
        ),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    # What the role's copy task installs beside the site.
    shutil.copy(ROLE / "files/aimachine-frontdoor.js", out / "aimachine-frontdoor.js")


class Door:
    def __init__(self, out: Path, site: str, port: int) -> None:
        self.out, self.port = out, port
        prefix = out / site
        prefix.mkdir()
        user = "user root;\n" if os.geteuid() == 0 else ""
        (prefix / "nginx.conf").write_text(
            f"load_module {NJS};\n{user}worker_processes 1;\npid {prefix}/nginx.pid;\n"
            f"error_log {prefix}/error.log warn;\nevents {{ worker_connections 128; }}\n"
            f"http {{\n  client_body_temp_path {prefix}/body;\n  proxy_temp_path {prefix}/proxy;\n"
            f"  fastcgi_temp_path {prefix}/fcgi;\n  uwsgi_temp_path {prefix}/uwsgi;\n"
            f"  scgi_temp_path {prefix}/scgi;\n"
            f"  include {out}/{site}.conf;\n}}\n"
        )
        args = [NGINX, "-p", str(prefix), "-c", str(prefix / "nginx.conf"), "-e", str(prefix / "error.log")]
        test = subprocess.run([*args, "-t"], capture_output=True, text=True, check=False)
        assert test.returncode == 0, test.stderr
        self.proc = subprocess.Popen([*args, "-g", "daemon off;"], stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 20
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert time.monotonic() < deadline and self.proc.poll() is None, (
                    prefix / "error.log"
                ).read_text()
                time.sleep(0.1)

    def request(
        self,
        method: str,
        path: str,
        body: object = None,
        key: str | None = CLIENT_KEY,
        raw: bytes | None = None,
    ):
        conn = http.client.HTTPSConnection(
            "127.0.0.1", self.port, context=ssl._create_unverified_context(), timeout=30
        )
        headers = {"Content-Type": "application/json"}
        if key:
            headers["Authorization"] = f"Bearer {key}"
        data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
        try:
            conn.request(method, path, body=data, headers=headers)
            resp = conn.getresponse()
            return resp.status, dict(resp.getheaders()), resp.read()
        finally:
            conn.close()

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=10)


CHAT_LEN, EMBED_LEN = 4096, 256
CHAT_LIMIT = CHAT_LEN * 32 + 65536  # 196,608 bytes
EMBED_LIMIT = EMBED_LEN * 32 + 65536  # 73,728 bytes


def self_signed(out: Path, subject: str, *extensions: str) -> None:
    """A P-256 key and a one-day self-signed certificate for it: out/server.key, out/server.crt."""
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-days",
            "1",
            "-subj",
            subject,
            *extensions,
            "-keyout",
            str(out / "server.key"),
            "-out",
            str(out / "server.crt"),
        ],
        check=True,
        capture_output=True,
    )


@pytest.fixture(scope="module")
def doors(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict]:
    out = tmp_path_factory.mktemp("frontdoor")
    self_signed(out, "/CN=localhost")
    chat, fim, embed = FakeEngine("chat"), FakeEngine("fim"), FakeEngine("embed")
    routed_port, single_port, sized_port = _free_port(), _free_port(), _free_port()
    upstreams = [
        {"name": "tiny-qwen2", "port": chat.port, "role": "chat", "max_model_len": CHAT_LEN},
        {"name": "tiny-fim", "port": fim.port, "role": "autocomplete", "max_model_len": CHAT_LEN},
        {"name": "tiny-embed", "port": embed.port, "role": "embed", "max_model_len": EMBED_LEN},
    ]
    _render(
        out,
        {
            "routed": {"llm_frontdoor_port": routed_port, "llm_frontdoor_upstreams": upstreams},
            "single": {"llm_frontdoor_port": single_port, "llm_frontdoor_upstream_port": chat.port},
            # The default deployment: one engine, its served context passed by the host role.
            "sized": {
                "llm_frontdoor_port": sized_port,
                "llm_frontdoor_upstream_port": chat.port,
                "llm_frontdoor_upstream_max_model_len": CHAT_LEN,
            },
        },
    )
    routed, single = Door(out, "routed", routed_port), Door(out, "single", single_port)
    sized = Door(out, "sized", sized_port)
    try:
        yield {
            "routed": routed,
            "single": single,
            "sized": sized,
            "chat": chat,
            "fim": fim,
            "embed": embed,
            "out": out,
        }
    finally:
        routed.stop()
        single.stop()
        sized.stop()
        for engine in (chat, fim, embed):
            engine.shutdown()


def _json(answer) -> dict:
    return json.loads(answer[2])


def test_each_model_reaches_its_own_engine_with_the_body_intact(doors):
    door = doors["routed"]
    chat = {
        "model": "tiny-qwen2",
        "messages": [{"role": "user", "content": "Grüße, def f(): return 'ok' 🙂"}],
    }
    status, _, body = door.request("POST", "/v1/chat/completions", chat)
    seen = json.loads(body)
    assert status == 200, body
    assert (seen["engine"], seen["path"], seen["model"]) == ("chat", "/v1/chat/completions", "tiny-qwen2")
    sent = json.dumps(chat).encode()
    assert (seen["sha256"], seen["length"]) == (hashlib.sha256(sent).hexdigest(), len(sent))
    # The engine gets the door's own key, never the client's.
    assert seen["authorization"] == f"Bearer {UPSTREAM_KEY}"
    seen = _json(door.request("POST", "/v1/embeddings", {"model": "tiny-embed", "input": ["a", "b"]}))
    assert (seen["engine"], seen["path"]) == ("embed", "/v1/embeddings")
    fill = {
        "model": "tiny-fim",
        "prompt": "<|fim_prefix|>def f():<|fim_suffix|><|fim_middle|>",
        "max_tokens": 8,
    }
    assert _json(door.request("POST", "/v1/completions", fill))["engine"] == "fim"
    # One engine serves the path: a request without `model` goes to it.
    assert _json(door.request("POST", "/v1/embeddings", {"input": "a"}))["engine"] == "embed"


def test_a_wrong_model_name_gets_404_naming_the_served_models(doors):
    status, headers, body = doors["routed"].request(
        "POST", "/v1/chat/completions", {"model": "gpt-4o", "messages": []}
    )
    assert status == 404, body
    assert headers["Content-Type"] == "application/json"
    error = json.loads(body)["error"]
    assert error["code"] == "model_not_found"
    assert (
        error["message"]
        == "The model `gpt-4o` does not exist. Served models: tiny-qwen2, tiny-fim, tiny-embed."
    )


@pytest.mark.parametrize(
    ("path", "body", "status", "says"),
    [
        (
            "/v1/embeddings",
            {"model": "tiny-qwen2", "input": "a"},
            400,
            "`tiny-qwen2` does not serve /v1/embeddings; models that do: tiny-embed",
        ),
        (
            "/v1/chat/completions",
            {"messages": []},
            400,
            "`model` is required; /v1/chat/completions serves: tiny-qwen2",
        ),
        ("/v1/chat/completions", {"model": 7}, 400, "`model` must be a string"),
        ("/v1/completions", "not json", 400, "not valid JSON"),
    ],
)
def test_requests_the_router_cannot_place_get_a_json_error(doors, path, body, status, says):
    raw = body.encode() if isinstance(body, str) else None
    answer = doors["routed"].request("POST", path, body, raw=raw)
    assert answer[0] == status, answer[2]
    assert says in _json(answer)["error"]["message"]


def test_each_model_has_the_body_limit_of_its_context(doors):
    door = doors["routed"]
    # Over the embedding model's limit (256 tokens x 32 + 64 KiB) but within the chat model's.
    request = {"model": "tiny-embed", "input": "x" * (EMBED_LIMIT + 10)}
    text = request["input"]
    status, _, body = door.request("POST", "/v1/embeddings", request)
    assert status == 413, body
    message = json.loads(body)["error"]["message"]
    assert message.startswith(
        f"Request body too large for model `tiny-embed`: {len(json.dumps(request))} bytes,"
    )
    assert f"its limit is {EMBED_LIMIT} bytes (256 tokens of context x 32 bytes + 65536 bytes)" in message
    assert (
        _json(door.request("POST", "/v1/chat/completions", {"model": "tiny-qwen2", "prompt": text}))["engine"]
        == "chat"
    )
    # Over the largest limit: nginx refuses it from its length, before anything reads it.
    status, _, body = door.request(
        "POST", "/v1/chat/completions", {"model": "tiny-qwen2", "prompt": "x" * CHAT_LIMIT}
    )
    assert status == 413
    assert json.loads(body)["error"]["message"] == (
        f"Request body too large (limit {CHAT_LIMIT} bytes, the largest of the served models)."
    )


def test_streams_pass_event_by_event(doors):
    conn = http.client.HTTPSConnection(
        "127.0.0.1", doors["routed"].port, context=ssl._create_unverified_context(), timeout=30
    )
    body = json.dumps({"model": "tiny-qwen2", "messages": [], "stream": True})
    started = time.monotonic()
    conn.request("POST", "/v1/chat/completions", body=body, headers={"Authorization": f"Bearer {CLIENT_KEY}"})
    resp = conn.getresponse()
    assert resp.status == 200 and resp.getheader("Content-Type") == "text/event-stream"
    arrivals = []
    while len(arrivals) < 5:
        line = resp.fp.readline()
        if line.startswith(b"data: "):
            arrivals.append(time.monotonic() - started)
    conn.close()
    # The first event comes before the engine has written the last (0.3 s apart): not buffered.
    assert arrivals[0] < 0.9, arrivals
    assert arrivals[-1] - arrivals[0] > 0.9, arrivals


def test_models_lists_every_served_model(doors):
    answer = _json(doors["routed"].request("GET", "/v1/models"))
    assert [(m["id"], m["max_model_len"], m["object"]) for m in answer["data"]] == [
        ("tiny-qwen2", CHAT_LEN, "model"),
        ("tiny-fim", CHAT_LEN, "model"),
        ("tiny-embed", EMBED_LEN, "model"),
    ]


def test_health_is_ok_only_when_every_engine_is(doors):
    door = doors["routed"]
    assert door.request("GET", "/health")[0] == 200
    doors["embed"].healthy = False
    try:
        status, _, body = door.request("GET", "/health")
    finally:
        doors["embed"].healthy = True
    assert status == 503
    assert json.loads(body) == {
        "status": "unhealthy",
        "models": {"tiny-qwen2": "ok", "tiny-fim": "ok", "tiny-embed": "HTTP 503"},
    }


def test_the_key_is_checked_on_every_route(doors):
    for method, path in [
        ("POST", "/v1/chat/completions"),
        ("POST", "/v1/embeddings"),
        ("GET", "/v1/models"),
        ("GET", "/health"),
        ("GET", "/metrics/tiny-embed"),
        ("GET", "/v1/tokenize"),
    ]:
        for key in (None, "w" * 40):
            answer = doors["routed"].request(method, path, {"model": "tiny-qwen2"}, key=key)
            assert answer[0] == 401, (method, path, key, answer[2])


def test_other_paths_and_methods(doors):
    door = doors["routed"]
    status, headers, _ = door.request("GET", "/v1/chat/completions")
    assert status == 405 and headers["Allow"] == "POST"
    for path in ("/v1/tokenize", "/v1/../docs", "/docs"):
        assert door.request("POST", path, {"model": "tiny-qwen2"})[0] == 404, path
    # /metrics is the first (chat) engine's; /metrics/<name> each model's (from loopback only).
    assert _json(door.request("GET", "/metrics"))["metrics_of"] == "chat"
    assert _json(door.request("GET", "/metrics/tiny-embed"))["metrics_of"] == "embed"


def test_without_upstreams_the_single_engine_takes_every_path_unrouted(doors):
    door = doors["single"]
    # Today's front door: no model check, /v1/models and any /v1 path from the engine itself.
    assert _json(door.request("POST", "/v1/embeddings", {"model": "anything"}))["engine"] == "chat"
    assert _json(door.request("POST", "/v1/tokenize", {"model": "x"}))["path"] == "/v1/tokenize"
    assert door.request("GET", "/v1/models")[0] == 404  # the fake engine has no /v1/models
    site = (doors["out"] / "single.conf").read_text()
    assert "js_" not in site and "client_max_body_size 8388608;" in site


def test_the_single_engine_refuses_a_prompt_its_context_cannot_hold(doors):
    """One engine, no routing: a body over its context's limit gets a JSON 413 naming the limit
    and how it was derived, and never reaches the engine (issue 18, item 2: a 7 MB prompt)."""
    door = doors["sized"]
    fits = {"model": "tiny-qwen2", "prompt": "x" * (CHAT_LIMIT - 200)}
    assert _json(door.request("POST", "/v1/completions", fits))["engine"] == "chat"
    status, headers, body = door.request("POST", "/v1/chat/completions", raw=b"x" * (CHAT_LIMIT + 1))
    assert status == 413 and headers["Content-Type"].startswith("application/json"), (status, body)
    error = json.loads(body)["error"]
    assert error["code"] == "request_too_large"
    assert (
        f"limit {CHAT_LIMIT} bytes: {CHAT_LEN} tokens of context x 32 bytes + 65536 bytes" in error["message"]
    )
    assert door.request("POST", "/v1/completions", raw=b"x" * 7_000_025)[0] == 413
    assert f"client_max_body_size {CHAT_LIMIT};" in (doors["out"] / "sized.conf").read_text()


def test_the_firewall_drops_every_engine_port_from_outside(doors):
    rules = (doors["out"] / "routed.nft").read_text()
    for engine, name in ((doors["chat"], "tiny-qwen2"), (doors["embed"], "tiny-embed")):
        assert (
            f'tcp dport {engine.port} iifname != "lo" counter drop comment "engine {name}: loopback only"'
            in rules
        )
    single = (doors["out"] / "single.nft").read_text()
    assert (
        f'tcp dport {doors["chat"].port} iifname != "lo" counter drop comment "engine: loopback only"'
        in single
    )
