"""GPU telemetry during a run: a background thread reads NVML at a fixed rate (default 10 Hz).

Without NVML (no NVIDIA driver, or no GPU) the result is {"available": false, "reason": ...},
never an invented zero. A reading the card does not support is recorded as null.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

import numpy as np

# Sample fields, in units a person reads: percent, MiB, watts, degrees Celsius, MHz.
FIELDS = (
    "util_gpu_pct",
    "util_mem_pct",
    "mem_used_mib",
    "power_w",
    "temp_c",
    "sm_clock_mhz",
    "mem_clock_mhz",
)
MIN_HZ = 5.0


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class GpuSampler:
    """Samples every visible GPU until stopped; use as a context manager around the run.

    `clock` is the run's time base (time.perf_counter), so sample times line up with the levels.
    """

    def __init__(
        self, hz: float = 10.0, clock: Callable[[], float] = time.perf_counter, nvml: Any = None
    ) -> None:
        if hz < MIN_HZ:
            raise ValueError(f"telemetry rate must be at least {MIN_HZ:g} Hz, got {hz:g}")
        self.interval = 1.0 / hz
        self.clock = clock
        self._nvml = nvml
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._handles: list[Any] = []
        self.devices: list[dict[str, Any]] = []
        self.samples: list[dict[str, Any]] = []
        self.reason: str | None = None
        self.errors: Counter[str] = Counter()
        self.t0 = 0.0

    def start(self, t0: float) -> None:
        self.t0 = t0
        try:
            if self._nvml is None:
                import pynvml  # noqa: PLC0415 - NVML is optional at run time

                self._nvml = pynvml
            self._nvml.nvmlInit()
            count = self._nvml.nvmlDeviceGetCount()
        except Exception as error:  # any NVML failure means no telemetry, with the reason
            self.reason = f"NVML not available: {type(error).__name__}: {error}"
            self._nvml = None
            return
        if count == 0:
            self.reason = "NVML found no GPU"
            self._shutdown()
            return
        for index in range(count):
            handle = self._nvml.nvmlDeviceGetHandleByIndex(index)
            self._handles.append(handle)
            memory = self._read(lambda h=handle: self._nvml.nvmlDeviceGetMemoryInfo(h))
            power_limit = self._read(lambda h=handle: self._nvml.nvmlDeviceGetEnforcedPowerLimit(h))
            self.devices.append(
                {
                    "index": index,
                    "name": _text(self._nvml.nvmlDeviceGetName(handle)),
                    "memory_total_mib": None if memory is None else memory.total // 2**20,
                    "power_limit_w": None if power_limit is None else power_limit / 1000.0,
                }
            )
        self._thread = threading.Thread(target=self._loop, name="aimachine-bench-nvml", daemon=True)
        self._thread.start()

    def _read(self, call: Callable[[], Any]) -> Any:
        try:
            return call()
        except Exception as error:  # an unsupported reading is null, counted by kind
            self.errors[type(error).__name__] += 1
            return None

    def _sample(self) -> None:
        nvml = self._nvml
        t = self.clock() - self.t0
        for index, h in enumerate(self._handles):
            util = self._read(lambda h=h: nvml.nvmlDeviceGetUtilizationRates(h))
            memory = self._read(lambda h=h: nvml.nvmlDeviceGetMemoryInfo(h))
            power = self._read(lambda h=h: nvml.nvmlDeviceGetPowerUsage(h))
            temp = self._read(lambda h=h: nvml.nvmlDeviceGetTemperature(h, nvml.NVML_TEMPERATURE_GPU))
            sm = self._read(lambda h=h: nvml.nvmlDeviceGetClockInfo(h, nvml.NVML_CLOCK_SM))
            mem_clock = self._read(lambda h=h: nvml.nvmlDeviceGetClockInfo(h, nvml.NVML_CLOCK_MEM))
            self.samples.append(
                {
                    "t": round(t, 4),
                    "gpu": index,
                    "util_gpu_pct": None if util is None else util.gpu,
                    "util_mem_pct": None if util is None else util.memory,
                    "mem_used_mib": None if memory is None else memory.used // 2**20,
                    "power_w": None if power is None else power / 1000.0,
                    "temp_c": temp,
                    "sm_clock_mhz": sm,
                    "mem_clock_mhz": mem_clock,
                }
            )

    def _loop(self) -> None:
        next_at = self.clock()
        while not self._stop.is_set():
            self._sample()
            next_at += self.interval
            delay = next_at - self.clock()
            if delay < 0:  # fell behind (slow driver call): keep the rate, skip the missed ticks
                next_at = self.clock()
                delay = 0.0
            self._stop.wait(delay)

    def _shutdown(self) -> None:
        # Shutting down a library that failed is not an error of the run.
        with contextlib.suppress(Exception):
            self._nvml.nvmlShutdown()

    def stop(self) -> None:
        if self._thread is not None:
            self._stop.set()
            self._thread.join(timeout=5.0)
            self._thread = None
            self._shutdown()

    def __enter__(self) -> GpuSampler:
        self.start(self.clock())
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def result(self, windows: dict[str, tuple[float, float]] | None = None) -> dict[str, Any]:
        """The JSON block: devices, raw samples, and per-window (per level) summaries."""
        if self.reason is not None:
            return {"available": False, "reason": self.reason}
        duration = max((s["t"] for s in self.samples), default=0.0) - min(
            (s["t"] for s in self.samples), default=0.0
        )
        per_gpu = len(self.samples) / max(len(self.devices), 1)
        block: dict[str, Any] = {
            "available": True,
            "source": "nvml",
            "requested_hz": round(1.0 / self.interval, 3),
            "achieved_hz": round((per_gpu - 1) / duration, 2) if duration > 0 else None,
            "devices": self.devices,
            "read_errors": dict(self.errors),
            "summary": summarize_samples(self.samples),
            "samples": self.samples,
        }
        if windows:
            block["per_level"] = {
                name: summarize_samples([s for s in self.samples if start <= s["t"] <= end])
                for name, (start, end) in windows.items()
            }
        return block


def summarize_samples(samples: list[dict[str, Any]]) -> dict[str, dict[str, dict[str, float | None]]]:
    """Mean and max of every field, per GPU index."""
    out: dict[str, dict[str, dict[str, float | None]]] = {}
    for gpu in sorted({s["gpu"] for s in samples}):
        rows = [s for s in samples if s["gpu"] == gpu]
        fields: dict[str, dict[str, float | None]] = {}
        for name in FIELDS:
            values = [s[name] for s in rows if s[name] is not None]
            fields[name] = (
                {"mean": float(np.mean(values)), "max": float(np.max(values))}
                if values
                else {"mean": None, "max": None}
            )
        out[str(gpu)] = fields
    return out
