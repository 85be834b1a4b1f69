"""The front door, seen from the controller as a LAN client and from inside the host.

nginx with TLS (the generated CA, copied to the controller), the API key on every route, only
/v1/* and /health proxied, /metrics only from loopback, an nftables allowlist; and the key itself
nowhere but the two root-only files that must hold it. In the default scenario the host role
serves three tiny models (molecule/default/host_vars: chat, autocomplete, embeddings), one
llm_server instance each, so chat, FIM and embeddings through the door, the routing by model and
a wrong model name are tested here too; where the door has one model (Debian 13), those tests skip.
"""

import concurrent.futures
import http.client
import json
import os
import socket
import ssl
import subprocess
import time
from pathlib import Path

import pytest

PORT = 8443
ENGINE_PORT = 8000
# The default scenario's other served models (molecule/default/host_vars), their engines' ports
# (vm_llm_aimachine_port + 1, + 2) and limits: the tiny embedding model's 2,048 tokens x 32 bytes +
# 64 KiB; the chat and autocomplete models' 4,096 tokens x 32 + 64 KiB.
AUTOCOMPLETE_MODEL = "tiny-autocomplete"
AUTOCOMPLETE_PORT = 8001
EMBED_MODEL = "tiny-embed"
EMBED_PORT = 8002
EMBED_BODY_LIMIT = 2048 * 32 + 65536
CHAT_BODY_LIMIT = 4096 * 32 + 65536
# Files that must hold the key, root-only: the engine's EnvironmentFile and nginx's key map.
KEY_FILES = {"/etc/aimachine/aimachine-llm.env", "/etc/aimachine/frontdoor/api-keys.conf"}
OUTSIDE_NET = "198.18.71."  # molecule.yml's network outside the allowlist (default scenario only)
# nginx with the hardening drop-in, and the oneshot unit that loads the nftables table (both root:
# systemd_sandbox's case does not apply to them). Measured 2.5 and 1.8 (docs/security.md).
MAX_EXPOSURE = {"nginx.service": 3.0, "aimachine-frontdoor-firewall.service": 3.0}


def _secrets(host) -> Path:
    base = Path(os.environ["MOLECULE_EPHEMERAL_DIRECTORY"]) / "secrets"
    name = getattr(host.backend, "host", None)
    if name and (base / name / "api_key").exists():
        return base / name
    found = sorted(p.parent for p in base.glob("*/api_key"))
    assert len(found) == 1, f"expected one host's secrets under {base}, found {found}"
    return found[0]


@pytest.fixture(scope="module")
def key(host) -> str:
    return (_secrets(host) / "api_key").read_text().strip()


@pytest.fixture(scope="module")
def ca(host) -> str:
    path = _secrets(host) / "frontdoor-ca.crt"
    assert path.exists(), f"the play did not copy the front door's CA to {path}"
    return str(path)


@pytest.fixture(scope="module")
def addresses(host) -> list[str]:
    return host.check_output("hostname -I").split()


@pytest.fixture(scope="module")
def lan_address(addresses) -> str:
    """The container's address on docker's default bridge (172.16.0.0/12: in the allowlist)."""
    lan = [a for a in addresses if a.startswith("172.")]
    assert lan, addresses
    return lan[0]


def _request(address, ca, method, path, *, key=None, body=None, authorization=None):
    """One HTTPS request with the exact path given (no client-side normalisation)."""
    context = ssl.create_default_context(cafile=ca)
    conn = http.client.HTTPSConnection(address, PORT, context=context, timeout=60)
    headers = {"Content-Type": "application/json"}
    if authorization is not None:
        headers["Authorization"] = authorization
    elif key is not None:
        headers["Authorization"] = f"Bearer {key}"
    try:
        conn.request(method, path, body=json.dumps(body) if body is not None else None, headers=headers)
        resp = conn.getresponse()
        return resp.status, dict(resp.getheaders()), resp.read()
    finally:
        conn.close()


def _model(lan_address, ca, key) -> str:
    status, _, body = _request(lan_address, ca, "GET", "/v1/models", key=key)
    assert status == 200, body
    return json.loads(body)["data"][0]["id"]


ROUTES = [
    ("GET", "/v1/models"),
    ("POST", "/v1/chat/completions"),
    ("POST", "/v1/completions"),
    ("POST", "/v1/embeddings"),
    ("GET", "/health"),
    ("GET", "/metrics"),
    ("GET", "/docs"),
    ("GET", "/openapi.json"),
    ("GET", "/"),
    ("GET", "/v1/../docs"),
    ("GET", "/no/such/route"),
]


