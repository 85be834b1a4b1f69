"""GPU telemetry: the live sampler on this machine, and real NVML readings recorded on an H200."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pytest
from aimachine.bench.output import plot_telemetry
from aimachine.bench.telemetry import FIELDS, GpuSampler, summarize_samples

RECORDED = Path(__file__).parent / "data" / "bench" / "nvml-h200-sampler.json"


def test_live_sampler_on_this_machine() -> None:
    """Without NVML: unavailable with the reason. With a GPU (the lent machine): samples at >= 5 Hz."""
    sampler = GpuSampler(hz=10)
    t0 = time.perf_counter()
    sampler.start(t0)
    time.sleep(0.6)
    sampler.stop()
    result = sampler.result({"all": (0.0, 1.0)})
    if not result["available"]:
        assert result == {"available": False, "reason": result["reason"]}
        assert "NVML" in result["reason"]
        return
    assert result["achieved_hz"] >= 5
    assert {s["gpu"] for s in result["samples"]} == {d["index"] for d in result["devices"]}
    assert all(set(FIELDS) <= set(s) for s in result["samples"])


def test_rate_below_5_hz_is_refused() -> None:
    with pytest.raises(ValueError, match="at least 5 Hz"):
        GpuSampler(hz=4)


def test_recorded_h200_readings(tmp_path: Path) -> None:
    recorded = json.loads(RECORDED.read_text())
    samples = recorded["samples"]
    times = np.array([s["t"] for s in samples])
    # 52 samples over 5.23 s at 10 Hz requested: gaps of 0.1 s, none skipped.
    assert len(samples) == 52
    assert np.diff(times).mean() == pytest.approx(0.1, rel=0.05)
    assert recorded["achieved_hz"] == pytest.approx((len(samples) - 1) / (times[-1] - times[0]), abs=0.01)
    # The summary of the run and of the busy window, from the readings themselves.
    assert summarize_samples(samples) == recorded["summary"]
    busy = [s for s in samples if 1.0 <= s["t"] <= 3.0]
    assert summarize_samples(busy) == recorded["per_level"]["busy"]
    power = recorded["summary"]["0"]["power_w"]
    assert power["max"] == 703.939  # the matmuls at the 700 W limit
    assert recorded["summary"]["0"]["mem_clock_mhz"] == {"mean": 3201.0, "max": 3201.0}
    assert samples[0]["util_gpu_pct"] == 0  # idle before the matmuls
    assert recorded["per_level"]["busy"]["0"]["util_gpu_pct"]["mean"] > 50
    levels = [{"name": "busy", "start_s": 1.0, "end_s": 3.0}]
    plot_telemetry(tmp_path / "telemetry.png", recorded, levels, "H200, torch matmuls")
    assert (tmp_path / "telemetry.png").read_bytes().startswith(b"\x89PNG")
