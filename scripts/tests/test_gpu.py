"""GPU facts: parsing recorded real nvidia-smi output, NVML arithmetic, and the GPU-less host."""

from __future__ import annotations

import csv
import ctypes.util
import io
import json
import shutil
import subprocess
from pathlib import Path
from types import SimpleNamespace

import pytest
from aimachine import gpu

DATA = Path(__file__).parent / "data" / "nvidia-smi"


def read(name: str) -> str:
    return (DATA / name).read_text()


# --- recorded real output (scripts/tests/data/nvidia-smi/SOURCES.md) --------------------------


def test_rtx_4080_super_capture_gives_its_facts():
    (record,) = gpu.parse_query_gpu_csv(read("rtx-4080-super.query-gpu.csv"))
    facts = gpu.facts_from_smi_record(record, gpu.parse_cuda_version(read("rtx-4080-super.q-head.txt")))
    assert facts == {
        "index": 0,
        "name": "NVIDIA GeForce RTX 4080 SUPER",
        "uuid": "GPU-00000000-0000-0000-0000-000000000000",
        "pci_bus_id": "00000000:01:00.0",
        "memory_total_mib": 16376,
        "memory_reserved_mib": 434,
        "memory_free_mib": 15348,
        "compute_capability": "8.9",
        "memory_bus_width_bits": 256,
        "memory_bus_width_source": "table",
        "memory_clock_max_mhz": 11501,
        # REFERENCES.md: RTX 4080 Super 736 GB/s.
        "bandwidth_gbs": 736.1,
        "driver_version": "595.71.05",
        "cuda_driver_version": "13.2",
        "power_limit_w": 320.0,
        "display_active": True,
        "source": "nvidia-smi",
    }


def test_h100_capture_gives_3350_gbs():
    (record,) = gpu.parse_query_gpu_csv(read("h100-80gb-hbm3.query-gpu.csv"))
    facts = gpu.facts_from_smi_record(record, gpu.parse_cuda_version(read("h100-80gb-hbm3.q-head.txt")))
    assert facts["name"] == "NVIDIA H100 80GB HBM3"
    assert (facts["memory_total_mib"], facts["memory_reserved_mib"], facts["memory_free_mib"]) == (
        81559,
        479,
        81081,
    )
    assert facts["compute_capability"] == "9.0"
    assert facts["memory_clock_max_mhz"] == 2619
    # REFERENCES.md: H100 80GB HBM3 3,350 GB/s; NVML's clock x 2 x 5120 bit reproduces it.
    assert facts["bandwidth_gbs"] == pytest.approx(3350, rel=0.001)
    assert facts["power_limit_w"] == 700.0
    assert facts["display_active"] is False
    assert facts["cuda_driver_version"] == "13.1"
    assert facts["driver_version"] == "590.48.01"


def test_free_plus_used_plus_reserved_is_total_in_the_capture():
    """Why sizing subtracts memory.reserved: nvidia-smi's total includes memory nobody can use."""
    (record,) = gpu.parse_query_gpu_csv(read("rtx-4080-super.query-gpu.csv"))
    total, reserved, used, free = (
        int(record[k]) for k in ("memory.total", "memory.reserved", "memory.used", "memory.free")
    )
    assert abs(total - (reserved + used + free)) <= 2


def test_deprecated_and_missing_values_become_none():
    (record,) = gpu.parse_query_gpu_csv(read("rtx-4080-super.query-gpu.csv"))
    assert record["display_mode"] is None  # "[Requested functionality has been deprecated]"
    assert record["serial"] is None  # "[N/A]"
    assert record["temperature.memory"] is None  # "N/A"


def test_parse_without_header_uses_the_queried_fields():
    text = "0, NVIDIA H100 80GB HBM3, 81559, 9.0\n"
    assert gpu.parse_query_gpu_csv(text, ["index", "name", "memory.total", "compute_cap"]) == [
        {"index": "0", "name": "NVIDIA H100 80GB HBM3", "memory.total": "81559", "compute_cap": "9.0"}
    ]


def test_ragged_rows_are_rejected():
    with pytest.raises(ValueError, match="columns"):
        gpu.parse_query_gpu_csv("a, b\n1, 2, 3\n")


def test_cuda_version_not_found_is_none():
    assert gpu.parse_cuda_version("Driver Version : 580.105.06\nCUDA Version : Not Found\n") is None


# --- the nvidia-smi fallback, replaying the recorded capture -----------------------------------


