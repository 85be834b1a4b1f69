"""GPU facts for llm_preflight: NVML first, nvidia-smi as the fallback.

``aimachine-gpu-facts`` prints a JSON list, one object per GPU, with these keys:
index, name, uuid, pci_bus_id, memory_total_mib, memory_reserved_mib, memory_free_mib,
compute_capability ("8.9"), memory_bus_width_bits, memory_bus_width_source, memory_clock_max_mhz,
bandwidth_gbs, driver_version, cuda_driver_version, power_limit_w, display_active, source.
No GPU (no driver, no nvidia-smi): an empty list. A driver that does not answer exits 3; a
driver/library version mismatch (updated driver, not rebooted) exits 4 with the fix on stderr.

Memory bandwidth = max memory clock x 2 x bus width / 8. NVML and nvidia-smi report the memory
clock as half the per-pin data rate for GDDR6, GDDR6X, GDDR7 and HBM alike, so the factor is 2
for all of them. Checked against real readings (docs/sizing.md, "Memory bandwidth"):
RTX 4080 SUPER 11501 MHz x 2 x 256 bit = 736 GB/s (scripts/tests/data/nvidia-smi),
H100 80GB HBM3 2619 MHz x 2 x 5120 bit = 3352 GB/s (same), RTX 4090 10501 MHz x 384 bit =
1008 GB/s (NVIDIA/nvbench#207), RTX 5090 (GDDR7) 14001 MHz x 512 bit = 1792 GB/s
(NVIDIA/open-gpu-kernel-modules#1266).
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import re
import subprocess
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

# Memory bus width in bits. NVML reports it; nvidia-smi has no field for it, so the fallback
# looks the card up here. Each width reproduces the card's published bandwidth from its data
# rate (REFERENCES.md table; RTX 4090: NVIDIA/nvbench#207 "384-bit DDR @10501MHz").
BUS_WIDTH_BITS: dict[str, int] = {
    "NVIDIA GeForce RTX 4060 Ti": 128,  # 18 Gbps GDDR6 -> 288 GB/s
    "NVIDIA GeForce RTX 5060 Ti": 128,  # 28 Gbps GDDR7 -> 448 GB/s
    "NVIDIA RTX A4000": 256,  # 14 Gbps GDDR6 -> 448 GB/s
    "NVIDIA GeForce RTX 4070 Ti SUPER": 256,  # 21 Gbps GDDR6X -> 672 GB/s
    "NVIDIA GeForce RTX 4080": 256,  # 22.4 Gbps GDDR6X -> 717 GB/s
    "NVIDIA GeForce RTX 4080 SUPER": 256,  # 23 Gbps GDDR6X -> 736 GB/s
    "NVIDIA GeForce RTX 5080": 256,  # 30 Gbps GDDR7 -> 960 GB/s
    "NVIDIA GeForce RTX 4090": 384,  # 21 Gbps GDDR6X -> 1008 GB/s
    "NVIDIA GeForce RTX 5090": 512,  # 28 Gbps GDDR7 -> 1792 GB/s
    "NVIDIA H100 80GB HBM3": 5120,  # HBM3 -> 3350 GB/s
    "NVIDIA H200": 6016,  # NVML's reading on the lent H200 (tests/data/nvidia-smi) -> 4814 GB/s
}

# Fields asked of nvidia-smi. Header names equal these (plus a unit), see the recorded captures.
SMI_FIELDS: tuple[str, ...] = (
    "index",
    "name",
    "uuid",
    "pci.bus_id",
    "memory.total",
    "memory.reserved",
    "memory.free",
    "compute_cap",
    "clocks.max.memory",
    "driver_version",
    "power.limit",
    "display_active",
)
# Older drivers reject some fields ('Field "compute_cap" is not a valid field to query.',
# 470 series, huggingface/candle#733); these are dropped and the query retried.
SMI_OPTIONAL_FIELDS = frozenset(
    {"memory.reserved", "compute_cap", "clocks.max.memory", "power.limit", "display_active"}
)
_INVALID_FIELD = re.compile(r'Field "([^"]+)" is not a valid field to query')
_UNKNOWN_VALUES = {"", "n/a", "[n/a]", "[not supported]", "[unknown error]", "not found"}
_HEADER_UNIT = re.compile(r"^(?P<name>[^\[]+?)\s*\[(?P<unit>[^\]]+)\]$")
_CUDA_VERSION = re.compile(r"^CUDA Version\s*:\s*(\S.*?)\s*$", re.MULTILINE)

Runner = Callable[..., subprocess.CompletedProcess]
EXIT_DRIVER_MISMATCH = 4


class GpuProbeError(RuntimeError):
    """A driver is there but does not answer: not the same as "no GPU"."""


# The kernel module loaded at boot and the userspace library (libnvidia-ml, nvidia-smi) differ:
# a driver package was upgraded (or a kernel update rebuilt the module) without a reboot. NVML's
# error string and nvidia-smi's message both say this; nvidia-smi exits 18 (NVML's error code).
MISMATCH_TEXT = "Driver/library version mismatch"
_NVML_LIBRARY_VERSION = re.compile(r"^NVML library version:\s*(\S+)", re.MULTILINE)
_KERNEL_MODULE_VERSION = re.compile(r"Kernel Module\s+(?:for \S+\s+)?(\d+(?:\.\d+)+)")
PROC_DRIVER_VERSION = Path("/proc/driver/nvidia/version")
MISMATCH_FIX = (
    "reboot, or reload the nvidia modules "
    "(rmmod nvidia_uvm nvidia_drm nvidia_modeset nvidia; modprobe nvidia)"
)


class DriverMismatchError(GpuProbeError):
    """The loaded kernel module and the userspace driver library are different versions."""

    def __init__(self, library_version: str | None, kernel_version: str | None) -> None:
        self.library_version = library_version
        self.kernel_version = kernel_version
        super().__init__(
            f"NVIDIA {MISMATCH_TEXT}: kernel module {kernel_version or 'unknown'}, userspace library "
            f"{library_version or 'unknown'} (the driver was updated since boot). Fix: {MISMATCH_FIX}."
        )


def kernel_module_version(proc_version: Path = PROC_DRIVER_VERSION) -> str | None:
    """Version of the loaded nvidia kernel module, from /proc/driver/nvidia/version."""
    try:
        match = _KERNEL_MODULE_VERSION.search(proc_version.read_text())
    except OSError:
        return None
    return match.group(1) if match else None


def mismatch_from_output(output: str, proc_version: Path = PROC_DRIVER_VERSION) -> DriverMismatchError | None:
    """A DriverMismatchError when nvidia-smi's (or NVML's) output reports the mismatch, else None."""
    if MISMATCH_TEXT.lower() not in output.lower():
        return None
    library = _NVML_LIBRARY_VERSION.search(output)
    return DriverMismatchError(library.group(1) if library else None, kernel_module_version(proc_version))


def bandwidth_gbs(memory_clock_max_mhz: float | None, bus_width_bits: int | None) -> float | None:
    """Peak memory bandwidth in GB/s (10^9 bytes/s): clock x 2 (two transfers a clock) x bits / 8."""
    if not memory_clock_max_mhz or not bus_width_bits:
        return None
    return round(memory_clock_max_mhz * 1e6 * 2 * bus_width_bits / 8 / 1e9, 1)


def _clean(value: str | None) -> str | None:
    if value is None:
        return None
    text = value.strip()
    if text.lower() in _UNKNOWN_VALUES or (text.startswith("[") and text.endswith("]")):
        return None
    return text


def parse_query_gpu_csv(text: str, fields: Sequence[str] | None = None) -> list[dict[str, str | None]]:
    """Rows of ``nvidia-smi --query-gpu=... --format=csv[,noheader][,nounits]`` as dicts.

    With a header (``fields`` None) columns are named by it, units stripped from names
    ("memory.total [MiB]" -> "memory.total") and from values ("16376 MiB" -> "16376").
    Without a header pass the queried ``fields``. Unknown values ("[N/A]", "[Not Supported]",
    "[Requested functionality has been deprecated]") become None.
    """
    rows = [r for r in csv.reader(io.StringIO(text), skipinitialspace=True) if any(c.strip() for c in r)]
    if not rows:
        return []
    units: list[str | None]
    if fields is None:
        header, rows = rows[0], rows[1:]
        names, units = [], []
        for column in header:
            match = _HEADER_UNIT.match(column.strip())
            names.append(match["name"] if match else column.strip())
            units.append(match["unit"] if match else None)
    else:
        names, units = list(fields), [None] * len(fields)
    result = []
    for row in rows:
        if len(row) != len(names):
            raise ValueError(f"nvidia-smi row has {len(row)} columns, expected {len(names)}: {row!r}")
        record: dict[str, str | None] = {}
        for name, unit, raw in zip(names, units, row, strict=True):
            value = _clean(raw)
            if value is not None and unit and value.endswith(" " + unit):
                value = value[: -len(unit) - 1]
            record[name] = value
        result.append(record)
    return result


def parse_cuda_version(nvidia_smi_q: str) -> str | None:
    """The driver's CUDA version from the header of ``nvidia-smi -q`` ("CUDA Version : 13.2")."""
    match = _CUDA_VERSION.search(nvidia_smi_q)
    return _clean(match.group(1)) if match else None


