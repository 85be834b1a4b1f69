"""Bad input fails before anything changes, with a message that names the variable.

One playbook run, one inventory host per case (hosts fail independently), against the same
private libvirtd as the lifecycle tests. A wrong image checksum is the one failure that happens
after work began: it must leave no image behind and define nothing. One more host asks for
state absent with nothing there: it must succeed and change nothing.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import labvm_support
import pytest
from labvm_support import Image, Libvirtd, run_playbook, ssh_public_key

pytestmark = pytest.mark.e2e

# The session fixtures, registered here under their fixture names (no conftest.py: see labvm_support).
image_fixture = labvm_support.image_fixture
libvirtd_fixture = labvm_support.libvirtd_fixture

# host -> (its own variables, the variable its failure message must name)
BAD: dict[str, tuple[dict[str, Any], str]] = {
    "bad-pci": ({"lab_vm_gpu_pci_addresses": ["01:00.0"]}, "lab_vm_gpu_pci_addresses"),
    "bad-pci-dup": (
        {"lab_vm_gpu_pci_addresses": ["0000:01:00.0", "0000:01:00.0"]},
        "lab_vm_gpu_pci_addresses",
    ),
    "bad-state": ({"lab_vm_state": "recreated"}, "lab_vm_state"),
    "bad-type": ({"lab_vm_vcpus": "many"}, "lab_vm_vcpus"),
    "no-keys": ({"lab_vm_ssh_authorized_keys": []}, "lab_vm_ssh_authorized_keys"),
    "unpinned": (
        {
            "lab_vm_image_url": "https://cloud.debian.org/images/cloud/bookworm/latest/debian-12-genericcloud-amd64.qcow2"
        },
        "lab_vm_image_url",
    ),
    "md5": ({"lab_vm_image_checksum": "md5:0123456789abcdef0123456789abcdef"}, "lab_vm_image_checksum"),
    "half-pinned": ({"lab_vm_cpu_pinning": [3]}, "lab_vm_cpu_pinning"),
    "delete-volumes": ({"lab_vm_undefine_flags": ["delete_volumes"]}, "lab_vm_undefine_flags"),
    "bad-host-pci": (
        {"lab_vm_prepare_hypervisor": True, "lab_vm_host_pci_addresses": ["0000:1:0.0"]},
        "lab_vm_host_pci_addresses",
    ),
}


def test_bad_input_fails_early_and_names_the_variable(tmp_path: Path, libvirtd: Libvirtd, image: Image):
    wrong_digest = "sha512:" + "0" * 128
    common = {
        "lab_vm_libvirt_uri": libvirtd.uri,
        "lab_vm_name": "{{ inventory_hostname }}",
        "lab_vm_storage_dir": str(tmp_path) + "/{{ inventory_hostname }}/storage",
        "lab_vm_ssh_host_key_dir": str(tmp_path) + "/{{ inventory_hostname }}/secrets",
        "lab_vm_image_url": image.url,
        "lab_vm_image_checksum": image.checksum,
        "lab_vm_ssh_authorized_keys": [ssh_public_key()],
        "lab_vm_vcpus": 2,
        "lab_vm_manage_packages": False,
        "lab_vm_check_hypervisor": False,
        "lab_vm_undefine_flags": ["managed_save", "snapshots_metadata"],
        "lab_vm_deploy_site": False,
        "lab_vm_host_vfio_ids": ["10de:2782"],
        "lab_vm_host_grub_dropin": str(tmp_path) + "/{{ inventory_hostname }}/etc/grub.cfg",
    }
    hosts = {name: values for name, (values, _) in BAD.items()}
    hosts["bad-digest"] = {"lab_vm_image_checksum": wrong_digest}
    # The real, read-only hypervisor checks against this machine: no such GPU here.
    hosts["no-gpu"] = {"lab_vm_check_hypervisor": True, "lab_vm_gpu_pci_addresses": ["0000:ff:1f.7"]}
    hosts["absent-noop"] = {"lab_vm_state": "absent"}
    run = run_playbook(tmp_path / "run", common, host_vars=hosts)

    assert run.rc != 0
    failures = run.host_failures()
    assert set(failures) == set(hosts) - {"absent-noop"}, run.stderr[-2000:]
    noop = run.data["stats"]["absent-noop"]
    assert noop["failures"] == 0 and noop["changed"] == 0, noop
    domains = {d.name() for d in libvirtd.conn.listAllDomains()}
    for name, (_, variable) in BAD.items():
        assert variable in failures[name], f"{name}: {failures[name]}"
        # Nothing was created for this host: no directories, no key, no domain.
        assert not (tmp_path / name).exists(), f"{name} changed something before failing"
        assert name not in domains

    # Each message names its own variable, not a list of suspects.
    assert "lab_vm_image_checksum" not in failures["unpinned"]
    assert "lab_vm_image_url" not in failures["md5"]
    assert "lab_vm_hugepage" not in failures["half-pinned"]

    # No /dev/kvm here, or (with KVM) no such PCI function: either way read from this machine.
    assert re.search(r"has no /dev/kvm|0000:ff:1f\.7 on no-gpu: no such PCI device", failures["no-gpu"]), (
        failures["no-gpu"]
    )
    assert not (tmp_path / "no-gpu").exists() and "no-gpu" not in domains

    # The checksum is really verified: the download is refused and nothing is left or defined.
    assert "checksum" in failures["bad-digest"].lower(), failures["bad-digest"]
    storage = tmp_path / "bad-digest" / "storage"
    assert list(storage.iterdir()) == []
    assert "bad-digest" not in domains