class ReplayNvidiaSmi:
    """Stands in for subprocess.run: answers --query-gpu by projecting the requested columns out of
    the recorded capture (as nvidia_gpu_exporter's cmd/fake-nvidia-smi does), and -q with the
    recorded -q head. ``reject`` lists fields an older nvidia-smi does not know: those queries get
    its real message and exit status 2 (SOURCES.md)."""

    def __init__(self, capture: str, q_head: str, reject: tuple[str, ...] = ()) -> None:
        rows = list(csv.reader(io.StringIO(read(capture)), skipinitialspace=True))
        self.header, self.row = rows[0], rows[1]
        self.q_head = read(q_head)
        self.reject = reject
        self.calls: list[list[str]] = []

    def __call__(self, argv: list[str], **_: object) -> subprocess.CompletedProcess:
        self.calls.append(argv)
        if argv[1] == "-q":
            return subprocess.CompletedProcess(argv, 0, self.q_head, "")
        fields = argv[1].removeprefix("--query-gpu=").split(",")
        for field in fields:
            if field in self.reject:
                message = read("invalid-field-compute-cap.txt").replace("compute_cap", field)
                return subprocess.CompletedProcess(argv, 2, message, "")
        names = [h.split(" [")[0] for h in self.header]
        picked = [names.index(f) for f in fields]
        out = io.StringIO()
        out.write(", ".join(self.header[i] for i in picked) + "\n")
        out.write(", ".join(self.row[i] for i in picked) + "\n")
        return subprocess.CompletedProcess(argv, 0, out.getvalue(), "")


def test_query_nvidia_smi_reads_the_asked_fields(tmp_path):
    replay = ReplayNvidiaSmi("h100-80gb-hbm3.query-gpu.csv", "h100-80gb-hbm3.q-head.txt")
    (facts,) = gpu.query_nvidia_smi(run=replay, record_dir=tmp_path)
    assert replay.calls[0][1] == "--query-gpu=" + ",".join(gpu.SMI_FIELDS)
    assert facts["memory_total_mib"] == 81559 and facts["cuda_driver_version"] == "13.1"
    assert (tmp_path / "nvidia-smi.query-gpu.csv").read_text().startswith("index, name, uuid")


def test_old_nvidia_smi_without_compute_cap_is_retried_without_it():
    replay = ReplayNvidiaSmi(
        "rtx-4080-super.query-gpu.csv", "rtx-4080-super.q-head.txt", reject=("compute_cap", "memory.reserved")
    )
    (facts,) = gpu.query_nvidia_smi(run=replay)
    assert len(replay.calls) == 4  # two rejections, the query that worked, -q
    assert "compute_cap" not in replay.calls[2][1] and "memory.reserved" not in replay.calls[2][1]
    assert facts["compute_capability"] is None and facts["memory_reserved_mib"] is None
    assert facts["memory_total_mib"] == 16376


def test_a_required_field_rejected_is_an_error():
    replay = ReplayNvidiaSmi("rtx-4080-super.query-gpu.csv", "rtx-4080-super.q-head.txt", reject=("name",))
    with pytest.raises(gpu.GpuProbeError, match='Field "name"'):
        gpu.query_nvidia_smi(run=replay)


def test_failing_nvidia_smi_is_an_error_not_no_gpu():
    def broken(argv, **_):
        return subprocess.CompletedProcess(argv, 9, "", "driver not loaded")

    with pytest.raises(gpu.GpuProbeError, match="failed \\(9\\): driver not loaded"):
        gpu.query_nvidia_smi(run=broken)


def test_missing_nvidia_smi_means_no_gpu():
    assert gpu.query_nvidia_smi(nvidia_smi="nvidia-smi-that-does-not-exist") == []


# --- NVML: arithmetic only, with a fake module (no GPU here) -----------------------------------


class FakePynvmlForArithmetic:
    """NOT recorded output: a stand-in with pynvml's call names, to check unit conversions only
    (bytes -> MiB, mW -> W, CUDA 13020 -> "13.2", capability tuple -> "8.9")."""

    NVML_CLOCK_MEM = 2
    nvmlMemory_v2 = 0x02000028

    class NVMLError(Exception):
        pass

    def __init__(self) -> None:
        self.shut = False

    def nvmlInit(self):
        pass

    def nvmlShutdown(self):
        self.shut = True

    def nvmlSystemGetDriverVersion(self):
        return b"580.95.05"

    def nvmlSystemGetCudaDriverVersion_v2(self):
        return 13020

    def nvmlDeviceGetCount(self):
        return 1

    def nvmlDeviceGetHandleByIndex(self, index):
        return index

    def nvmlDeviceGetName(self, handle):
        return "NVIDIA GeForce RTX 4080 SUPER"

    def nvmlDeviceGetUUID(self, handle):
        return "GPU-x"

    def nvmlDeviceGetPciInfo(self, handle):
        return SimpleNamespace(busId=b"00000000:01:00.0")

    def nvmlDeviceGetMemoryInfo(self, handle, version=None):
        return SimpleNamespace(total=16376 * 2**20, reserved=434 * 2**20, free=15348 * 2**20)

    def nvmlDeviceGetCudaComputeCapability(self, handle):
        return (8, 9)

    def nvmlDeviceGetMemoryBusWidth(self, handle):
        return 256

    def nvmlDeviceGetMaxClockInfo(self, handle, clock):
        assert clock == self.NVML_CLOCK_MEM
        return 11501

    def nvmlDeviceGetEnforcedPowerLimit(self, handle):
        raise self.NVMLError("Not Supported")

    def nvmlDeviceGetDisplayActive(self, handle):
        return 1