def _bad_authorizations(key):
    return {
        "none": None,
        "wrong key": "Bearer " + "x" * 48,
        "key with its case flipped": "Bearer " + key.swapcase(),
        "key with a character more": f"Bearer {key}x",
        "key without Bearer": key,
        "Bearer only": "Bearer ",
    }


@pytest.mark.parametrize(("method", "path"), ROUTES, ids=[f"{m} {p}" for m, p in ROUTES])
def test_every_route_refuses_a_missing_or_wrong_key(lan_address, ca, key, method, path):
    for label, authorization in _bad_authorizations(key).items():
        status, headers, body = _request(lan_address, ca, method, path, authorization=authorization)
        assert status == 401, f"{label}: {method} {path} gave {status} {body[:200]!r}"
        assert json.loads(body)["error"]["code"] == "invalid_api_key", label
        assert headers.get("WWW-Authenticate", "").startswith("Bearer"), label


def test_models_through_tls_with_the_key(lan_address, ca, key):
    status, headers, body = _request(lan_address, ca, "GET", "/v1/models", key=key)
    assert status == 200, body
    assert json.loads(body)["data"], body
    assert headers.get("Server") == "nginx"  # server_tokens off: no version


def test_certificate_is_checked_not_skipped(lan_address):
    """Without the CA the client must refuse the connection: the certificate is not a public one."""
    with pytest.raises(ssl.SSLCertVerificationError):
        _request(lan_address, None, "GET", "/health")


def test_streamed_chat_completion_through_the_front_door(lan_address, ca, key):
    context = ssl.create_default_context(cafile=ca)
    conn = http.client.HTTPSConnection(lan_address, PORT, context=context, timeout=120)
    body = {
        "model": _model(lan_address, ca, key),
        "messages": [{"role": "user", "content": "def add(a, b):"}],
        # Enough tokens that generating them takes well over the 0.05 s checked below (16 took
        # 0.049 s once on a fast run: a flake, not buffering).
        "max_tokens": 64,
        "stream": True,
    }
    conn.request(
        "POST",
        "/v1/chat/completions",
        body=json.dumps(body),
        headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
    )
    resp = conn.getresponse()
    assert resp.status == 200
    assert resp.getheader("Content-Type", "").startswith("text/event-stream")
    # Unbuffered: the body comes chunked, event by event, not as one buffered block.
    assert resp.getheader("Transfer-Encoding") == "chunked"
    events, arrivals = [], []
    while raw := resp.readline():  # http.client undoes the chunking; b"" at the end
        line = raw.decode().strip()
        if line.startswith("data: "):
            events.append(line)
            arrivals.append(time.monotonic())
    conn.close()
    chunks = [json.loads(e[6:]) for e in events if e != "data: [DONE]"]
    text = "".join((c["choices"][0]["delta"].get("content") or "") for c in chunks if c.get("choices"))
    assert len(chunks) > 2, events
    assert text, events
    # Token by token: the events arrive as the engine generates them, not in one block at the end.
    assert arrivals[-1] - arrivals[0] > 0.05, arrivals


@pytest.mark.parametrize("path", ["/docs", "/openapi.json", "/", "/v1/../docs", "/v1/%2e%2e/docs", "/redoc"])
def test_engine_routes_are_not_reachable_even_with_the_key(lan_address, ca, key, path):
    status, _, body = _request(lan_address, ca, "GET", path, key=key)
    assert status == 404, (path, status, body[:200])
    assert json.loads(body)["error"]["code"] == "not_found"


def test_metrics_only_from_the_allowed_addresses(host, lan_address, ca, key):
    status, _, body = _request(lan_address, ca, "GET", "/metrics", key=key)
    assert status == 403, body
    assert json.loads(body)["error"]["code"] == "forbidden"
    # From loopback nginx passes it on to the engine. The key goes from the EnvironmentFile to
    # curl through a pipe (printf is a shell builtin): never on a command line.
    with host.sudo():
        out = host.check_output(
            "sh -c '. /etc/aimachine/aimachine-llm.env; "
            'printf "Authorization: Bearer %s\\n" "$AIMACHINE_API_KEY" '
            '| curl -s -w " %{http_code}" --cacert /etc/aimachine/frontdoor/tls/ca.crt -H @- '
            "https://127.0.0.1:8443/metrics'"
        )
    assert not out.endswith((" 401", " 403")), out[-300:]
    assert '"code":"forbidden"' not in out


