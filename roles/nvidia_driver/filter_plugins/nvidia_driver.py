"""Decisions of the nvidia_driver role, as Ansible filters (stdlib only; tests import this file).

- ``nvidia_driver_smi_state``: what ``nvidia-smi --query-gpu=driver_version --format=csv,noheader``
  says: does a driver answer, which versions, is it the wanted branch (and version).
- ``nvidia_driver_version_regex``: the apt version regex of a branch or exact version, for the apt
  pin and for matching installed packages.
- ``nvidia_driver_upstream_version``: ``580.95.05`` from a Debian version like ``1:580.95.05-0ubuntu1``.
- ``nvidia_driver_primary_fingerprints``: primary-key fingerprints in ``gpg --with-colons`` output.
- ``nvidia_driver_dpkg_packages``: parse ``dpkg-query -W -f='${Package}\\t${Version}\\t${Status}\\n'``.
- ``nvidia_driver_hold_list`` / ``nvidia_driver_release_list`` / ``nvidia_driver_module_packages``:
  which installed driver packages to hold, which held ones of another branch to release before a
  deliberate branch change, and which kernel-module packages are present.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

# Names of driver packages, in NVIDIA's and the distributions' packaging: anything with "nvidia"
# in its name, the CUDA driver library, NVIDIA's other libnv* libraries and cuda-drivers*. The
# apt pin uses the same set as globs (templates/nvidia-driver.pref.j2); versions decide the rest.
DRIVER_NAME = re.compile(r"^(.*nvidia.*|libcuda.*|libnv.*|cuda-drivers.*)$")
# A driver version starts with a three-digit branch (535.309.01-0+deb12u1, 1:580.95.05-0ubuntu1):
# tells driver packages from others that match the names (nvidia-container-toolkit 1.17.8-1,
# linux-modules-nvidia-580-generic 6.8.0-45.45).
DRIVER_VERSION = re.compile(r"^([0-9]+:)?[0-9]{3}\.[0-9]+")
# Packages that carry or build a kernel module; userspace-only mode must install none.
MODULE_PACKAGE = re.compile(r"^(.*nvidia.*dkms.*|linux-modules-nvidia.*|linux-objects-nvidia.*)$")
SMI_VERSION = re.compile(r"^[0-9]{3}\.[0-9]+(\.[0-9]+)?$")
BRANCH = re.compile(r"^[0-9]{3}$")

try:  # Inside Ansible the error is an AnsibleFilterError; standalone a ValueError.
    from ansible.errors import AnsibleFilterError as _BaseError
except ImportError:  # pragma: no cover - depends on the environment
    _BaseError = ValueError  # type: ignore[misc,assignment]


class NvidiaDriverError(_BaseError):  # type: ignore[misc,valid-type]
    """Bad input to one of the role's decisions."""


def _branch(branch: Any) -> str:
    text = str(branch).strip()
    if not BRANCH.match(text):
        raise NvidiaDriverError(f"a driver branch is three digits like '580', got {branch!r}")
    return text


def version_regex(branch: Any, version: str = "") -> str:
    """apt version regex (POSIX ERE and Python alike) of a branch, or of one exact driver version.

    An optional epoch is allowed; an exact version must be followed by the Debian revision.
    """
    wanted = _branch(branch)
    if version:
        if not SMI_VERSION.match(version) or not version.startswith(wanted + "."):
            raise NvidiaDriverError(
                f"nvidia_driver_version must be a driver version of branch {wanted} like "
                f"'{wanted}.95.05', got {version!r}"
            )
        return "^([0-9]+:)?" + re.escape(version) + "-"
    return "^([0-9]+:)?" + wanted + "\\."


def upstream_version(deb_version: str) -> str:
    """The driver's own version inside a Debian version string: drop epoch and revision."""
    text = deb_version.strip()
    if ":" in text:
        text = text.split(":", 1)[1]
    return text.rsplit("-", 1)[0] if "-" in text else text