def test_nvml_unit_conversions():
    fake = FakePynvmlForArithmetic()
    (facts,) = gpu.query_nvml(fake)
    assert fake.shut
    assert facts["memory_total_mib"] == 16376 and facts["memory_reserved_mib"] == 434
    assert facts["compute_capability"] == "8.9"
    assert facts["cuda_driver_version"] == "13.2"
    assert facts["driver_version"] == "580.95.05"
    assert facts["pci_bus_id"] == "00000000:01:00.0"
    assert facts["bandwidth_gbs"] == 736.1 and facts["memory_bus_width_source"] == "nvml"
    assert facts["power_limit_w"] is None  # unsupported call -> empty fact, not a crash
    assert facts["display_active"] is True and facts["source"] == "nvml"


def test_nvml_same_facts_as_nvidia_smi_for_the_same_readings():
    (smi_record,) = gpu.parse_query_gpu_csv(read("rtx-4080-super.query-gpu.csv"))
    smi = gpu.facts_from_smi_record(smi_record, "13.2")
    (nvml,) = gpu.query_nvml(FakePynvmlForArithmetic())
    for key in ("memory_total_mib", "memory_reserved_mib", "compute_capability", "bandwidth_gbs"):
        assert smi[key] == nvml[key], key
    assert set(smi) == set(nvml)


# --- the bus-width table against REFERENCES.md's bandwidths -------------------------------------


@pytest.mark.parametrize(
    ("name", "clock_mhz", "expected_gbs"),
    [
        ("NVIDIA GeForce RTX 4060 Ti", 9001, 288),  # 9001 MHz: Dr-Noob/gpufetch#60
        ("NVIDIA GeForce RTX 4080 SUPER", 11501, 736),  # recorded capture
        ("NVIDIA GeForce RTX 4090", 10501, 1008),  # NVIDIA/nvbench#207
        ("NVIDIA GeForce RTX 5090", 14001, 1792),  # NVIDIA/open-gpu-kernel-modules#1266
        ("NVIDIA H100 80GB HBM3", 2619, 3350),  # recorded capture
    ],
)
def test_published_clocks_reproduce_published_bandwidth(name, clock_mhz, expected_gbs):
    assert gpu.bandwidth_gbs(clock_mhz, gpu.BUS_WIDTH_BITS[name]) == pytest.approx(expected_gbs, rel=0.002)


def test_unknown_card_has_no_bandwidth_rather_than_a_guess():
    assert gpu.bandwidth_gbs(10000, gpu.BUS_WIDTH_BITS.get("NVIDIA Some Future Card")) is None


# --- this machine: no GPU ----------------------------------------------------------------------


@pytest.mark.skipif(
    shutil.which("nvidia-smi") is not None or ctypes.util.find_library("nvidia-ml") is not None,
    reason="this host has an NVIDIA driver; the GPU-less path cannot be observed here",
)
def test_gpu_less_host_reports_an_empty_list(capsys):
    assert gpu.detect_gpus() == []
    assert gpu.main([]) == 0
    assert json.loads(capsys.readouterr().out) == []


# --- recorded by us on the lent GPU machine (an H200, driver 580.159.04) -----------------------


def test_lent_h200_query_as_aimachine_runs_it():
    """csv,nounits keeps the units in the header ("memory.total [MiB]") and drops them from values."""
    (record,) = gpu.parse_query_gpu_csv(read("h200-lent.query-gpu-nounits.csv"))
    facts = gpu.facts_from_smi_record(record, gpu.parse_cuda_version(read("h200-lent.q-compute.txt")))
    assert facts["name"] == "NVIDIA H200"
    assert (facts["memory_total_mib"], facts["memory_reserved_mib"], facts["memory_free_mib"]) == (
        143771,
        616,
        143156,
    )
    assert facts["cuda_driver_version"] == "13.0" and facts["driver_version"] == "580.159.04"
    assert facts["memory_clock_max_mhz"] == 3201
    assert facts["bandwidth_gbs"] == 4814.3  # NVIDIA's H200 figure is 4.8 TB/s


