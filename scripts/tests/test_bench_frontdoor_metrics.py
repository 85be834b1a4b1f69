"""The bench reads /metrics through the real front door: nginx with llm_frontdoor's own templates.

The front door serves /metrics only to `llm_frontdoor_metrics_allowed` and only with a client
key (and swaps the key for the engine's). Behind it a stand-in for vLLM's HTTP surface (streamed
completions and a /metrics of vLLM's sample names that counts what it served): not a model, it
exists so the counters move with the bench's own requests.
"""

from __future__ import annotations

import asyncio
import csv
import importlib.util
import json
import re
import shutil
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import jinja2
import pytest
import yaml
from aimachine.bench.cli import main
from aiohttp import web
from conftest import free_port
from test_bench_tls import make_pki

pytestmark = pytest.mark.e2e

ROLE = Path(__file__).resolve().parents[2] / "roles" / "llm_frontdoor"
NGINX = shutil.which("nginx") or "/usr/sbin/nginx"
JS_MODULE = Path("/usr/lib/nginx/modules/ngx_http_js_module.so")
MODEL = "stand-in"
CLIENT_KEY = "client-key-" + "c" * 32
UPSTREAM_KEY = "upstream-key-" + "u" * 32


class StandIn:
    """vLLM's endpoints as the bench uses them, in a thread; /metrics counts what it served."""

    def __init__(self) -> None:
        self.finished = 0
        self.ttft_sum = 0.0
        self.metrics_auth: list[str | None] = []
        self.port = free_port()
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    async def _models(self, _: web.Request) -> web.Response:
        return web.json_response({"object": "list", "data": [{"id": MODEL, "owned_by": "vllm"}]})

    async def _completions(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        for i in range(int(body.get("max_tokens", 4))):
            chunk = {"choices": [{"index": 0, "text": f" t{i}", "finish_reason": None}]}
            await response.write(f"data: {json.dumps(chunk)}\n\n".encode())
        usage = {"prompt_tokens": 10, "completion_tokens": body.get("max_tokens", 4), "total_tokens": 14}
        await response.write(
            f"data: {json.dumps({'choices': [], 'usage': usage})}\n\ndata: [DONE]\n\n".encode()
        )
        self.finished += 1
        self.ttft_sum += 0.01
        return response

    async def _metrics(self, request: web.Request) -> web.Response:
        self.metrics_auth.append(request.headers.get("Authorization"))
        labels = f'engine="0",model_name="{MODEL}"'
        text = (
            "# TYPE vllm:request_success_total counter\n"
            f'vllm:request_success_total{{{labels},finished_reason="length"}} {float(self.finished)}\n'
            "# TYPE vllm:time_to_first_token_seconds histogram\n"
            f"vllm:time_to_first_token_seconds_sum{{{labels}}} {self.ttft_sum}\n"
            f"vllm:time_to_first_token_seconds_count{{{labels}}} {float(self.finished)}\n"
        )
        return web.Response(text=text, content_type="text/plain")

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        app = web.Application()
        app.router.add_get("/v1/models", self._models)
        app.router.add_post("/v1/completions", self._completions)
        app.router.add_get("/metrics", self._metrics)
        runner = web.AppRunner(app)
        self._loop.run_until_complete(runner.setup())
        self._loop.run_until_complete(web.TCPSite(runner, "127.0.0.1", self.port).start())
        self._ready.set()
        self._loop.run_forever()
        self._loop.run_until_complete(runner.cleanup())

    def __enter__(self) -> StandIn:
        self._thread.start()
        self._ready.wait(10)
        return self

    def __exit__(self, *_: object) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)


_spec = importlib.util.spec_from_file_location(
    "llm_frontdoor_filters", ROLE / "filter_plugins" / "llm_frontdoor.py"
)
_FILTERS = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_FILTERS)


def _render(name: str, variables: dict) -> str:
    env = jinja2.Environment(undefined=jinja2.StrictUndefined, keep_trailing_newline=True)
    env.filters["comment"] = lambda text: "#\n# " + str(text) + "\n#"
    env.filters["regex_escape"] = re.escape
    env.filters["bool"] = lambda value: str(value).lower() in ("1", "true", "yes", "on")
    return env.from_string((ROLE / "templates" / name).read_text(encoding="utf-8")).render(**variables)