def _to_int(value: str | None) -> int | None:
    return None if value is None else int(float(value))


def _to_float(value: str | None) -> float | None:
    return None if value is None else float(value)


def _to_bool(value: str | None) -> bool | None:
    if value is None:
        return None
    return value.strip().lower() in {"enabled", "yes", "1", "true"}


def facts_from_smi_record(record: dict[str, str | None], cuda_version: str | None) -> dict[str, Any]:
    """One GPU's facts from a parsed --query-gpu row."""
    name = record.get("name") or "unknown"
    clock = _to_int(record.get("clocks.max.memory"))
    width = BUS_WIDTH_BITS.get(name)
    return {
        "index": _to_int(record.get("index")),
        "name": name,
        "uuid": record.get("uuid"),
        "pci_bus_id": record.get("pci.bus_id"),
        "memory_total_mib": _to_int(record.get("memory.total")),
        "memory_reserved_mib": _to_int(record.get("memory.reserved")),
        "memory_free_mib": _to_int(record.get("memory.free")),
        "compute_capability": record.get("compute_cap"),
        "memory_bus_width_bits": width,
        "memory_bus_width_source": "table" if width else None,
        "memory_clock_max_mhz": clock,
        "bandwidth_gbs": bandwidth_gbs(clock, width),
        "driver_version": record.get("driver_version"),
        "cuda_driver_version": cuda_version,
        "power_limit_w": _to_float(record.get("power.limit")),
        "display_active": _to_bool(record.get("display_active")),
        "source": "nvidia-smi",
    }


