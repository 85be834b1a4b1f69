"""The nvidia_driver role's decisions (roles/nvidia_driver/filter_plugins/nvidia_driver.py).

Inputs are recorded real outputs (tests/unit/data/nvidia_driver/SOURCES.md): nvidia-smi on the
lent H200 (driver 580) and in a container without a GPU, dpkg-query of the converged molecule
container and of the lent GPU machine, gpg's view of real keyrings.
"""

from __future__ import annotations

import importlib.util
import re
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
DATA = Path(__file__).parent / "data" / "nvidia_driver"

_spec = importlib.util.spec_from_file_location(
    "nvidia_driver_filters", REPO / "roles/nvidia_driver/filter_plugins/nvidia_driver.py"
)
nv = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(nv)


def _read(name: str) -> str:
    return (DATA / name).read_text()


def _rc(name: str) -> int:
    return int((DATA / name).read_text().strip())


# --- "no change when the wanted branch is installed and nvidia-smi works" -------------------


def test_working_driver_of_the_wanted_branch_is_left_alone():
    stdout = _read("lent-h200.smi.driver_version.stdout")
    state = nv.smi_state(_rc("lent-h200.smi.driver_version.rc"), stdout, "580")
    assert state["working"] is True
    assert state["wanted"] is True
    assert all(v.startswith("580.") for v in state["versions"])


def test_working_driver_of_another_branch_is_replaced():
    stdout = _read("lent-h200.smi.driver_version.stdout")
    state = nv.smi_state(_rc("lent-h200.smi.driver_version.rc"), stdout, "570")
    assert state["working"] is True
    assert state["wanted"] is False
    assert "570" in state["reason"] and stdout.split()[0] in state["reason"]


def test_exact_version_must_match_when_given():
    stdout = _read("lent-h200.smi.driver_version.stdout")
    running = stdout.split()[0]
    assert nv.smi_state(0, stdout, "580", running)["wanted"] is True
    other = running.rsplit(".", 1)[0] + ".99" if running.count(".") == 2 else running + ".99"
    assert nv.smi_state(0, stdout, "580", other)["wanted"] is False


def test_nvidia_smi_without_a_driver_is_not_working():
    # Debian 12's nvidia-smi 535 in a container without a GPU: exit 255, message on stdout.
    state = nv.smi_state(255, _read("nvidia-smi.driver_version.debian12-no-gpu.txt"), "535")
    assert state["working"] is False and state["wanted"] is False
    assert "Failed to initialize NVML" in state["reason"]


def test_missing_nvidia_smi_is_not_working():
    # Ansible's command module reports a missing executable as rc 2 with no output.
    state = nv.smi_state(2, "", "580")
    assert state["working"] is False and state["wanted"] is False and state["versions"] == []
    assert state["reason"] == "nvidia-smi is not installed"


def test_exit_zero_with_garbage_is_not_working():
    # A line that is not a version (e.g. an error text) must not count as a working driver.
    assert nv.smi_state(0, "580.95.05\nNo devices were found\n", "580")["working"] is False


def test_bad_branch_is_a_clear_error():
    with pytest.raises(nv.NvidiaDriverError, match="three digits"):
        nv.smi_state(0, "580.95.05", "58")


# --- apt version patterns ------------------------------------------------------------------


def test_branch_regex_matches_debian_and_ubuntu_versions():
    regex = re.compile(nv.version_regex("580"))
    for version in ("580.95.05-0ubuntu1", "580.95.05-1", "1:580.95.05-0ubuntu0.24.04.2"):
        assert regex.match(version), version
    for version in ("590.44.01-1", "5800.1-1", "58.0-1", "535.309.01-0+deb12u1"):
        assert not regex.match(version), version


def test_exact_version_regex_needs_the_revision():
    regex = re.compile(nv.version_regex("580", "580.95.05"))
    assert regex.match("580.95.05-0ubuntu1")
    assert not regex.match("580.95.051-1")
    assert not regex.match("580.95.0-1")


def test_exact_version_of_another_branch_is_refused():
    with pytest.raises(nv.NvidiaDriverError, match="branch 580"):
        nv.version_regex("580", "570.172.08")


def test_regex_is_the_same_for_apt(tmp_path):
    """apt reads the pin's regex as POSIX ERE: grep -E must agree with Python on real versions."""
    if not shutil.which("grep"):
        pytest.skip("grep not available")
    madison = _read("apt-cache-madison.nvidia-smi.debian12.txt")
    versions = [line.split(" | ")[1] for line in madison.splitlines()]
    sample = tmp_path / "versions"
    sample.write_text("\n".join([*versions, "580.95.05-1", "1:535.1-1"]) + "\n")
    regex = nv.version_regex("535")
    grep = subprocess.run(["grep", "-E", regex, str(sample)], capture_output=True, text=True, check=False)
    assert grep.stdout.split() == [v for v in sample.read_text().split() if re.match(regex, v)]
    assert grep.stdout.split() == [*versions, "1:535.1-1"]


