"""One owner per value: a host-role setting passed through unchanged to a component role has the
component's own default (issue 20 point 1).

The host role restates these defaults on purpose (its argument spec validates every appliance
setting before any component runs, and its README is the one list a user reads); this test keeps
each restated default equal to the component's, so the two can never drift apart.
"""

from __future__ import annotations

import re
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
HOST = ROOT / "roles" / "vm-llm-aimachine"
PASS = re.compile(r"^\{\{\s*(vm_llm_aimachine_[a-z0-9_]+)\s*\}\}$")


def _tasks(node, role=None):
    """(component role, its variable, the host variable) for every pure pass-through."""
    if isinstance(node, list):
        for item in node:
            yield from _tasks(item, role)
    elif isinstance(node, dict):
        for key in ("ansible.builtin.include_role", "ansible.builtin.import_role"):
            if isinstance(node.get(key), dict):
                role = node[key].get("name")
        for name, value in (node.get("vars") or {}).items() if isinstance(node.get("vars"), dict) else []:
            match = PASS.match(str(value).strip())
            if role and match and not name.startswith("__"):
                yield role, name, match.group(1)
        for key in ("block", "rescue", "always"):
            if key in node:
                yield from _tasks(node[key], role)


def _defaults(role: str) -> dict:
    return yaml.safe_load((ROOT / "roles" / role / "defaults" / "main.yml").read_text()) or {}


def passthroughs() -> list[tuple[str, str, str]]:
    found = set()
    for path in sorted((HOST / "tasks").glob("*.yml")):
        found.update(_tasks(yaml.safe_load(path.read_text())))
    return sorted(found)


def test_the_host_role_passes_settings_through():
    # The check below must have something to check.
    assert len(passthroughs()) >= 10


def test_a_passed_through_default_equals_the_component_default():
    host = _defaults("vm-llm-aimachine")
    differ = []
    for role, name, setting in passthroughs():
        component = _defaults(role)
        if setting in host and name in component and host[setting] != component[name]:
            differ.append(f"{setting}: {host[setting]!r} but {role}'s {name}: {component[name]!r}")
    assert differ == [], "\n".join(differ)
