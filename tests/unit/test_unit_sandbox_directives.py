"""Every unit the roles write carries the sandbox it carried before the directives moved into one
place (roles/systemd_sandbox/filter_plugins/systemd_sandbox.py, issue 20 point 2).

data/units/<name> is each unit as the role's own template rendered it before the move (recorded
with unit_render.py, before the templates changed); the unit rendered now must hold the same
directives, order and comments aside, but for the differences listed here: each a setting
systemd already applies by default (so behaviour is unchanged), except the verify unit's device
cgroup, added on purpose.
"""

from __future__ import annotations

import importlib.util
from collections import Counter
from pathlib import Path

import pytest
from unit_render import PLAYBOOK, REPO, UNITS, render_units

DATA = Path(__file__).parent / "data" / "units"

# The verify unit's device cgroup, closed but for NVIDIA's nodes, is added on purpose: its
# capabilities could switch to the disk group otherwise.
VERIFY_ADDED = [
    "KeyringMode=private",
    "DevicePolicy=closed",
    "DeviceAllow=char-nvidia-frontend rw",
    "DeviceAllow=char-nvidia-uvm rw",
    "DeviceAllow=char-nvidia-caps r",
    "DeviceAllow=/dev/nvidiactl rw",
    "DeviceAllow=/dev/nvidia-uvm rw",
    "DeviceAllow=/dev/nvidia-uvm-tools rw",
]
# PrivateDevices=yes implies DevicePolicy=closed; KeyringMode=private is the system manager's
# default; AmbientCapabilities= empty is the default (systemd.exec(5)).
ADDED = {
    "llm-server-cpu": ["DevicePolicy=closed"],
    "llm-server-cpu-home": ["DevicePolicy=closed"],
    "gateway": ["DevicePolicy=closed"],
    "ray-head": ["DevicePolicy=closed"],
    "frontdoor-firewall": ["KeyringMode=private", "DevicePolicy=closed"],
    "frontdoor-nginx-hardening": ["AmbientCapabilities="],
    "verify": VERIFY_ADDED,
    "verify-noseccomp": VERIFY_ADDED,
}


def _directives(text: str) -> Counter:
    return Counter(line for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#"))


@pytest.fixture(scope="module")
def rendered(tmp_path_factory) -> dict[str, str]:
    return render_units(tmp_path_factory.mktemp("units"))


@pytest.mark.skipif(PLAYBOOK is None, reason="ansible-playbook is not installed")
@pytest.mark.parametrize("name", list(UNITS))
def test_unit_keeps_its_directives(rendered, name):
    before = _directives((DATA / name).read_text())
    now = _directives(rendered[name])
    assert now - before == Counter(ADDED.get(name, [])), f"{name}: added {now - before}"
    assert before - now == Counter(), f"{name}: lost {before - now}"


@pytest.mark.skipif(PLAYBOOK is None, reason="ansible-playbook is not installed")
def test_left_out_settings_say_why(rendered):
    for name in [n for n in UNITS if n.endswith("-noseccomp")]:
        assert "): systemd_sandbox_seccomp is off" in rendered[name], name
        assert not any(d.startswith("SystemCallFilter=") for d in _directives(rendered[name])), name


@pytest.mark.skipif(PLAYBOOK is None, reason="ansible-playbook is not installed")
def test_no_template_writes_the_sandbox_itself():
    """The directive set lives in the filter: a template that writes one again is a second owner."""
    for template in sorted(REPO.glob("roles/*/templates/*.j2")):
        text = template.read_text()
        for directive in (
            "NoNewPrivileges=",
            "ProtectSystem=",
            "SystemCallFilter=",
            "RestrictAddressFamilies=",
        ):
            assert directive not in text, f"{template.relative_to(REPO)} writes {directive}"


def _filter():
    path = REPO / "roles/systemd_sandbox/filter_plugins/systemd_sandbox.py"
    spec = importlib.util.spec_from_file_location("systemd_sandbox_filter", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.systemd_sandbox


def test_facts_decide_for_a_user_unit_and_a_root_unit_decides_itself():
    sandbox = _filter()
    off = {"seccomp": False, "reason": "no CAP_SYS_ADMIN"}
    assert "SystemCallFilter=@system-service" not in sandbox(off)
    assert "...): no CAP_SYS_ADMIN" in sandbox(off)
    assert "SystemCallFilter=@system-service" in sandbox(off, seccomp=True)
    assert "Left out" not in sandbox(off, seccomp=False)
    # No facts (a controller rendering files for another host): the full sandbox.
    assert "PrivateDevices=yes" in sandbox({})