def test_upstream_version():
    assert nv.upstream_version("535.309.01-0+deb12u1") == "535.309.01"
    assert nv.upstream_version("1:580.95.05-0ubuntu0.24.04.2") == "580.95.05"
    assert nv.upstream_version("580.95.05") == "580.95.05"


# --- holds ---------------------------------------------------------------------------------


def _rows() -> list[dict]:
    return nv.dpkg_packages(_read("dpkg-query.debian12-userspace-535.tsv"))


def test_hold_list_covers_the_driver_and_its_dependencies_only():
    held = nv.hold_list(_rows(), nv.version_regex("535"))
    expected = {"nvidia-smi", "libcuda1", "libnvidia-ml1", "libnvidia-ptxjitcompiler1", "nvidia-alternative"}
    assert expected <= set(held)
    # Helpers with their own version scheme stay out (nvidia-support 20220217+3~deb12u1).
    assert "nvidia-support" not in held and "glx-alternative-nvidia" not in held
    # The recorded host is the converged molecule container: exactly these are held there.
    assert held == sorted(r["name"] for r in _rows() if r["held"])


def test_nothing_to_hold_for_another_branch():
    assert nv.hold_list(_rows(), nv.version_regex("580")) == []


def test_branch_change_releases_the_old_holds():
    released = nv.release_list(_rows(), nv.version_regex("580"))
    assert released == sorted(r["name"] for r in _rows() if r["held"])
    assert nv.release_list(_rows(), nv.version_regex("535")) == []


def test_release_never_touches_non_driver_versions():
    rows = [
        {"name": "nvidia-container-toolkit", "version": "1.17.8-1", "held": True, "installed": True},
        {"name": "linux-modules-nvidia-580-generic", "version": "6.8.0-45", "held": True, "installed": True},
        {"name": "nvidia-smi", "version": "535.309.01-0+deb12u1", "held": True, "installed": True},
    ]
    assert nv.release_list(rows, nv.version_regex("580")) == ["nvidia-smi"]


def test_cuda_libraries_of_a_gpu_container_are_not_driver_packages():
    # The lent GPU machine: an Ubuntu 24.04 container whose driver libraries come from its host;
    # its image holds CUDA 13.0 libraries (libnvjitlink-13-0 13.0.88-1, ...) and carries
    # cuda-compat-13-0 580.95.05. None of them is a driver package to hold or release.
    rows = nv.dpkg_packages(_read("dpkg-query.lent-h200-ubuntu2404-container.tsv"))
    assert any(r["held"] for r in rows)
    assert any(r["name"].startswith("libnv") for r in rows)
    assert nv.hold_list(rows, nv.version_regex("580")) == []
    assert nv.release_list(rows, nv.version_regex("570")) == []
    assert nv.module_packages(rows) == []


def test_host_module_version_pins_the_container_libraries():
    # In that container /sys/module/nvidia/version is the host's module; user-space-only mode
    # pins the libraries to it exactly.
    loaded = _read("lent-h200.sys-module-nvidia-version.txt").strip()
    regex = re.compile(nv.version_regex(loaded.split(".")[0], loaded))
    assert regex.match(loaded + "-0ubuntu1")
    assert not regex.match("580.95.05-0ubuntu1")


def test_module_packages():
    assert nv.module_packages(_rows()) == []
    rows = [
        {"name": "nvidia-kernel-open-dkms", "installed": True},
        {"name": "nvidia-dkms-580-open", "installed": True},
        {"name": "linux-modules-nvidia-580-server-open-generic", "installed": True},
        {"name": "nvidia-kernel-dkms", "installed": False},
        {"name": "nvidia-smi", "installed": True},
    ]
    assert nv.module_packages(rows) == [
        "linux-modules-nvidia-580-server-open-generic",
        "nvidia-dkms-580-open",
        "nvidia-kernel-open-dkms",
    ]


def test_dpkg_rows_parse_status():
    rows = {r["name"]: r for r in _rows()}
    assert rows["nvidia-smi"]["held"] and rows["nvidia-smi"]["installed"]
    assert rows["nvidia-smi"]["version"].startswith("535.")
    assert not rows["nvidia-support"]["held"]
    assert nv.installed_version(_rows(), "libcuda1").startswith("535.")
    assert nv.installed_version(_rows(), "nvidia-kernel-dkms") == ""


# --- repository key --------------------------------------------------------------------------


def test_single_key_file_has_one_primary_fingerprint():
    # Debian's bookworm release key, read by gpg 2.2.40 --show-keys --with-colons.
    assert nv.primary_fingerprints(_read("gpg.debian-archive-bookworm-stable.colons")) == [
        "4D64FEC119C2029067D6E791F8D2585B8783D481"
    ]


def test_keyring_with_several_keys_is_not_one_key():
    colons = _read("gpg.debian-archive-keyring.colons")
    primaries = nv.primary_fingerprints(colons)
    assert len(primaries) == colons.count("\npub:") + colons.startswith("pub:")
    assert len(primaries) > 1
    # Subkey fingerprints (after "sub") are not primaries.
    all_fpr = [line.split(":")[9] for line in colons.splitlines() if line.startswith("fpr:")]
    assert len(all_fpr) > len(primaries)
    assert set(primaries) < set(all_fpr)
