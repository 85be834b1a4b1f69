"""The client against a real HTTP server of known pacing: the synthetic load generator (not a model).

The load generator sends its first output event after --first-delay-ms and then one event every
--interval-ms, so TTFT, TPOT and ITL have known true values the client must measure.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
from aimachine.bench.cli import main
from conftest import free_port

pytestmark = pytest.mark.e2e


@contextmanager
def loadgen(*args: str) -> Iterator[str]:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "aimachine.bench.loadgen", "--port", str(port), *args],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if httpx.get(base + "/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.1)
        else:
            pytest.fail("load generator did not start")
        yield base
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=10)


def bench(tmp_path: Path, base: str, *args: str) -> dict:
    out = tmp_path / "out"
    code = main(
        [
            "--base-url",
            base,
            "--dataset",
            "coding",
            "--no-progress",
            "--no-telemetry",
            "--output",
            str(out),
            *args,
        ]
    )
    assert code == 0
    return json.loads((out / "bench.json").read_text())


def test_client_measures_known_pacing(tmp_path: Path) -> None:
    with loadgen("--first-delay-ms", "100", "--interval-ms", "20") as base:
        doc = bench(
            tmp_path, base, "--output-len", "11", "--concurrency", "1", "--num-requests", "4", "--warmup", "1"
        )
    summary = doc["levels"][0]["summary"]
    assert summary["completed"] == 4
    # True values: TTFT 100 ms (+ a loopback round trip), TPOT = ITL = 20 ms. The tolerance
    # allows for a busy 2-core machine; the docs give the precise figures from a quiet one.
    assert 100.0 <= summary["ttft_ms"]["p50"] < 125.0
    assert summary["tpot_ms"]["mean"] == pytest.approx(20.0, rel=0.15)
    assert summary["itl_ms"]["p50"] == pytest.approx(20.0, rel=0.15)
    assert summary["itl_ms"]["count"] == 4 * 10
    assert summary["token_count_sources"] == {"usage": 4}


def test_coalescing_server_itl_counts_events_tpot_counts_tokens(tmp_path: Path) -> None:
    with loadgen("--interval-ms", "20", "--tokens-per-event", "4") as base:
        doc = bench(
            tmp_path, base, "--output-len", "48", "--concurrency", "1", "--num-requests", "3", "--warmup", "0"
        )
    summary = doc["levels"][0]["summary"]
    # 48 tokens in 12 events 20 ms apart: ITL is the 20 ms between events, TPOT the time per
    # token, 11 gaps / 47 tokens of it (about 4.7 ms).
    assert summary["tokens_per_output_event"] == 4.0
    assert all(r["output_events"] == 12 and r["output_tokens"] == 48 for r in doc["requests"])
    assert summary["itl_ms"]["p50"] == pytest.approx(20.0, rel=0.15)
    assert summary["tpot_ms"]["mean"] == pytest.approx(summary["itl_ms"]["mean"] * 11 / 47, rel=0.02)
    assert summary["tpot_ms"]["mean"] < summary["itl_ms"]["mean"] / 3


def test_many_fast_events_are_all_counted(tmp_path: Path) -> None:
    with loadgen() as base:  # as fast as it can
        doc = bench(
            tmp_path,
            base,
            "--api",
            "completions",
            "--output-len",
            "3000",
            "--concurrency",
            "2",
            "--num-requests",
            "4",
            "--warmup",
            "0",
        )
    level = doc["levels"][0]
    assert level["summary"]["total_output_tokens"] == 12000
    assert sum(r["output_events"] for r in doc["requests"]) == 12000
    assert level["client"]["cpu_us_per_output_event"] > 0