def _run(run: Runner, argv: list[str]) -> subprocess.CompletedProcess:
    return run(argv, capture_output=True, text=True, timeout=60, check=False)


def query_nvidia_smi(
    run: Runner = subprocess.run,
    record_dir: Path | None = None,
    nvidia_smi: str = "nvidia-smi",
    proc_version: Path = PROC_DRIVER_VERSION,
) -> list[dict[str, Any]]:
    """GPU facts from nvidia-smi; [] when nvidia-smi is not installed."""
    fields = list(SMI_FIELDS)
    while True:
        argv = [nvidia_smi, f"--query-gpu={','.join(fields)}", "--format=csv,nounits"]
        try:
            done = _run(run, argv)
        except FileNotFoundError:
            return []
        if done.returncode == 0:
            break
        output = ((done.stdout or "") + (done.stderr or "")).strip()
        mismatch = mismatch_from_output(output, proc_version)
        if mismatch:
            raise mismatch
        invalid = _INVALID_FIELD.search(output)
        if invalid and invalid.group(1) in fields and invalid.group(1) in SMI_OPTIONAL_FIELDS:
            fields.remove(invalid.group(1))
            continue
        raise GpuProbeError(f"{' '.join(argv)} failed ({done.returncode}): {output}")
    if record_dir:
        (record_dir / "nvidia-smi.query-gpu.csv").write_text(done.stdout)
    records = parse_query_gpu_csv(done.stdout)
    head = _run(run, [nvidia_smi, "-q", "-d", "COMPUTE"])
    if record_dir:
        (record_dir / "nvidia-smi.q-compute.txt").write_text(head.stdout or "")
    cuda = parse_cuda_version(head.stdout or "") if head.returncode == 0 else None
    return [facts_from_smi_record(r, cuda) for r in records]


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def query_nvml(nvml: Any) -> list[dict[str, Any]]:
    """GPU facts through NVML (the ``pynvml`` module of nvidia-ml-py, or a stand-in with its API)."""
    nvml.nvmlInit()
    try:

        def optional(call: Callable[[], Any]) -> Any:
            # A call the card does not support (e.g. power on some boards) leaves the fact empty.
            try:
                return call()
            except nvml.NVMLError:
                return None

        driver = _text(nvml.nvmlSystemGetDriverVersion())
        cuda_raw = optional(nvml.nvmlSystemGetCudaDriverVersion_v2) or optional(
            nvml.nvmlSystemGetCudaDriverVersion
        )
        cuda = f"{cuda_raw // 1000}.{cuda_raw % 1000 // 10}" if cuda_raw else None
        gpus = []
        for index in range(nvml.nvmlDeviceGetCount()):
            handle = nvml.nvmlDeviceGetHandleByIndex(index)
            memory = optional(lambda h=handle: nvml.nvmlDeviceGetMemoryInfo(h, version=nvml.nvmlMemory_v2))
            if memory is None:  # drivers before the v2 struct
                memory = nvml.nvmlDeviceGetMemoryInfo(handle)
            capability = optional(lambda h=handle: nvml.nvmlDeviceGetCudaComputeCapability(h))
            width = optional(lambda h=handle: nvml.nvmlDeviceGetMemoryBusWidth(h))
            clock = optional(lambda h=handle: nvml.nvmlDeviceGetMaxClockInfo(h, nvml.NVML_CLOCK_MEM))
            power_mw = optional(lambda h=handle: nvml.nvmlDeviceGetEnforcedPowerLimit(h))
            display = optional(lambda h=handle: nvml.nvmlDeviceGetDisplayActive(h))
            name = _text(nvml.nvmlDeviceGetName(handle))
            width_source = "nvml" if width else None
            if not width and name in BUS_WIDTH_BITS:
                width, width_source = BUS_WIDTH_BITS[name], "table"
            reserved = getattr(memory, "reserved", None)
            gpus.append(
                {
                    "index": index,
                    "name": name,
                    "uuid": _text(nvml.nvmlDeviceGetUUID(handle)),
                    "pci_bus_id": _text(nvml.nvmlDeviceGetPciInfo(handle).busId),
                    "memory_total_mib": memory.total // 2**20,
                    "memory_reserved_mib": None if reserved is None else reserved // 2**20,
                    "memory_free_mib": memory.free // 2**20,
                    "compute_capability": f"{capability[0]}.{capability[1]}" if capability else None,
                    "memory_bus_width_bits": width,
                    "memory_bus_width_source": width_source,
                    "memory_clock_max_mhz": clock,
                    "bandwidth_gbs": bandwidth_gbs(clock, width),
                    "driver_version": driver,
                    "cuda_driver_version": cuda,
                    "power_limit_w": None if power_mw is None else power_mw / 1000,
                    "display_active": None if display is None else bool(display),
                    "source": "nvml",
                }
            )
        return gpus
    finally:
        nvml.nvmlShutdown()


