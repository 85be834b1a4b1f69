"""The engine's memory caps and its watchdog (issue 18, item 2), on the converged appliance.

Last of the default tests on purpose: the watchdog test stops the engine (SIGSTOP: it neither
generates nor answers /health) and checks the watchdog's own unit restarts it, saying why.
"""

import json
import time

import pytest

SERVICE = "aimachine-llm"
WATCHDOG = "aimachine-llm-watchdog"
ENV_FILE = "/etc/aimachine/aimachine-llm.env"


def _show(host, unit, *props):
    out = host.check_output(f"systemctl show {unit} " + " ".join(f"-p {p}" for p in props))
    return dict(line.split("=", 1) for line in out.splitlines())


def _main_pid(host):
    return int(_show(host, SERVICE, "MainPID")["MainPID"])


def test_engine_memory_is_capped_from_the_hosts_ram(host):
    mem_kb = next(
        int(line.split()[1])
        for line in host.file("/proc/meminfo").content_string.splitlines()
        if line.startswith("MemTotal:")
    )
    props = _show(host, SERVICE, "MemoryHigh", "MemoryMax")
    for prop, share in (("MemoryHigh", 0.75), ("MemoryMax", 0.85)):
        assert int(props[prop]) == int(mem_kb // 1024 * share) * 1024 * 1024, props


def test_the_embedders_watchdog_probes_with_an_embedding(host):
    """An embedding model answers /v1/completions with 404: its watchdog asks for a vector instead."""
    unit = "aimachine-llm-embed-watchdog"
    if not host.file(f"/etc/systemd/system/{unit}.service").exists:
        pytest.skip("no embedding model served here (one-model scenarios)")
    exec_start = _show(host, f"{unit}.service", "ExecStart")["ExecStart"]
    assert "--probe embeddings" in exec_start, exec_start
    with host.sudo():
        host.check_output(f"systemctl start {unit}.service")
        journal = host.check_output(f"journalctl -u {unit} --no-pager -o cat")
    assert "embedded 1 text in" in journal, journal[-2000:]


def test_watchdog_timer_probes_with_a_real_generation(host):
    assert host.service(f"{WATCHDOG}.timer").is_enabled
    assert host.service(f"{WATCHDOG}.timer").is_running
    exec_start = _show(host, f"{WATCHDOG}.service", "ExecStart")["ExecStart"]
    model = json.loads(host.check_output("curl -sf http://127.0.0.1:8000/v1/models"))["data"][0]["id"]
    assert f"--env-file {ENV_FILE}" in exec_start and f"--model {model}" in exec_start, exec_start
    with host.sudo():
        key = next(
            line.split("=", 1)[1]
            for line in host.file(ENV_FILE).content_string.splitlines()
            if line.startswith("AIMACHINE_API_KEY=")
        )
        # The timer has run since the converge (every 60 s) and found the engine generating.
        host.check_output(f"systemctl start {WATCHDOG}.service")
        journal = host.check_output(f"journalctl -u {WATCHDOG} --no-pager -o cat")
    assert key not in exec_start and key not in journal
    assert "generated 1 token in" in journal, journal[-2000:]


def test_watchdog_restarts_an_engine_that_no_longer_generates(host):
    before = _main_pid(host)
    with host.sudo():
        host.check_output(f"kill -STOP {before}")
        try:
            # Two failed probes in a row (the timer may have counted one already): at most 4 runs.
            for _ in range(4):
                host.run(f"systemctl start {WATCHDOG}.service")
                if _main_pid(host) not in (before, 0):
                    break
            after = _main_pid(host)
        finally:
            host.run(f"kill -CONT {before}")
        journal = host.check_output(f"journalctl -u {WATCHDOG} --no-pager -o cat")
    assert after not in (before, 0), "the watchdog did not restart the stopped engine"
    assert f"restarting {SERVICE}.service: no answer to a 1-token completion within" in journal, journal[
        -3000:
    ]
    assert "2 probes in a row" in journal
    # The restarted engine serves again.
    deadline = time.monotonic() + 180
    while True:
        got = host.run("curl -sf http://127.0.0.1:8000/v1/models")
        if got.rc == 0 and json.loads(got.stdout)["data"]:
            break
        assert time.monotonic() < deadline, "the restarted engine did not come back"
        time.sleep(2)
