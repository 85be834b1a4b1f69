"""The sandbox directives of an aimachine systemd unit, from the unit's inputs (one place for them).

A unit template writes ``{{ systemd_sandbox_facts | default({}) | systemd_sandbox(...) }}`` in its
[Service] section. What each directive does and why: roles/systemd_sandbox/README.md and
docs/reliability.md.
"""

from __future__ import annotations

import shlex
from collections.abc import Iterable, Mapping
from typing import Any

# The NVIDIA device nodes a GPU process opens (plus the pseudo-devices DevicePolicy=closed keeps):
# nvidia-frontend covers nvidia0..N, nvidiactl and nvidia-modeset; nvidia-uvm covers nvidia-uvm
# and nvidia-uvm-tools; nvidia-caps the MIG capability nodes.
NVIDIA_DEVICES = (
    "char-nvidia-frontend rw",
    "char-nvidia-uvm rw",
    "char-nvidia-caps r",
    "/dev/nvidiactl rw",
    "/dev/nvidia-uvm rw",
    "/dev/nvidia-uvm-tools rw",
)

# Enforced through seccomp filters: systemd 256+ cannot install them for a service user where PID 1
# lacks CAP_SYS_ADMIN (systemd#34565), so they follow systemd_sandbox_facts.seccomp.
_FILTERED = (
    "RestrictSUIDSGID=yes",
    "LockPersonality=yes",
    "RestrictRealtime=yes",
    "RestrictNamespaces=yes",
    "ProtectKernelTunables=yes",
    "ProtectKernelModules=yes",
    "ProtectKernelLogs=yes",
    "ProtectClock=yes",
    "ProtectHostname=yes",
    "SystemCallArchitectures=native",
    "SystemCallFilter=@system-service",
)


def _on(value: Any) -> bool:
    return value if isinstance(value, bool) else str(value).strip().lower() in ("true", "yes", "on", "1")


def systemd_sandbox(
    facts: Mapping[str, Any] | None,
    *,
    read_write_paths: Iterable[str] = (),
    protect_home: str = "yes",
    devices: Iterable[str] | None = (),
    address_families: Iterable[str] = ("AF_UNIX", "AF_INET", "AF_INET6"),
    capabilities: Iterable[str] | None = (),
    ambient_capabilities: Iterable[str] = (),
    namespaces: bool = False,
    remove_ipc: bool = False,
    protect_proc: str = "",
    proc_subset: str = "",
    protect_control_groups: bool = True,
    ip_allow: str | None = None,
    memory_deny_write_execute: bool = False,
    system_call_deny: Iterable[str] = (),
    seccomp: bool | None = None,
    extras: Iterable[str] = (),
) -> str:
    """The unit's sandbox lines, one string.

    facts: systemd_sandbox_facts (seccomp, reason); seccomp: None follows them (a unit with its
    own User=), true or false decides (a root unit: systemd#34565 does not apply to it).
    devices: None writes no device settings; [] no device at all (PrivateDevices where filters
    apply, else the device cgroup closed); a list of DeviceAllow= values, "nvidia" for NVIDIA's.
    capabilities: None writes no capability settings (a root unit that keeps them); a list, the
    bounding set (empty: none); ambient_capabilities, those the service's user keeps.
    namespaces: the unit's programs create namespaces and mounts (a sandbox of their own, e.g.
    bubblewrap), so no RestrictNamespaces and no @system-service filter (it lacks mount(2)).
    ip_allow: None, no IP filter; else deny all but these.
    """
    facts = facts or {}
    filtered = _on(facts.get("seccomp", True)) if seccomp is None else _on(seccomp)
    lines = ["NoNewPrivileges=yes"]
    if capabilities is not None:
        lines += [
            f"CapabilityBoundingSet={' '.join(capabilities)}",
            f"AmbientCapabilities={' '.join(ambient_capabilities)}",
            "KeyringMode=private",
        ]
    if _on(remove_ipc):
        lines.append("RemoveIPC=yes")
    lines += ["ProtectSystem=strict"]
    if read_write_paths:
        lines.append("ReadWritePaths=" + " ".join(shlex.quote(str(p)) for p in read_write_paths))
    lines += [f"ProtectHome={protect_home}", "PrivateTmp=yes"]
    if protect_proc:
        lines.append(f"ProtectProc={protect_proc}")
    if proc_subset:
        lines.append(f"ProcSubset={proc_subset}")
    if _on(protect_control_groups):
        lines.append("ProtectControlGroups=yes")
    if devices is not None:
        # PrivateDevices installs a filter too; the device cgroup alone closes /dev where it cannot.
        lines.append("DevicePolicy=closed")
        if devices:
            allowed = [d for entry in devices for d in (NVIDIA_DEVICES if entry == "nvidia" else [entry])]
            lines += [f"DeviceAllow={d}" for d in allowed]
        elif filtered:
            lines.append("PrivateDevices=yes")
    if ip_allow is not None:
        lines += ["IPAddressDeny=any", f"IPAddressAllow={ip_allow}"]
    if _on(memory_deny_write_execute):
        lines.append("MemoryDenyWriteExecute=yes")
    if filtered:
        lines.append("# Enforced through seccomp filters; a refused system call fails with EPERM.")
        own_namespaces = _on(namespaces)
        skip = ("RestrictNamespaces=yes", "SystemCallFilter=@system-service") if own_namespaces else ()
        lines += [d for d in _FILTERED if d not in skip]
        lines.append(f"RestrictAddressFamilies={' '.join(address_families)}")
        if system_call_deny:
            lines.append("SystemCallFilter=~" + " ".join(system_call_deny))
        if not own_namespaces or system_call_deny:
            lines.append("SystemCallErrorNumber=EPERM")
    elif seccomp is None:
        lines += [
            "# Left out: the settings enforced through seccomp filters",
            "# (SystemCallFilter, RestrictAddressFamilies,",
            f"# RestrictNamespaces, ProtectKernel*, ...): {facts.get('reason', '')}",
            "# (systemd_sandbox role, docs/reliability.md).",
        ]
    lines += list(extras)
    return "\n".join(lines)


class FilterModule:
    def filters(self) -> dict[str, Any]:
        return {"systemd_sandbox": systemd_sandbox}