def detect_gpus(
    nvml: Any | None = None,
    run: Runner = subprocess.run,
    record_dir: Path | None = None,
    proc_version: Path = PROC_DRIVER_VERSION,
) -> list[dict[str, Any]]:
    """Facts of every NVIDIA GPU: NVML when the driver's library loads, else nvidia-smi; [] if none."""
    if nvml is None:
        try:
            import pynvml as nvml  # noqa: PLC0415 - optional at import time of this module
        except ImportError:
            nvml = None
    if nvml is not None:
        try:
            gpus = query_nvml(nvml)
        except nvml.NVMLError as error:  # no libnvidia-ml, or the driver is not loaded
            mismatch = mismatch_from_output(str(error), proc_version)
            if mismatch:
                # NVML has no "NVML library version" line; ask nvidia-smi, which prints it.
                try:
                    query_nvidia_smi(run, None, proc_version=proc_version)
                except DriverMismatchError as smi_mismatch:
                    raise smi_mismatch from error
                except GpuProbeError:
                    pass
                raise mismatch from error
            print(f"NVML unavailable ({error}); trying nvidia-smi", file=sys.stderr)
        else:
            if record_dir:
                (record_dir / "nvml.json").write_text(json.dumps(gpus, indent=2) + "\n")
            return gpus
    return query_nvidia_smi(run, record_dir, proc_version=proc_version)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="aimachine-gpu-facts", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--source", choices=("auto", "nvml", "nvidia-smi"), default="auto", help="where to read the facts"
    )
    parser.add_argument(
        "--record",
        type=Path,
        metavar="DIR",
        help="also save the raw nvidia-smi/NVML output in DIR (fixtures)",
    )
    args = parser.parse_args(argv)
    if args.record:
        args.record.mkdir(parents=True, exist_ok=True)
    try:
        if args.source == "nvidia-smi":
            gpus = query_nvidia_smi(record_dir=args.record)
        elif args.source == "nvml":
            import pynvml  # noqa: PLC0415

            try:
                gpus = query_nvml(pynvml)
            except pynvml.NVMLError as error:
                raise mismatch_from_output(str(error)) or GpuProbeError(f"NVML: {error}") from error
        else:
            gpus = detect_gpus(record_dir=args.record)
    except DriverMismatchError as error:
        # Its own exit status: preflight turns it into the driver_mismatch fact and the fix.
        print(f"aimachine-gpu-facts: {error}", file=sys.stderr)
        return EXIT_DRIVER_MISMATCH
    except GpuProbeError as error:
        print(f"aimachine-gpu-facts: {error}", file=sys.stderr)
        return 3
    json.dump(gpus, sys.stdout, indent=2)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