def smi_state(rc: Any, stdout: str, branch: Any, version: str = "") -> dict[str, Any]:
    """Decide from one nvidia-smi driver_version query whether the wanted driver already works.

    ``working``: nvidia-smi exited 0 and every line is a driver version (one line per GPU).
    ``wanted``: working, and every GPU runs the wanted branch (and exact version, when given).
    """
    wanted_branch = _branch(branch)
    lines = [line.strip() for line in (stdout or "").splitlines() if line.strip()]
    try:
        code = int(rc)
    except (TypeError, ValueError):
        code = -1
    versions = [line for line in lines if SMI_VERSION.match(line)]
    working = code == 0 and bool(lines) and len(versions) == len(lines)
    if not working:
        reason = (
            "nvidia-smi is not installed"
            if code == 2 and not lines
            else f"nvidia-smi failed (exit {code}): {' / '.join(lines)[:200] or 'no output'}"
        )
        return {"working": False, "versions": [], "wanted": False, "reason": reason}
    branches = sorted({v.split(".", 1)[0] for v in versions})
    wanted = branches == [wanted_branch] and (not version or set(versions) == {version})
    if wanted:
        reason = f"driver {versions[0]} (branch {wanted_branch}) answers on {len(versions)} GPU(s)"
    else:
        want = version or f"branch {wanted_branch}"
        reason = f"driver {', '.join(sorted(set(versions)))} answers, but {want} is wanted"
    return {"working": True, "versions": versions, "wanted": wanted, "reason": reason}


def primary_fingerprints(colons: str) -> list[str]:
    """Fingerprints of the primary keys (not subkeys) in ``gpg --with-colons`` output."""
    found: list[str] = []
    after_pub = False
    for line in (colons or "").splitlines():
        fields = line.split(":")
        if fields[0] == "pub":
            after_pub = True
        elif fields[0] == "fpr" and after_pub and len(fields) > 9:
            found.append(fields[9].upper())
            after_pub = False
        elif fields[0] in ("sub", "ssb", "sec"):
            after_pub = False
    return found


def dpkg_packages(stdout: str) -> list[dict[str, Any]]:
    """Rows of ``dpkg-query -W -f='${Package}\\t${Version}\\t${Status}\\n'``."""
    rows = []
    for line in (stdout or "").splitlines():
        parts = line.split("\t")
        if len(parts) != 3 or not parts[0]:
            continue
        want, _flag, state = ([*parts[2].split(), "", "", ""])[:3]
        rows.append(
            {
                "name": parts[0],
                "version": parts[1],
                "selection": want,
                "installed": state == "installed",
                "held": want == "hold",
            }
        )
    return rows


def _driver_rows(rows: Iterable[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    return [r for r in rows if r.get("installed") and DRIVER_NAME.match(str(r.get("name", "")))]


def hold_list(rows: Sequence[Mapping[str, Any]], regex: str) -> list[str]:
    """Installed driver packages whose version is the wanted branch/version: these get held."""
    wanted = re.compile(regex)
    return sorted(str(r["name"]) for r in _driver_rows(rows) if wanted.match(str(r.get("version", ""))))


def release_list(rows: Sequence[Mapping[str, Any]], regex: str) -> list[str]:
    """Held driver packages of another branch/version: released before a deliberate branch change."""
    wanted = re.compile(regex)
    return sorted(
        str(r["name"])
        for r in _driver_rows(rows)
        if r.get("held")
        and DRIVER_VERSION.match(str(r.get("version", "")))
        and not wanted.match(str(r.get("version", "")))
    )


def module_packages(rows: Sequence[Mapping[str, Any]]) -> list[str]:
    """Installed packages that build or carry an NVIDIA kernel module."""
    return sorted(str(r["name"]) for r in rows if r.get("installed") and MODULE_PACKAGE.match(str(r["name"])))


def installed_version(rows: Sequence[Mapping[str, Any]], name: str) -> str:
    """Version of one installed package, or '' when it is not installed."""
    for row in rows:
        if row.get("name") == name and row.get("installed"):
            return str(row.get("version", ""))
    return ""


class FilterModule:
    """Ansible entry point."""

    def filters(self) -> dict[str, Any]:
        return {
            "nvidia_driver_smi_state": smi_state,
            "nvidia_driver_version_regex": version_regex,
            "nvidia_driver_upstream_version": upstream_version,
            "nvidia_driver_primary_fingerprints": primary_fingerprints,
            "nvidia_driver_dpkg_packages": dpkg_packages,
            "nvidia_driver_hold_list": hold_list,
            "nvidia_driver_release_list": release_list,
            "nvidia_driver_module_packages": module_packages,
            "nvidia_driver_installed_version": installed_version,
        }
