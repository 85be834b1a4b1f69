"""llm_preflight against this machine (connection local, --check): a full disk and a driver/library
version mismatch stop the play before any change, with the numbers and the fix."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[1]
PLAYBOOK = Path(sys.executable).parent / "ansible-playbook"
SMI_DATA = ROOT / "scripts/tests/data/nvidia-smi"
GIB = 1024**3

PLAY = """
- name: Preflight only
  hosts: localhost
  connection: local
  gather_facts: true
  roles:
    - llm_preflight
  post_tasks:
    - name: Show the facts
      ansible.builtin.debug:
        msg: "FACTS {{ llm_preflight_facts | to_json }}"
"""


def run_preflight(tmp_path: Path, extra: dict[str, object], path_prefix: Path | None = None):
    playbook = tmp_path / "preflight.yml"
    playbook.write_text(PLAY)
    args = [str(PLAYBOOK), "-i", "localhost,", str(playbook), "--check"]
    for name, value in extra.items():
        args += ["-e", f"{name}={value}"]
    env = {
        "ANSIBLE_CONFIG": str(ROOT / "ansible.cfg"),
        "ANSIBLE_ROLES_PATH": str(ROOT / "roles"),
        "ANSIBLE_NOCOLOR": "1",
        "ANSIBLE_PYTHON_INTERPRETER": "/usr/bin/python3",
        "PATH": (f"{path_prefix}:" if path_prefix else "") + "/usr/bin:/bin:/usr/sbin:/sbin",
    }
    done = subprocess.run(args, capture_output=True, text=True, timeout=300, env=env, check=False)
    return done, " ".join((done.stdout + done.stderr).split())


def free_bytes(path: str) -> int:
    stat = os.statvfs(path)
    return stat.f_bavail * stat.f_frsize


def test_model_too_large_for_its_disk_names_the_numbers(tmp_path):
    extra = {"llm_preflight_mode": "cpu", "llm_preflight_model_dir": tmp_path / "models" / "m"}
    done, out = run_preflight(tmp_path, extra | {"llm_preflight_model_size_bytes": 10**15})
    assert done.returncode != 0, out[-2000:]
    assert "Not enough disk space for the model on /" in out, out[-2000:]
    assert "needed = model 1000000000000000" in out
    assert "llm_preflight_model_size_bytes" in out and "Nothing was changed" in out
    assert not (tmp_path / "models").exists()


def test_a_partly_downloaded_model_needs_only_the_rest(tmp_path):
    size = 20 * GIB
    model = tmp_path / "partial"
    model.mkdir()
    # Apparent size is what du -sb counts: a sparse file stands for the bytes already downloaded.
    with open(model / "model-00001-of-00002.safetensors", "wb") as shard:
        shard.truncate(size)
    reserve = free_bytes(str(tmp_path)) - 2 * GIB  # room for the reserve, not for 20 GiB more
    common = {"llm_preflight_mode": "cpu", "llm_preflight_model_size_bytes": size}
    common["llm_preflight_disk_reserve_bytes"] = reserve
    done, out = run_preflight(tmp_path, common | {"llm_preflight_model_dir": model})
    assert done.returncode == 0, out[-2000:]
    done, out = run_preflight(tmp_path, common | {"llm_preflight_model_dir": tmp_path / "absent"})
    assert done.returncode != 0
    assert f"needed = model {size} (llm_preflight_model_size_bytes {size} minus 0 already there)" in out, out[
        -2000:
    ]


@pytest.mark.skipif(
    os.stat("/dev/shm").st_dev == os.stat("/").st_dev, reason="needs a second filesystem (/dev/shm)"
)
def test_venvs_on_another_filesystem_are_checked_there(tmp_path):
    done, out = run_preflight(
        tmp_path,
        {
            "llm_preflight_mode": "cpu",
            "llm_preflight_model_dir": tmp_path / "models",
            "llm_preflight_venv_dir": "/dev/shm/aimachine-test-absent/engines",
            "llm_preflight_venv_size_bytes": 10**15,
        },
    )
    assert done.returncode != 0, out[-2000:]
    assert "Not enough disk space for the engine venvs on /dev/shm" in out, out[-2000:]
    assert "needed = engine venvs 1000000000000000 (llm_preflight_venv_size_bytes)" in out
    assert not Path("/dev/shm/aimachine-test-absent").exists()


def _fake_nvidia_smi(tmp_path: Path, recorded: str) -> Path:
    """nvidia-smi replaying the recorded real output of a driver/library mismatch (exit 18)."""
    bindir = tmp_path / "bin"
    bindir.mkdir()
    smi = bindir / "nvidia-smi"
    smi.write_text(f"#!/bin/sh\ncat {SMI_DATA / recorded}\nexit 18\n")
    smi.chmod(0o755)
    return bindir


@pytest.mark.skipif(
    Path("/proc/driver/nvidia/version").exists(), reason="a real NVIDIA driver is loaded here"
)
def test_driver_library_mismatch_fails_with_the_fix(tmp_path):
    bindir = _fake_nvidia_smi(tmp_path, "driver-mismatch.truenas-19.nvidia-smi.txt")
    done, out = run_preflight(tmp_path, {"llm_preflight_mode": "auto"}, path_prefix=bindir)
    assert done.returncode != 0, out[-2000:]
    assert "Driver/library version mismatch: kernel module unknown, userspace library 580.178" in out, out[
        -2000:
    ]
    assert "Fix: reboot, or reload the nvidia modules" in out


@pytest.mark.skipif(
    Path("/proc/driver/nvidia/version").exists(), reason="a real NVIDIA driver is loaded here"
)
def test_driver_library_mismatch_in_cpu_mode_is_a_fact_not_a_failure(tmp_path):
    bindir = _fake_nvidia_smi(tmp_path, "driver-mismatch.gputil-55.txt")
    done, out = run_preflight(tmp_path, {"llm_preflight_mode": "cpu"}, path_prefix=bindir)
    assert done.returncode == 0, out[-2000:]
    assert '"driver_mismatch": true' in out and '"mode": "cpu"' in out