def test_oversized_request_gets_413(lan_address, ca, key):
    big = {"model": "x", "messages": [{"role": "user", "content": "a" * (9 * 1024 * 1024)}]}
    status, _, body = _request(lan_address, ca, "POST", "/v1/chat/completions", key=key, body=big)
    assert status == 413, body[:200]
    assert json.loads(body)["error"]["code"] == "request_too_large"


def test_a_prompt_the_chat_model_cannot_hold_gets_413_naming_its_limit(lan_address, ca, key):
    """Routed or not (Debian 13 has the single engine), the chat model's body limit follows its
    4,096-token context: the host role passes the served context to the front door (issue 18, item 2)."""
    big = {"model": "aimachine/tiny-qwen2", "messages": [{"role": "user", "content": "a" * CHAT_BODY_LIMIT}]}
    status, _, body = _request(lan_address, ca, "POST", "/v1/chat/completions", key=key, body=big)
    assert status == 413, body[:300]
    error = json.loads(body)["error"]
    assert error["code"] == "request_too_large" and f"{CHAT_BODY_LIMIT} bytes" in error["message"], error


def _connects(address, port, timeout=3.0) -> str:
    try:
        with socket.create_connection((address, port), timeout=timeout):
            return "connected"
    except TimeoutError:
        return "timeout"
    except ConnectionRefusedError:
        return "refused"
    except OSError as err:
        return f"error {err.errno}"


def test_allowlisted_network_reaches_the_front_door(lan_address):
    assert _connects(lan_address, PORT) == "connected"


def test_network_outside_the_allowlist_is_dropped(addresses):
    outside = [a for a in addresses if a.startswith(OUTSIDE_NET)]
    if not outside:
        pytest.skip("this scenario has no network outside the allowlist (the default scenario has)")
    # Dropped by nftables, not refused: the packet never reaches nginx.
    assert _connects(outside[0], PORT) == "timeout"


def test_engine_port_not_reachable_from_outside_the_host(addresses):
    for address in addresses:
        for port in (ENGINE_PORT, AUTOCOMPLETE_PORT, EMBED_PORT):
            assert _connects(address, port) in {"timeout", "refused"}, (address, port)


def test_listeners(host):
    listeners = {line.split()[3] for line in host.check_output("ss -Htln").splitlines()}
    assert f"0.0.0.0:{PORT}" in listeners, listeners
    assert [x for x in listeners if x.endswith(f":{ENGINE_PORT}")] == [f"127.0.0.1:{ENGINE_PORT}"], listeners
    for port in (AUTOCOMPLETE_PORT, EMBED_PORT):
        assert [x for x in listeners if x.endswith(f":{port}")] in ([], [f"127.0.0.1:{port}"]), listeners
    assert not [x for x in listeners if x.endswith(":80")], "the distribution's default site is still there"


def test_nftables_table_holds_the_allowlist(host):
    with host.sudo():
        table = host.check_output("nft list table inet aimachine")
    assert "hook input" in table
    assert f"tcp dport {PORT} ip saddr @frontdoor_clients4 accept" in table
    assert f"tcp dport {PORT} counter packets" in table and "drop" in table
    assert f'tcp dport {ENGINE_PORT} iifname != "lo"' in table
    for net in ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "127.0.0.0/8"):
        assert net in table, net
    assert host.service("aimachine-frontdoor-firewall").is_enabled


@pytest.mark.parametrize("unit", sorted(MAX_EXPOSURE))
def test_frontdoor_unit_exposure(host, exposure, unit):
    score, report = exposure(unit)
    assert score <= MAX_EXPOSURE[unit], report
    service = host.service(unit.removesuffix(".service"))
    assert service.is_running and service.is_enabled  # the firewall's oneshot stays active


def test_frontdoor_files_owner_and_mode(host):
    keys = host.file("/etc/aimachine/frontdoor/api-keys.conf")
    assert (keys.user, keys.group, keys.mode) == ("root", "root", 0o600)
    tls_key = host.file("/etc/aimachine/frontdoor/tls/server.key")
    assert (tls_key.user, tls_key.mode) == ("root", 0o600)
    ca_key = host.file("/etc/aimachine/frontdoor/tls/ca.key")
    assert (ca_key.user, ca_key.mode) == ("root", 0o600)
    assert "Ansible managed" in host.file("/etc/nginx/conf.d/aimachine-frontdoor.conf").content_string


# --- the key itself: only in the 0600 files that must hold it ---------------------------------


