"""The gateway over two appliance containers: spread, failover, fallback, usage log.

Runs on the controller against the gateway container; backends are stopped and started with
`docker exec` (bounded waits; everything is restarted at the end of each test).
"""

from __future__ import annotations

import json
import subprocess
import time

import pytest

testinfra_hosts = ["ansible://aimachine-gw-gateway"]

GATEWAY = "aimachine-gw-gateway"
BACKENDS = ["aimachine-gw-app1", "aimachine-gw-app2"]
STANDIN = "http://127.0.0.1:18600/v1"
URL = "http://127.0.0.1:4000/v1/chat/completions"
ENV_FILE = "/etc/aimachine/gateway/aimachine-gateway.env"


def _docker(container: str, *argv: str, check: bool = True) -> str:
    done = subprocess.run(
        ["docker", "exec", container, *argv], capture_output=True, text=True, timeout=180, check=False
    )
    if check and done.returncode != 0:
        pytest.fail(f"{container}: {' '.join(argv)} failed: {done.stderr}")
    return done.stdout


def _master_key(host) -> str:
    with host.sudo():
        text = host.file(ENV_FILE).content_string
    for line in text.splitlines():
        if line.startswith("LITELLM_MASTER_KEY="):
            return line.split("=", 1)[1]
    pytest.fail(f"{ENV_FILE} has no LITELLM_MASTER_KEY")


def _ask(host, content: str = "def add(a, b):", max_tokens: int = 4) -> dict:
    """One streamed chat completion through the gateway: status, backend, whether it finished."""
    body = json.dumps(
        {
            "model": "coder",
            "stream": True,
            "max_tokens": max_tokens,
            "messages": [{"role": "user", "content": content}],
        }
    )
    key = _master_key(host)
    # The body has no single quote, so the shell passes it through unchanged.
    out = host.run(
        f"printf '%s' '{body}' | curl -sS -m 120 -D - -o /tmp/gw-body "
        f"-H 'Authorization: Bearer {key}' -H 'Content-Type: application/json' --data-binary @- {URL}"
        "; echo; cat /tmp/gw-body"
    )
    text = out.stdout
    status = int(text.split(" ", 2)[1]) if text.startswith("HTTP/") else 0
    headers = {
        line.split(":", 1)[0].lower(): line.split(":", 1)[1].strip()
        for line in text.splitlines()
        if ":" in line and not line.startswith("data:")
    }
    return {
        "status": status,
        "backend": headers.get("x-litellm-model-id", ""),
        "api_base": headers.get("x-litellm-model-api-base", ""),
        "done": "data: [DONE]" in text,
        "error": "" if status == 200 else text[-400:],
    }


def _wait_backend(container: str, up: bool) -> None:
    """Wait (bounded) until the engine on a backend answers /health, or no longer does."""
    for _ in range(60):
        code = _docker(
            container,
            "curl",
            "-s",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            "http://127.0.0.1:8000/health",
            check=False,
        )
        if (code == "200") == up:
            return
        time.sleep(2)
    pytest.fail(f"{container}: engine did not become {'ready' if up else 'unreachable'}")


def _set_backends(running: list[str]) -> None:
    for container in BACKENDS:
        verb = "start" if container in running else "stop"
        _docker(container, "systemctl", verb, "aimachine-llm")
    for container in BACKENDS:
        _wait_backend(container, container in running)


@pytest.fixture
def all_backends_back():
    yield
    _set_backends(BACKENDS)


# systemd-analyze security of the unit (Debian 12): measured 1.5 (docs/security.md).
MAX_EXPOSURE = 3.0


def test_unit_exposure(exposure):
    score, report = exposure("aimachine-gateway.service")
    assert score <= MAX_EXPOSURE, report[-3000:]


def test_unit_runs_hardened_as_its_own_user(host):
    service = host.service("aimachine-gateway")
    assert service.is_running and service.is_enabled
    pid = host.check_output("systemctl show -p MainPID --value aimachine-gateway")
    assert host.check_output(f"ps -o user= -p {pid}").strip() == "aimachine-gateway"
    props = host.check_output(
        "systemctl show -p NoNewPrivileges -p ProtectSystem -p PrivateTmp -p User aimachine-gateway"
    )
    assert "NoNewPrivileges=yes" in props and "ProtectSystem=strict" in props and "PrivateTmp=yes" in props
    with host.sudo():
        env = host.file(ENV_FILE)
        assert env.user == "root" and env.mode == 0o600
        config = host.file("/etc/aimachine/gateway/config.yaml").content_string
    assert _master_key(host) not in config and "os.environ/LITELLM_MASTER_KEY" in config
    listeners = [line.split()[3] for line in host.check_output("ss -Htln").splitlines()]
    assert "127.0.0.1:4000" in listeners and "0.0.0.0:4000" not in listeners


def test_requests_spread_over_both_backends(host):
    answers = [_ask(host) for _ in range(10)]
    assert all(a["status"] == 200 and a["done"] for a in answers), answers
    used = {a["backend"] for a in answers}
    assert used == set(BACKENDS), f"backends used: {used}"


def test_one_backend_stopped_clients_see_no_errors(host, all_backends_back):
    _set_backends([BACKENDS[1]])
    answers = [_ask(host) for _ in range(8)]
    assert all(a["status"] == 200 and a["done"] for a in answers), answers
    assert {a["backend"] for a in answers} == {BACKENDS[1]}


def test_both_backends_stopped_the_fallback_answers(host, all_backends_back):
    _set_backends([])
    answers = [_ask(host) for _ in range(3)]
    assert all(a["status"] == 200 and a["done"] for a in answers), answers
    assert all(a["api_base"] == STANDIN for a in answers), answers


def test_too_long_a_prompt_goes_to_the_fallback(host):
    answer = _ask(host, content=" ".join(["word"] * 800))
    assert answer["status"] == 200 and answer["done"], answer
    assert answer["api_base"] == STANDIN


def test_usage_is_logged_per_key_without_the_key(host):
    with host.sudo():
        journal = host.check_output("journalctl -u aimachine-gateway -o cat --no-pager")
    prefix = "aimachine-usage "
    lines = [
        json.loads(line[len(prefix) :]) for line in journal.splitlines() if line.startswith(prefix + "{")
    ]
    served = [r for r in lines if r["outcome"] == "success" and r["key_alias"] == "master"]
    assert {r["backend"] for r in served} >= set(BACKENDS), {r["backend"] for r in served}
    assert all(r["completion_tokens"] for r in served)
    assert _master_key(host) not in journal
