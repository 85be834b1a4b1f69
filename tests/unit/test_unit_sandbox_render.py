"""The engine unit as playbooks/render-serving-config.yml renders it, with and without the
seccomp-based sandbox settings (role systemd_sandbox; docs/reliability.md)."""

from __future__ import annotations

from pathlib import Path

import pytest
from render_playbook import PLAYBOOK, render_serving_config

# The settings systemd 256+ installs as seccomp filters (each one alone fails with 217/USER for a
# service user where PID 1 lacks CAP_SYS_ADMIN).
SECCOMP_BASED = (
    "SystemCallFilter=",
    "SystemCallArchitectures=",
    "RestrictAddressFamilies=",
    "RestrictNamespaces=",
    "RestrictSUIDSGID=",
    "RestrictRealtime=",
    "LockPersonality=",
    "ProtectKernelTunables=",
    "ProtectKernelModules=",
    "ProtectKernelLogs=",
    "ProtectClock=",
    "ProtectHostname=",
    "PrivateDevices=",
)
# Kept in every case.
ALWAYS = (
    "NoNewPrivileges=yes",
    "CapabilityBoundingSet=",
    "ProtectSystem=strict",
    "PrivateTmp=yes",
    "IPAddressDeny=any",
    "DevicePolicy=closed",
)


def _render(tmp_path: Path, *extra_vars: str) -> list[str]:
    render_serving_config(f"render_dir={tmp_path}", *extra_vars)
    return (tmp_path / "aimachine-llm.service").read_text().splitlines()


@pytest.mark.skipif(PLAYBOOK is None, reason="ansible-playbook is not installed")
def test_rendered_unit_carries_the_full_sandbox(tmp_path):
    unit = _render(tmp_path)
    for setting in SECCOMP_BASED[:-1]:  # the GPU unit has the NVIDIA allow list, not PrivateDevices
        assert any(line.startswith(setting) for line in unit), setting
    assert all(any(line.startswith(setting) for line in unit) for setting in ALWAYS)
    assert not any("Left out" in line for line in unit)


@pytest.mark.skipif(PLAYBOOK is None, reason="ansible-playbook is not installed")
def test_seccomp_off_leaves_out_exactly_the_filter_settings_and_says_why(tmp_path):
    unit = _render(tmp_path, "systemd_sandbox_seccomp=off")
    for setting in SECCOMP_BASED:
        assert not any(line.startswith(setting) for line in unit), setting
    assert all(any(line.startswith(setting) for line in unit) for setting in ALWAYS)
    reason = [line for line in unit if line.startswith("# RestrictNamespaces, ProtectKernel*")]
    assert reason and reason[0].endswith(": systemd_sandbox_seccomp is off"), reason


@pytest.mark.skipif(PLAYBOOK is None, reason="ansible-playbook is not installed")
def test_the_engine_unit_caps_its_memory(tmp_path):
    """One runaway request must not take the host's memory (issue 18, item 2): the unit carries
    MemoryHigh/MemoryMax, the user's values here (a deployment derives them from the host's RAM)."""
    unit = _render(tmp_path, "llm_server_memory_high=10G", "llm_server_memory_max=12G")
    assert "MemoryHigh=10G" in unit and "MemoryMax=12G" in unit