@contextmanager
def front_door(work: Path, upstream_port: int, metrics_allowed: list[str]) -> Iterator[tuple[str, Path]]:
    """nginx on a free loopback port with the role's frontdoor.conf and api-keys.conf, rendered here."""
    if not Path(NGINX).exists():
        pytest.skip("nginx is not installed (apt-get install nginx-light)")
    work.mkdir(parents=True, exist_ok=True)
    ca, cert, key = make_pki(work)
    port = free_port()
    # The single engine, unrouted: what vars/main.yml derives from these variables.
    routes = _FILTERS.llm_frontdoor_routes([], {"host": "127.0.0.1", "port": upstream_port}, "8m")
    variables = yaml.safe_load((ROLE / "defaults" / "main.yml").read_text(encoding="utf-8")) | {
        "__llm_frontdoor_routes": routes,
        "__llm_frontdoor_routed": False,
        "__llm_frontdoor_body_limit": routes[0]["limit"],
        "ansible_managed": "Ansible managed (rendered by test_bench_frontdoor_metrics.py)",
        "llm_frontdoor_port": port,
        "llm_frontdoor_upstream_host": "127.0.0.1",
        "llm_frontdoor_upstream_port": upstream_port,
        "llm_frontdoor_api_keys": [{"name": "bench", "key": CLIENT_KEY}],
        "llm_frontdoor_metrics_allowed": metrics_allowed,
        "__llm_frontdoor_upstream_key": UPSTREAM_KEY,
        "__llm_frontdoor_keys_file": str(work / "api-keys.conf"),
        "__llm_frontdoor_ipv6": False,
        "__llm_frontdoor_cert": str(cert),
        "__llm_frontdoor_key": str(key),
        "__llm_frontdoor_access_log": str(work / "access.log"),
        "__llm_frontdoor_error_log": str(work / "error.log"),
    }
    (work / "api-keys.conf").write_text(_render("api-keys.conf.j2", variables))
    site = _render("frontdoor.conf.j2", variables)
    (work / "frontdoor.conf").write_text(site)
    modules = f"load_module {JS_MODULE};\n" if "js_" in site and JS_MODULE.exists() else ""
    temp = "".join(
        f"{kind}_temp_path {work}/{kind};\n" for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    (work / "nginx.conf").write_text(
        f"{modules}daemon off;\nworker_processes 1;\npid {work}/nginx.pid;\n"
        f"error_log {work}/nginx-error.log;\nevents {{ worker_connections 128; }}\n"
        f"http {{\n{temp}include {work}/frontdoor.conf;\n}}\n"
    )
    proc = subprocess.Popen(
        [NGINX, "-p", str(work), "-c", str(work / "nginx.conf")],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                pytest.fail(f"nginx did not start: {proc.stderr.read().decode(errors='replace')[-2000:]}")
            with socket.socket() as sock:
                if sock.connect_ex(("127.0.0.1", port)) == 0:
                    break
            time.sleep(0.05)
        yield f"https://127.0.0.1:{port}", ca
    finally:
        proc.send_signal(signal.SIGQUIT)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _bench(base: str, ca: Path, out: Path, monkeypatch) -> dict:
    monkeypatch.setenv("OPENAI_API_KEY", CLIENT_KEY)
    args = ["--base-url", base, "--ca-cert", str(ca), "--workload", "fim", "--output-len", "4"]
    args += ["--concurrency", "1,2", "--num-requests", "3", "--warmup", "1", "--no-progress"]
    assert main([*args, "--no-telemetry", "--output", str(out)]) == 0
    return json.loads((out / "bench.json").read_text())


def test_metrics_through_the_front_door_with_the_key(tmp_path: Path, monkeypatch) -> None:
    with StandIn() as engine, front_door(tmp_path / "fd", engine.port, ["127.0.0.1"]) as (base, ca):
        doc = _bench(base, ca, tmp_path / "out", monkeypatch)
    assert doc["server_metrics"]["url"] == base + "/metrics" and doc["server_metrics"]["available"]
    for level in doc["levels"]:
        server = level["server_metrics"]
        # The server counted exactly the level's requests (the warm-up fell before the first read).
        assert server["requests_finished"] == level["num_requests"] == 3
        assert server["ttft"]["requests"] == 3 and server["ttft"]["mean_ms"] == pytest.approx(10.0)
        assert server["spec_decode"] is None and server["prefix_cache"] is None  # not exposed: None
    # nginx passed the reads on with the engine's key, never the client's.
    assert len(engine.metrics_auth) == 4 and set(engine.metrics_auth) == {f"Bearer {UPSTREAM_KEY}"}
    assert CLIENT_KEY not in (tmp_path / "out" / "bench.json").read_text()
    rows = list(csv.DictReader((tmp_path / "out" / "bench.csv").open()))
    assert [float(row["server_ttft_mean_ms"]) for row in rows] == pytest.approx([10.0, 10.0])
    assert [row["server_prefix_cache_hit_rate"] for row in rows] == ["", ""]


def test_metrics_refused_by_the_allowlist_leave_the_run_whole(tmp_path: Path, monkeypatch, capsys) -> None:
    with StandIn() as engine, front_door(tmp_path / "fd", engine.port, ["192.0.2.1"]) as (base, ca):
        doc = _bench(base, ca, tmp_path / "out", monkeypatch)
    source = doc["server_metrics"]
    assert not source["available"] and "403" in source["reason"]
    assert "llm_frontdoor_metrics_allowed" in source["reason"]
    assert [lv["server_metrics"] for lv in doc["levels"]] == [None, None]
    assert all(lv["summary"]["completed"] == 3 for lv in doc["levels"])
    assert engine.metrics_auth == []  # nginx answered itself
    assert "server metrics: none read" in capsys.readouterr().err
