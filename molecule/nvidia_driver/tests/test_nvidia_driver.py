"""The converged container: Debian 12's own NVIDIA user-space driver (535), pinned and held.

No GPU is present here and the host has no NVIDIA module, so nvidia-smi is installed but cannot
reach a driver; the last test checks it fails the way it does on such a machine.
"""

import re

PIN = "/etc/apt/preferences.d/aimachine-nvidia-driver.pref"
NONFREE = "/etc/apt/sources.list.d/aimachine-debian-nonfree.sources"
NONFREE_SECURITY = "/etc/apt/sources.list.d/aimachine-debian-nonfree-security.sources"


def _packages(host):
    out = host.check_output("dpkg-query -W -f='${Package}\\t${Version}\\t${Status}\\n'")
    rows = {}
    for line in out.splitlines():
        name, version, status = line.split("\t")
        rows[name] = (version, status)
    return rows


def test_userspace_packages_installed_from_branch_535(host):
    rows = _packages(host)
    for name in ("nvidia-smi", "libcuda1", "libnvidia-ml1"):
        version, status = rows[name]
        assert status.endswith(" installed"), (name, status)
        assert version.startswith("535."), (name, version)


def test_no_kernel_module_package_in_userspace_mode(host):
    rows = _packages(host)
    module = re.compile(r"nvidia.*dkms|^linux-(modules|objects)-nvidia")
    modules = [n for n, (_, s) in rows.items() if module.search(n) and s.endswith(" installed")]
    assert modules == []
    assert "dkms" not in rows or not rows["dkms"][1].endswith(" installed")


def test_every_driver_package_is_held(host):
    rows = _packages(host)
    name = re.compile(r"^(.*nvidia.*|libcuda.*|libnv.*)$")
    driver = {
        n for n, (v, s) in rows.items() if name.match(n) and v.startswith("535.") and s.endswith(" installed")
    }
    held = {n for n in driver if rows[n][1].startswith("hold ")}
    assert {"nvidia-smi", "libcuda1", "libnvidia-ml1"} <= driver
    assert held == driver
    # apt itself reports them held, which is what unattended-upgrades obeys.
    assert {"nvidia-smi", "libcuda1"} <= set(host.check_output("apt-mark showhold").split())


def test_pin_prefers_branch_535(host):
    pin = host.file(PIN)
    assert pin.user == "root" and pin.mode == 0o644
    assert "Ansible managed" in pin.content_string
    assert "Pin: version /^([0-9]+:)?535\\./" in pin.content_string
    assert "Pin-Priority: 1001" in pin.content_string
    policy = host.check_output("apt-cache policy nvidia-smi")
    assert re.search(r"^\s+\*\*\* 535\.\S+ 1001$", policy, re.M), policy


def test_nonfree_components_come_from_the_roles_sources(host):
    main = host.file(NONFREE).content_string
    assert "Components: contrib non-free non-free-firmware" in main
    assert "Suites: bookworm bookworm-updates" in main
    assert "Suites: bookworm-security" in host.file(NONFREE_SECURITY).content_string
    # The image's own sources.list stays as it was (main only).
    sources = host.file("/etc/apt/sources.list").content_string.split()
    assert sources == ["deb", "http://deb.debian.org/debian", "bookworm", "main"]


def test_no_kernel_side_configuration(host):
    # User space only: the module, nouveau and the initramfs are the host's business.
    assert not host.file("/etc/modprobe.d/aimachine-blacklist-nouveau.conf").exists
    assert not host.file("/etc/dkms/framework.conf.d/aimachine-mok.conf").exists
    assert not host.file("/etc/apt/sources.list.d/aimachine-nvidia-cuda.sources").exists


def test_nvidia_smi_present_but_no_gpu_here(host):
    assert host.file("/usr/bin/nvidia-smi").exists
    result = host.run("nvidia-smi --query-gpu=driver_version --format=csv,noheader")
    assert result.rc != 0
    assert "Failed to initialize NVML" in result.stdout + result.stderr