def test_controller_keeps_the_key_private(host, key):
    secrets = _secrets(host)
    assert len(key) >= 32
    assert (secrets / "api_key").stat().st_mode & 0o777 == 0o600
    assert secrets.stat().st_mode & 0o777 == 0o700


def test_key_not_in_any_process_arguments(host, key):
    with host.sudo():
        cmdlines = host.check_output("cat /proc/[0-9]*/cmdline | tr '\\0' ' '")
    assert key not in cmdlines
    assert len(cmdlines) > 100  # really read the processes


def test_key_not_in_the_journal_or_nginx_logs(host, key):
    with host.sudo():
        journal = host.check_output("journalctl --no-pager -o cat")
        nginx_logs = host.check_output("cat /var/log/nginx/*.log")
    assert key not in journal
    assert key not in nginx_logs
    # The logs are real: the requests of this module are in them, labelled by key name.
    assert "key=default" in nginx_logs


def test_key_only_in_its_root_only_files(host, key, tmp_path):
    """grep the host's configuration, state, logs and temporary files for the key (the venvs under
    /opt and the mounted caches are left out: gigabytes of wheels)."""
    name = getattr(host.backend, "host", None) or _secrets(host).name
    probe = tmp_path / "probe"
    probe.write_text(key + "\n")
    # docker cp: the key travels as a file, never on a command line.
    subprocess.run(["docker", "cp", str(probe), f"{name}:/root/.aimachine-keyprobe"], check=True)
    try:
        with host.sudo():
            found = host.run(
                "grep -rlF --file=/root/.aimachine-keyprobe --exclude=.aimachine-keyprobe --devices=skip "
                "/etc /var/lib /var/log /var/tmp /var/spool /root /home /tmp /run"
            )
    finally:
        with host.sudo():
            host.run("rm -f /root/.aimachine-keyprobe")
    assert found.rc in (0, 1), found.stderr
    holders = set(found.stdout.split())
    assert holders >= KEY_FILES, holders
    for path in holders:
        mode = host.file(path).mode
        assert mode & 0o077 == 0, f"{path} holds the key and is readable by others (mode {oct(mode)})"
    for path in KEY_FILES:
        f = host.file(path)
        assert (f.user, f.mode) == ("root", 0o600), (path, f.user, oct(f.mode))


def test_rate_limit_answers_429_in_json(lan_address, ca, key):
    """Far above the burst (200) at once, nginx answers 429 for the rest of the key's requests.

    /metrics from this (not allowed) address: the limiter counts it, nginx answers 403 itself,
    so the test is fast whatever the engine's speed; keep-alive connections, no handshake each.
    """
    context = ssl.create_default_context(cafile=ca)
    headers = {"Authorization": f"Bearer {key}"}

    def burst(_):
        conn = http.client.HTTPSConnection(lan_address, PORT, context=context, timeout=60)
        answers = []
        try:
            for _ in range(40):
                conn.request("GET", "/metrics", headers=headers)
                resp = conn.getresponse()
                answers.append((resp.status, resp.getheader("Retry-After"), resp.read()))
        finally:
            conn.close()
        return answers

    with concurrent.futures.ThreadPoolExecutor(max_workers=16) as pool:
        answers = [a for batch in pool.map(burst, range(16)) for a in batch]
    statuses = [a[0] for a in answers]
    assert set(statuses) <= {403, 429}, sorted(set(statuses))
    limited = [a for a in answers if a[0] == 429]
    assert limited, f"no 429 in {len(statuses)} requests"
    _, retry_after, body = limited[0]
    assert json.loads(body)["error"]["code"] == "rate_limit_exceeded"
    assert retry_after == "1"
    # Let the key's bucket fill again (burst / rate seconds) for whatever test comes next.
    time.sleep(200 / 20 + 1)


# --- several models behind one door (the default scenario serves three) -----------------------


def _deployed(host) -> dict:
    """The host role's published fact, as it wrote it to the controller."""
    return json.loads((_secrets(host) / "deployed.json").read_text())


@pytest.fixture(scope="module")
def served(lan_address, ca, key) -> list[str]:
    status, _, body = _request(lan_address, ca, "GET", "/v1/models", key=key)
    assert status == 200, body
    names = [m["id"] for m in json.loads(body)["data"]]
    if EMBED_MODEL not in names:
        pytest.skip(f"one model behind the front door ({names}); the default scenario serves three")
    return names