def test_lent_h200_nvidia_smi_and_nvml_agree():
    (record,) = gpu.parse_query_gpu_csv(read("h200-lent.query-gpu-nounits.csv"))
    smi = gpu.facts_from_smi_record(record, "13.0")
    (nvml,) = json.loads(read("h200-lent.aimachine-nvml-facts.json"))
    assert nvml["source"] == "nvml" and nvml["memory_bus_width_source"] == "nvml"
    for key in smi:
        if key in ("source", "memory_bus_width_source", "memory_reserved_mib", "memory_free_mib"):
            continue  # reserved/free moved by 1 MiB between the two calls
        assert smi[key] == nvml[key], key
    assert abs(smi["memory_reserved_mib"] - nvml["memory_reserved_mib"]) <= 1


def test_lent_h200_noheader_output_with_the_queried_fields():
    (record,) = gpu.parse_query_gpu_csv(read("h200-lent.noheader-nounits.csv"), gpu.SMI_FIELDS)
    assert record["memory.total"] == "143771" and record["display_active"] == "Disabled"


# --- driver/library version mismatch (recorded real output, SOURCES.md [5] [6]) ---------------


def _replay_mismatch(name: str, status: int = 18):
    def run(argv, **_):
        return subprocess.CompletedProcess(argv, status, read(name), "")

    return run


def test_nvidia_smi_mismatch_names_both_versions_and_the_fix(tmp_path):
    proc = tmp_path / "version"
    proc.write_text(read("driver-mismatch.truenas-19.proc-driver-nvidia-version.txt"))
    with pytest.raises(gpu.DriverMismatchError) as caught:
        gpu.query_nvidia_smi(
            run=_replay_mismatch("driver-mismatch.truenas-19.nvidia-smi.txt"), proc_version=proc
        )
    error = caught.value
    assert (error.kernel_version, error.library_version) == ("580.173.02", "580.178")
    assert "reboot, or reload the nvidia modules" in str(error)
    assert "kernel module 580.173.02, userspace library 580.178" in str(error)


def test_mismatch_is_not_mistaken_for_an_old_nvidia_smi_or_no_gpu(tmp_path):
    with pytest.raises(gpu.DriverMismatchError) as caught:
        gpu.query_nvidia_smi(
            run=_replay_mismatch("driver-mismatch.gputil-55.txt"), proc_version=tmp_path / "none"
        )
    assert caught.value.library_version == "535.161"
    assert caught.value.kernel_version is None  # no /proc entry: said as unknown, not guessed


def test_open_kernel_module_version_line_is_read(tmp_path):
    proc = tmp_path / "version"
    # The open modules' wording, as published in install notes (cat /proc/driver/nvidia/version).
    proc.write_text(
        "NVRM version: NVIDIA UNIX Open Kernel Module for x86_64  555.58.02  Release Build  "
        "(dvs-builder@U16-I3-B03-4-3)  Tue Jun 25 01:26:03 UTC 2024\n"
    )
    assert gpu.kernel_module_version(proc) == "555.58.02"


class FakePynvmlMismatch(FakePynvmlForArithmetic):
    """nvmlInit fails as NVML does after a driver update without a reboot (error 18, its string)."""

    def nvmlInit(self):
        raise self.NVMLError("Driver/library version mismatch")


def test_nvml_mismatch_asks_nvidia_smi_for_the_library_version(tmp_path):
    proc = tmp_path / "version"
    proc.write_text(read("driver-mismatch.truenas-19.proc-driver-nvidia-version.txt"))
    with pytest.raises(gpu.DriverMismatchError) as caught:
        gpu.detect_gpus(
            nvml=FakePynvmlMismatch(),
            run=_replay_mismatch("driver-mismatch.truenas-19.nvidia-smi.txt"),
            proc_version=proc,
        )
    assert (caught.value.kernel_version, caught.value.library_version) == ("580.173.02", "580.178")


def test_mismatch_exit_status_and_message(monkeypatch, capsys):
    def mismatch(**_):
        raise gpu.DriverMismatchError("580.178", "580.173.02")

    monkeypatch.setattr(gpu, "detect_gpus", mismatch)
    assert gpu.main([]) == gpu.EXIT_DRIVER_MISMATCH == 4
    err = capsys.readouterr().err
    assert err.startswith("aimachine-gpu-facts: NVIDIA Driver/library version mismatch")
    assert "reboot, or reload the nvidia modules" in err
