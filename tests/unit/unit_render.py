"""Render the roles' systemd unit templates with each role's defaults and vars, as the role's
template task would, through ansible-playbook on localhost (no host is changed)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
PLAYBOOK = shutil.which("ansible-playbook", path=str(REPO / ".venv/bin")) or shutil.which("ansible-playbook")

# name: (role, template, the variables a deployment sets or a fact provides). The variants cover
# each branch of the sandbox: GPU or not, seccomp filters or not, a model below /home.
_NO_SECCOMP = {"seccomp": False, "reason": "systemd_sandbox_seccomp is off"}
_SECCOMP = {"seccomp": True, "reason": ""}
_SERVER = {"llm_server_model_path": "/var/lib/aimachine/models/m", "llm_server_api_key": "x" * 32}
_GATEWAY = {"llm_gateway_model_name": "m"}
UNITS: dict[str, tuple[str, str, dict]] = {
    "llm-server-gpu": ("llm_server", "llm-server.service.j2", {**_SERVER, "llm_server_engine": "vllm"}),
    "llm-server-gpu-noseccomp": (
        "llm_server",
        "llm-server.service.j2",
        {**_SERVER, "llm_server_engine": "vllm", "systemd_sandbox_facts": _NO_SECCOMP},
    ),
    "llm-server-cpu": ("llm_server", "llm-server.service.j2", _SERVER),
    "llm-server-cpu-noseccomp": (
        "llm_server",
        "llm-server.service.j2",
        {**_SERVER, "systemd_sandbox_facts": _NO_SECCOMP},
    ),
    "llm-server-cpu-home": (
        "llm_server",
        "llm-server.service.j2",
        {**_SERVER, "llm_server_model_path": "/home/u/models/m", "llm_server_vllm_download_dir": "/srv/dl"},
    ),
    "llm-watchdog": ("llm_server", "llm-watchdog.service.j2", _SERVER),
    # Each served role is probed by the request it serves (tests/unit/test_llm_watchdog.py).
    "llm-watchdog-embed": ("llm_server", "llm-watchdog.service.j2", {**_SERVER, "llm_server_role": "embed"}),
    "llm-watchdog-rerank": (
        "llm_server",
        "llm-watchdog.service.j2",
        {**_SERVER, "llm_server_role": "rerank", "llm_server_engine": "vllm"},
    ),
    "gateway": ("llm_gateway", "gateway.service.j2", _GATEWAY),
    "gateway-noseccomp": (
        "llm_gateway",
        "gateway.service.j2",
        {**_GATEWAY, "systemd_sandbox_facts": _NO_SECCOMP},
    ),
    "ray-head": ("ray_cluster", "ray.service.j2", {}),
    "ray-head-noseccomp": ("ray_cluster", "ray.service.j2", {"systemd_sandbox_facts": _NO_SECCOMP}),
    "ray-gpu": ("ray_cluster", "ray.service.j2", {"ray_cluster_gpu": True}),
    "ray-gpu-noseccomp": (
        "ray_cluster",
        "ray.service.j2",
        {"ray_cluster_gpu": True, "systemd_sandbox_facts": _NO_SECCOMP},
    ),
    "verify": ("llm_verify", "aimachine-verify.service.j2", {}),
    "verify-noseccomp": ("llm_verify", "aimachine-verify.service.j2", {"systemd_sandbox_facts": _NO_SECCOMP}),
    "frontdoor-firewall": ("llm_frontdoor", "aimachine-frontdoor-firewall.service.j2", {}),
    "frontdoor-nginx-hardening": ("llm_frontdoor", "nginx-hardening.conf.j2", {}),
}
_FACTS = {
    "ansible_managed": "Ansible managed",
    "inventory_hostname": "localhost",
    "systemd_sandbox_facts": _SECCOMP,
    "ansible_facts": {
        "default_ipv4": {"address": "10.0.0.5"},
        "python": {"version": {"major": 3, "minor": 11}},
    },
}


def render_units(out: Path, names: list[str] | None = None) -> dict[str, str]:
    """Render the named units (all by default) into out/<name>; return their text."""
    names = names or list(UNITS)
    plays = []
    for name in names:
        role, template, variables = UNITS[name]
        role_dir = REPO / "roles" / role
        values = dict(_FACTS, **variables)
        (out / f"{name}.json").write_text(json.dumps(values))
        plays.append(
            {
                "name": name,
                "hosts": "localhost",
                "connection": "local",
                "gather_facts": False,
                "vars_files": [
                    str(role_dir / "defaults/main.yml"),
                    str(role_dir / "vars/main.yml"),
                    str(out / f"{name}.json"),
                ],
                "tasks": [
                    {
                        "name": "Render",
                        "ansible.builtin.template": {
                            "src": str(role_dir / "templates" / template),
                            "dest": str(out / name),
                            "mode": "0644",
                        },
                    }
                ],
            }
        )
    (out / "play.yml").write_text(json.dumps(plays))
    # The filters a role finds on its path through its roles (its own and systemd_sandbox's).
    filters = ":".join(str(p) for p in sorted((REPO / "roles").glob("*/filter_plugins")))
    done = subprocess.run(
        [
            PLAYBOOK,
            "-i",
            "localhost,",
            "-e",
            f"ansible_python_interpreter={sys.executable}",
            str(out / "play.yml"),
        ],
        cwd=REPO,
        env=dict(os.environ, ANSIBLE_CONFIG=str(REPO / "ansible.cfg"), ANSIBLE_FILTER_PLUGINS=filters),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return {name: (out / name).read_text() for name in names}