def test_models_lists_every_served_model(host, lan_address, ca, key, served):
    _, _, body = _request(lan_address, ca, "GET", "/v1/models", key=key)
    cards = json.loads(body)["data"]
    assert [c["id"] for c in cards][1:] == [AUTOCOMPLETE_MODEL, EMBED_MODEL] and len(cards) == 3
    assert [c["max_model_len"] for c in cards] == [4096, 4096, 2048]
    # The same list the host role published, in the same order (the primary chat model first).
    assert [m["name"] for m in _deployed(host)["models"]] == [c["id"] for c in cards]


def test_the_published_fact_names_every_model_its_role_port_and_tokens(host, served):
    deployed = _deployed(host)
    by = {m["name"]: m for m in deployed["models"]}
    assert deployed["model"] == served[0] == deployed["models"][0]["name"]
    assert deployed["base_url"].startswith("https://") and deployed["base_url"].endswith(f":{PORT}/v1")
    assert deployed["key_env"] == "AIMACHINE_API_KEY" and deployed["key_file"].endswith("/api_key")
    assert [(m["role"], m["port"], m["service"]) for m in deployed["models"]] == [
        ("chat", ENGINE_PORT, "aimachine-llm"),
        ("autocomplete", AUTOCOMPLETE_PORT, "aimachine-llm-autocomplete"),
        ("embed", EMBED_PORT, "aimachine-llm-embed"),
    ]
    assert by[AUTOCOMPLETE_MODEL]["fim"]["prefix"] == "<|fim_prefix|>"
    assert "fim" not in by[served[0]] and "dimensions" not in by[AUTOCOMPLETE_MODEL]
    assert by[EMBED_MODEL]["dimensions"] == 64  # the tiny embedding model's hidden size
    assert [m["max_model_len"] for m in deployed["models"]] == [4096, 4096, 2048]
    assert "catalog" not in deployed  # the controller copy leaves the whole catalog out


def test_each_instance_is_its_own_unit_with_its_own_state(host, served):
    for model in _deployed(host)["models"]:
        unit = model["service"]
        assert host.service(unit).is_running and host.service(unit).is_enabled, unit
        suffix = unit.removeprefix("aimachine-llm")
        state = host.file(f"/var/lib/aimachine/server{suffix}")
        assert (state.user, state.mode) == ("aimachine-llm", 0o750), unit
        with host.sudo():
            record = json.loads(
                host.file(f"/var/lib/aimachine/known-good{suffix}/known-good.json").content_string
            )
        assert record["model_path"] == model["model_dir"], unit
        assert host.service(f"{unit}-watchdog.timer").is_enabled, unit
    # The CPU engine has no /v1/embeddings: the embedding model runs the embeddings server.
    exec_start = host.file("/etc/systemd/system/aimachine-llm-embed.service").content_string
    assert (
        "/opt/aimachine/embeddings/embeddings_server.py" in exec_start
        and f"--port {EMBED_PORT}" in exec_start
    )


def test_chat_completion_on_the_chat_model(lan_address, ca, key, served):
    chat = {"model": served[0], "messages": [{"role": "user", "content": "hi"}], "max_tokens": 4}
    status, _, answer = _request(lan_address, ca, "POST", "/v1/chat/completions", key=key, body=chat)
    assert status == 200, answer
    result = json.loads(answer)
    assert result["model"] == served[0] and result["usage"]["completion_tokens"] == 4


def test_fim_on_completions_with_the_autocomplete_models_tokens(host, lan_address, ca, key, served):
    fim = {m["name"]: m for m in _deployed(host)["models"]}[AUTOCOMPLETE_MODEL]["fim"]
    before, after = "def add(a, b):\n    ", "\n\nprint(add(1, 2))\n"
    prompt = f"{fim['prefix']}{before}{fim['suffix']}{after}{fim['middle']}"
    body = {
        "model": AUTOCOMPLETE_MODEL,
        "prompt": prompt,
        "max_tokens": 8,
        "temperature": 0,
        "stop": fim["stop"],
    }
    status, _, answer = _request(lan_address, ca, "POST", "/v1/completions", key=key, body=body)
    assert status == 200, answer
    result = json.loads(answer)
    assert result["model"] == AUTOCOMPLETE_MODEL and isinstance(result["choices"][0]["text"], str)
    assert 1 <= result["usage"]["completion_tokens"] <= 8
    # Each FIM marker is one special token of the model's tokenizer: the same code without them is
    # exactly three tokens shorter.
    plain = dict(body, prompt=before + after)
    status, _, plain_answer = _request(lan_address, ca, "POST", "/v1/completions", key=key, body=plain)
    assert status == 200, plain_answer
    assert result["usage"]["prompt_tokens"] - json.loads(plain_answer)["usage"]["prompt_tokens"] == 3
    # Routed by name: the chat model's tokenizer has no FIM tokens and splits each marker into
    # several pieces, so the same prompt sent to it counts more tokens.
    status, _, chat_answer = _request(
        lan_address, ca, "POST", "/v1/completions", key=key, body=dict(body, model=served[0])
    )
    assert status == 200, chat_answer
    assert json.loads(chat_answer)["usage"]["prompt_tokens"] > result["usage"]["prompt_tokens"]


def test_embeddings_on_the_embedding_model(lan_address, ca, key, served):
    body = {"model": EMBED_MODEL, "input": ["def add(a, b):\n    return a + b", "Grüße"]}
    status, _, answer = _request(lan_address, ca, "POST", "/v1/embeddings", key=key, body=body)
    assert status == 200, answer
    result = json.loads(answer)
    assert result["model"] == EMBED_MODEL
    vectors = [d["embedding"] for d in result["data"]]
    assert [len(v) for v in vectors] == [64, 64]
    assert abs(sum(x * x for x in vectors[0]) - 1.0) < 1e-4
    assert result["usage"]["prompt_tokens"] > 2


def test_a_model_is_not_routed_to_paths_its_role_does_not_serve(lan_address, ca, key, served):
    for model, path in (
        (EMBED_MODEL, "/v1/chat/completions"),
        (EMBED_MODEL, "/v1/completions"),
        (AUTOCOMPLETE_MODEL, "/v1/embeddings"),
    ):
        body = {"model": model, "messages": [{"role": "user", "content": "hi"}], "prompt": "x", "input": "x"}
        status, _, answer = _request(lan_address, ca, "POST", path, key=key, body=body)
        assert status == 400, (model, path, answer)
        assert f"`{model}` does not serve {path}" in json.loads(answer)["error"]["message"]


def test_a_wrong_model_name_gets_404_naming_the_served_models(lan_address, ca, key, served):
    body = {"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]}
    status, _, answer = _request(lan_address, ca, "POST", "/v1/chat/completions", key=key, body=body)
    assert status == 404, answer
    error = json.loads(answer)["error"]
    assert error["code"] == "model_not_found"
    assert error["message"] == f"The model `gpt-4o` does not exist. Served models: {', '.join(served)}."


def test_a_body_too_large_for_its_model_gets_413_naming_the_model_and_its_limit(lan_address, ca, key, served):
    # Within the chat model's limit, over the embedding model's: refused before the engine reads it.
    body = {"model": EMBED_MODEL, "input": "a" * (EMBED_BODY_LIMIT + 1000)}
    assert len(json.dumps(body)) < CHAT_BODY_LIMIT
    status, _, answer = _request(lan_address, ca, "POST", "/v1/embeddings", key=key, body=body)
    assert status == 413, answer[:300]
    message = json.loads(answer)["error"]["message"]
    assert f"Request body too large for model `{EMBED_MODEL}`" in message
    assert (
        f"its limit is {EMBED_BODY_LIMIT} bytes (2048 tokens of context x 32 bytes + 65536 bytes)" in message
    )


def test_health_is_healthy_only_when_every_engine_is(host, lan_address, ca, key, served):
    status, _, body = _request(lan_address, ca, "GET", "/health", key=key)
    assert status == 200, body
    assert json.loads(body) == {"status": "ok", "models": dict.fromkeys(served, "ok")}
    with host.sudo():
        host.check_output("systemctl stop aimachine-llm-embed")
    try:
        status, _, body = _request(lan_address, ca, "GET", "/health", key=key)
        assert status == 503, body
        assert json.loads(body)["models"][EMBED_MODEL] != "ok"
        assert json.loads(body)["models"][served[0]] == "ok"
    finally:
        with host.sudo():
            host.check_output("systemctl start aimachine-llm-embed")
        deadline = time.monotonic() + 120
        while _request(lan_address, ca, "GET", "/health", key=key)[0] != 200:
            assert time.monotonic() < deadline, "the embeddings engine did not come back"
            time.sleep(1)


def test_the_firewall_drops_the_other_engine_ports_too(host, served):
    with host.sudo():
        table = host.check_output("nft list table inet aimachine")
    for port in (AUTOCOMPLETE_PORT, EMBED_PORT):
        assert f'tcp dport {port} iifname != "lo"' in table, port
