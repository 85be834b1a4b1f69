"""The rebuild playbook end to end: lab_vm_host and lab_vm via libvirt's API (test driver, private libvirtd).

The tests run in order and share one VM, the way the lab owner uses the playbook: check mode
from nothing, present (with the hypervisor preparation), idempotence in real and check mode, the
domain XML and the seed checked by libvirt's and cloud-init's own tools, rebuilt with changed
settings (DHCP: fresh system disk, same identity, model cache kept), and absent.
(absent with nothing to remove is checked in test_lab_vm_inputs.py, in the same run as the bad inputs.)
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import labvm_support
import pytest
import yaml
from labvm_support import ADD_HOST_TASK, Image, Libvirtd, Run, SshBanner, run_playbook, ssh_public_key

pytestmark = pytest.mark.e2e

# The session fixtures, registered here under their fixture names (no conftest.py: see labvm_support).
image_fixture = labvm_support.image_fixture
libvirtd_fixture = labvm_support.libvirtd_fixture
ssh_banner_fixture = labvm_support.ssh_banner_fixture

GPU = ["0000:01:00.0", "0000:01:00.1"]


def _host_pci() -> tuple[list[str], list[str]]:
    """Up to two real PCI functions of this machine and their vendor:device IDs, read here from sysfs.

    lab_vm_host then derives the IDs itself from the same sysfs files (and finds them not on
    vfio-pci). A machine without PCI in sysfs gets no addresses and explicit IDs instead.
    """
    root = Path("/sys/bus/pci/devices")
    devices = sorted(root.iterdir())[:2] if root.is_dir() else []
    if not devices:
        return [], ["10de:2782", "10de:22bc"]
    ids = [
        f"{(d / 'vendor').read_text().strip()[2:]}:{(d / 'device').read_text().strip()[2:]}" for d in devices
    ]
    return [d.name for d in devices], list(dict.fromkeys(ids))


class State:
    """What the ordered tests hand on to each other."""

    prep_addresses: list[str]
    prep_ids: list[str]

    vars: dict[str, Any]
    tmp: Path
    first_domain_id: int


@pytest.fixture(scope="module")
def lab(
    tmp_path_factory: pytest.TempPathFactory, libvirtd: Libvirtd, image: Image, ssh_banner: SshBanner
) -> State:
    for tool in ("genisoimage", "isoinfo"):
        if shutil.which(tool) is None:
            pytest.skip(f"needs {tool} (apt: genisoimage)")
    tmp = tmp_path_factory.mktemp("lab")
    # These two exist on every host; the role creates only grub.d.
    for directory in ("etc/modprobe.d", "etc/modules-load.d"):
        (tmp / directory).mkdir(parents=True)
    state = State()
    state.tmp = tmp
    state.prep_addresses, state.prep_ids = _host_pci()
    state.vars = {
        "lab_vm_libvirt_uri": libvirtd.uri,
        "lab_vm_name": "pytest-lab",
        "lab_vm_storage_dir": str(tmp / "storage"),
        "lab_vm_image_url": image.url,
        "lab_vm_image_checksum": image.checksum,
        "lab_vm_ssh_authorized_keys": [ssh_public_key()],
        "lab_vm_ssh_host_key_dir": str(tmp / "controller-secrets"),
        "lab_vm_vcpus": 2,
        "lab_vm_memory_mib": 2048,
        "lab_vm_cpu_pinning": [2, 3],
        "lab_vm_emulator_cpuset": "0-1",
        "lab_vm_hugepages": True,
        "lab_vm_disk_size_gib": 8,
        "lab_vm_model_cache_size_gib": 4,
        "lab_vm_gpu_pci_addresses": GPU,
        "lab_vm_ip_address": "192.168.122.50/24",
        "lab_vm_gateway": "192.168.122.1",
        "lab_vm_dns_servers": ["192.168.122.1"],
        # The guest's SSH is the banner server this test started.
        "lab_vm_ssh_host": "127.0.0.1",
        "lab_vm_ssh_port": ssh_banner.port,
        "lab_vm_ssh_timeout": 20,
        # This machine is not the hypervisor being described: no packages, no /dev/kvm or IOMMU checks.
        "lab_vm_manage_packages": False,
        "lab_vm_check_hypervisor": False,
        "lab_vm_validate_xml": shutil.which("virt-xml-validate") is not None,
        # The test driver implements only these two undefine flags (no NVRAM, no checkpoints).
        "lab_vm_undefine_flags": ["managed_save", "snapshots_metadata"],
        # There is no real guest to log in to: stop after the VM is up and in the inventory.
        "lab_vm_deploy_site": False,
        # Hypervisor preparation (host hv-prep), for real, but into files under tmp and with this
        # machine's boot left alone: the boot loader and initramfs commands are `true`, no reboot.
        "lab_vm_host_pci_addresses": state.prep_addresses,
        "lab_vm_host_vfio_ids": [] if state.prep_addresses else state.prep_ids,
        "lab_vm_host_iommu": "intel",
        "lab_vm_host_hugepages": 1024,
        "lab_vm_host_grub_dropin": str(tmp / "etc/default/grub.d/60-aimachine-vfio.cfg"),
        "lab_vm_host_modprobe_file": str(tmp / "etc/modprobe.d/aimachine-vfio.conf"),
        "lab_vm_host_modules_load_file": str(tmp / "etc/modules-load.d/aimachine-vfio.conf"),
        "lab_vm_host_bootloader_update_command": ["true"],
        "lab_vm_host_initramfs_update_command": ["true"],
        "lab_vm_host_reboot": False,
    }
    return state


# hv runs lab_vm. hv-prep (the same machine) runs lab_vm_host: this kernel lacks the IOMMU
# arguments, so a real run must stop there with "Reboot required"; its lab_vm part is a no-op absent.
HOSTS = {
    "hv": {},
    "hv-prep": {"lab_vm_prepare_hypervisor": True, "lab_vm_state": "absent", "lab_vm_name": "pytest-prep"},
}
PREP_PUBLISH = "lab_vm_host : Publish whether the host still needs a reboot (lab_vm_host_reboot_required)"


def _expect_reboot_required(run: Run, lab: State) -> str:
    failures = run.host_failures()
    assert set(failures) == {"hv-prep"}, failures
    message = failures["hv-prep"]
    assert "Reboot required on hv-prep" in message and "lab_vm_host_reboot" in message
    assert "intel_iommu=on" in message
    # This machine's functions are on their own drivers, not on vfio-pci.
    assert all(address in message for address in lab.prep_addresses), message
    return message


def _paths(lab: State) -> dict[str, Path]:
    storage = Path(lab.vars["lab_vm_storage_dir"])
    return {
        "storage": storage,
        "image": storage / Path(lab.vars["lab_vm_image_url"]).name,
        "disk": storage / "pytest-lab.qcow2",
        "cache": storage / "pytest-lab-models.qcow2",
        "xml": storage / "pytest-lab.xml",
        "seed_dir": storage / "pytest-lab-seed",
        "host_key": Path(lab.vars["lab_vm_ssh_host_key_dir"]) / "ssh_host_ed25519_key",
    }


def _seed_isos(lab: State) -> list[Path]:
    return sorted(_paths(lab)["storage"].glob("pytest-lab-seed-*.iso"))


def _qemu_img_info(path: Path) -> dict[str, Any]:
    out = subprocess.run(
        ["qemu-img", "info", "--output=json", "-U", str(path)], check=True, capture_output=True, text=True
    )
    return json.loads(out.stdout)


def _domain_names(libvirtd: Libvirtd) -> list[str]:
    return [d.name() for d in libvirtd.conn.listAllDomains()]


def _run(lab: State, name: str, state: str, *, check: bool = False, hosts: dict | None = None) -> Run:
    return run_playbook(lab.tmp / name, {**lab.vars, "lab_vm_state": state}, host_vars=hosts, check=check)


def test_check_mode_from_nothing_changes_nothing(lab: State, libvirtd: Libvirtd):
    run = _run(lab, "run-check0", "present", check=True, hosts=HOSTS).ok().ok("hv-prep")
    assert run.stats["changed"] > 0, "check mode must report what it would do"
    assert run.host_stats("hv-prep")["changed"] > 0
    notice = run.result("lab_vm_host : Say what a real run would do about the reboot", "hv-prep")
    assert notice["msg"].startswith("Check mode: a reboot is needed"), notice["msg"]
    assert "pytest-lab" not in _domain_names(libvirtd)
    assert not _paths(lab)["storage"].exists()
    assert not _paths(lab)["host_key"].exists()
    assert not (lab.tmp / "etc/default").exists()
    assert list((lab.tmp / "etc/modprobe.d").iterdir()) == []


def test_present_defines_starts_and_hands_over(lab: State, libvirtd: Libvirtd, ssh_banner: SshBanner):
    import libvirt

    before = ssh_banner.connections
    run = _run(lab, "run-present", "present", hosts=HOSTS).ok()

    dom = libvirtd.conn.lookupByName("pytest-lab")
    assert dom.isActive() and dom.state()[0] == libvirt.VIR_DOMAIN_RUNNING
    assert dom.autostart() == 1
    lab.first_domain_id = dom.ID()
    # The wait really talked to the (stand-in) SSH server.
    assert ssh_banner.connections > before

    paths = _paths(lab)
    disk = _qemu_img_info(paths["disk"])
    assert disk["format"] == "qcow2"
    assert disk["virtual-size"] == 8 * 1024**3
    assert disk["backing-filename"] == str(paths["image"])
    assert disk["backing-filename-format"] == "qcow2"
    cache = _qemu_img_info(paths["cache"])
    assert cache["virtual-size"] == 4 * 1024**3 and "backing-filename" not in cache
    assert paths["host_key"].stat().st_mode & 0o777 == 0o600
    (iso,) = _seed_isos(lab)
    assert iso.stat().st_mode & 0o777 == 0o600
    assert not paths["seed_dir"].exists(), "the seed's build directory (a second copy of the key) is gone"

    # The in-memory inventory entry the rest of the playbook (site.yml) would use.
    (added,) = run.results(ADD_HOST_TASK)
    entry = added["results"][0]["add_host"]
    assert entry["host_name"] == "pytest-lab"
    assert set(entry["groups"]) == {"llm_hosts", "lab_vm_guests"}
    assert entry["host_vars"]["ansible_host"] == "127.0.0.1"
    assert entry["host_vars"]["ansible_port"] == ssh_banner.port
    assert "StrictHostKeyChecking=yes" in entry["host_vars"]["ansible_ssh_common_args"]
    known_hosts = Path(lab.vars["lab_vm_ssh_host_key_dir"]) / "known_hosts"
    pub = (paths["host_key"].with_suffix(".pub")).read_text().split()[:2]
    assert f"[127.0.0.1]:{ssh_banner.port} {pub[0]} {pub[1]}" in known_hosts.read_text()

    # The hypervisor preparation wrote its files, ran its handlers, then stopped: this kernel lacks them.
    _expect_reboot_required(run, lab)
    grub = Path(lab.vars["lab_vm_host_grub_dropin"]).read_text()
    assert (
        'GRUB_CMDLINE_LINUX_DEFAULT="$GRUB_CMDLINE_LINUX_DEFAULT intel_iommu=on iommu=pt '
        f'vfio-pci.ids={",".join(lab.prep_ids)} default_hugepagesz=2M hugepagesz=2M hugepages=1024"' in grub
    )
    modprobe = Path(lab.vars["lab_vm_host_modprobe_file"]).read_text()
    assert (
        f"options vfio-pci ids={','.join(lab.prep_ids)}\n" in modprobe
        and "softdep nvidia pre: vfio-pci" in modprobe
    )
    changed = set(run.changed_tasks())
    assert {
        "lab_vm_host : Regenerate the boot loader configuration",
        "lab_vm_host : Regenerate the initramfs",
    } <= changed
    assert run.result(PREP_PUBLISH, "hv-prep")["ansible_facts"]["lab_vm_host_reboot_required"] is True
    assert run.result("lab_vm_host : Reboot into the prepared kernel", "hv-prep").get("skipped")

    # Secrets stay out of the output: the guest's private host key is in the seed, never in the log.
    private = paths["host_key"].read_text().strip().splitlines()[1]
    assert private not in run.stdout and private not in run.stderr


def test_domain_definition(lab: State, libvirtd: Libvirtd):
    from lxml import etree

    xml = etree.fromstring(libvirtd.conn.lookupByName("pytest-lab").XMLDesc(0))
    hostdevs = [
        "{}:{}:{}.{}".format(*(a.get(k)[2:] for k in ("domain", "bus", "slot")), a.get("function")[2:])
        for a in xml.findall("./devices/hostdev[@type='pci']/source/address")
    ]
    assert hostdevs == GPU
    assert xml.findall("./devices/hostdev")[0].get("managed") == "yes"
    assert xml.findtext("./memory") == str(2048 * 1024)  # KiB
    assert xml.find("./memoryBacking/hugepages/page").get("size") == "2048"
    assert [(p.get("vcpu"), p.get("cpuset")) for p in xml.findall("./cputune/vcpupin")] == [
        ("0", "2"),
        ("1", "3"),
    ]
    assert xml.find("./cputune/emulatorpin").get("cpuset") == "0-1"
    assert xml.find("./os").get("firmware") == "efi"
    assert xml.find("./os/firmware/feature[@name='secure-boot']").get("enabled") == "no"
    paths = _paths(lab)
    sources = [d.find("source").get("file") for d in xml.findall("./devices/disk")]
    assert sources == [str(paths["disk"]), str(paths["cache"]), str(_seed_isos(lab)[0])]
    assert xml.find("./devices/disk/serial").text == "aimodels"
    mac = xml.find("./devices/interface/mac").get("address")
    assert re.fullmatch(r"52:54:00(:[0-9a-f]{2}){3}", mac)
    ns = {"a": "urn:aimachine:lab_vm:1"}
    assert xml.find("./metadata/a:build/a:image", ns).get("checksum") == lab.vars["lab_vm_image_checksum"]


def test_domain_xml_validates_against_libvirt_schema(lab: State, libvirtd: Libvirtd, tmp_path: Path):
    if shutil.which("virt-xml-validate") is None or shutil.which("xmllint") is None:
        pytest.skip("needs virt-xml-validate and xmllint (apt: libvirt-clients libxml2-utils)")
    written = _paths(lab)["xml"]
    assert written.read_text().startswith("<!--"), "the copy carries the ansible_managed comment"
    live = tmp_path / "live.xml"
    live.write_text(libvirtd.conn.lookupByName("pytest-lab").XMLDesc(0))
    for path in (written, live):
        res = subprocess.run(
            ["virt-xml-validate", str(path), "domain"], check=False, capture_output=True, text=True
        )
        assert res.returncode == 0, res.stdout + res.stderr
    # The validator does reject a broken domain (so the checks above can fail).
    broken = tmp_path / "broken.xml"
    broken.write_text(written.read_text().replace("<vcpu ", "<vcpus ").replace("</vcpu>", "</vcpus>"))
    assert (
        subprocess.run(
            ["virt-xml-validate", str(broken), "domain"], check=False, capture_output=True
        ).returncode
        != 0
    )


def _iso_file(iso: Path, name: str) -> str:
    out = subprocess.run(["isoinfo", "-R", "-i", str(iso), "-x", f"/{name}"], check=True, capture_output=True)
    return out.stdout.decode()


def test_seed_is_a_valid_nocloud_seed(lab: State, tmp_path: Path):
    (iso,) = _seed_isos(lab)
    info = subprocess.run(
        ["isoinfo", "-d", "-i", str(iso)], check=True, capture_output=True, text=True
    ).stdout
    assert re.search(r"^Volume id: cidata$", info, re.M), info
    user_data = _iso_file(iso, "user-data")
    meta = yaml.safe_load(_iso_file(iso, "meta-data"))
    network = yaml.safe_load(_iso_file(iso, "network-config"))

    assert user_data.startswith("#cloud-config\n")
    config = yaml.safe_load(user_data)
    (user,) = config["users"]
    assert user["name"] == "debian" and user["ssh_authorized_keys"] == lab.vars["lab_vm_ssh_authorized_keys"]
    assert user["lock_passwd"] is True
    host_key = _paths(lab)["host_key"]
    assert config["ssh_keys"]["ed25519_private"].strip() == host_key.read_text().strip()
    assert config["fs_setup"][0]["overwrite"] is False
    assert config["mounts"][0][:2] == ["LABEL=aimodels", "/var/lib/aimachine/models"]
    assert meta["local-hostname"] == "pytest-lab"
    nic = network["ethernets"]["lan0"]
    assert nic["addresses"] == ["192.168.122.50/24"]

    if shutil.which("cloud-init") is None:
        pytest.skip("cloud-init not installed (apt: cloud-init): schema and network rendering not checked")
    ud = tmp_path / "user-data"
    ud.write_text(user_data)
    res = subprocess.run(
        ["cloud-init", "schema", "--config-file", str(ud)], check=False, capture_output=True, text=True
    )
    assert res.returncode == 0 and "Valid cloud-config" in res.stdout, res.stdout + res.stderr
    # Render the network config the way the guest's cloud-init will (Debian: networkd/ENI, Ubuntu: netplan).
    nc = tmp_path / "network-config"
    nc.write_text(_iso_file(iso, "network-config"))
    for distro, kind in (("debian", "networkd"), ("debian", "eni"), ("ubuntu", "netplan")):
        out = tmp_path / f"{distro}-{kind}"
        res = subprocess.run(
            [
                "cloud-init",
                "devel",
                "net-convert",
                "-p",
                str(nc),
                "-k",
                "yaml",
                "-d",
                str(out),
                "-D",
                distro,
                "-O",
                kind,
            ],
            check=False,
            capture_output=True,
            text=True,
        )
        assert res.returncode == 0, res.stderr[-2000:]
        rendered = "\n".join(p.read_text() for p in out.rglob("*") if p.is_file())
        assert "192.168.122.50/24" in rendered and "192.168.122.1" in rendered, rendered


def test_present_is_idempotent_and_check_mode_agrees(lab: State, libvirtd: Libvirtd):
    run = _run(lab, "run-present2", "present", hosts=HOSTS).ok()
    assert run.stats["changed"] == 0, run.changed_tasks()
    assert libvirtd.conn.lookupByName("pytest-lab").ID() == lab.first_domain_id, (
        "present must not restart the VM"
    )
    # The preparation changes nothing the second time, and still refuses to go on unrebooted.
    assert run.host_stats("hv-prep")["changed"] == 0, run.changed_tasks()
    _expect_reboot_required(run, lab)
    check = _run(lab, "run-present-check", "present", check=True, hosts=HOSTS).ok().ok("hv-prep")
    assert check.stats["changed"] == 0 and check.host_stats("hv-prep")["changed"] == 0, check.changed_tasks()


def test_rebuilt_gives_a_fresh_disk_same_identity_and_keeps_the_cache(lab: State, libvirtd: Libvirtd):
    import libvirt

    paths = _paths(lab)
    before = libvirtd.conn.lookupByName("pytest-lab")
    uuid, xml_before = before.UUIDString(), before.XMLDesc(0)
    host_key = paths["host_key"].read_bytes()
    # Mark both disks: the system disk must come back without the mark, the cache with it.
    for disk in (paths["disk"], paths["cache"]):
        subprocess.run(["qemu-img", "snapshot", "-c", "pytest-mark", str(disk)], check=True)

    # Rebuild with changed settings: DHCP, address found through libvirt. The test driver invents
    # the lease and nothing listens there, so this run does not wait for SSH.
    dhcp = {
        "lab_vm_ip_address": "",
        "lab_vm_gateway": "",
        "lab_vm_dns_servers": [],
        "lab_vm_ssh_host": "",
        "lab_vm_ssh_port": 22,
        "lab_vm_wait_for_ssh": False,
    }
    run = run_playbook(lab.tmp / "run-rebuilt", {**lab.vars, **dhcp, "lab_vm_state": "rebuilt"}).ok()
    assert {
        "lab_vm : Power off the VM",
        "lab_vm : Undefine the VM (its volumes are not touched here)",
    } <= set(run.changed_tasks())

    after = libvirtd.conn.lookupByName("pytest-lab")
    assert after.isActive()
    assert after.ID() != lab.first_domain_id, "the domain was destroyed and started again"
    assert after.UUIDString() == uuid
    mac = re.compile(r"<mac address='([^']+)'")
    assert mac.findall(after.XMLDesc(0)) == mac.findall(xml_before)
    assert "snapshots" not in _qemu_img_info(paths["disk"]), "system disk was recreated"
    assert [s["name"] for s in _qemu_img_info(paths["cache"])["snapshots"]] == ["pytest-mark"]
    assert paths["host_key"].read_bytes() == host_key, "the guest keeps its SSH host key"
    (iso,) = _seed_isos(lab)
    assert yaml.safe_load(_iso_file(iso, "network-config"))["ethernets"]["lan0"]["dhcp4"] is True

    (iface,) = after.interfaceAddresses(libvirt.VIR_DOMAIN_INTERFACE_ADDRESSES_SRC_LEASE).values()
    (added,) = run.results(ADD_HOST_TASK)
    assert added["results"][0]["add_host"]["host_vars"]["ansible_host"] == iface["addrs"][0]["addr"]


def test_absent_removes_the_vm_and_keeps_cache_and_image(lab: State, libvirtd: Libvirtd):
    run = _run(lab, "run-absent", "absent").ok()
    (added,) = run.results(ADD_HOST_TASK)
    assert added["results"][0].get("skipped"), "an absent VM joins no inventory"
    assert "pytest-lab" not in _domain_names(libvirtd)
    paths = _paths(lab)
    assert not paths["disk"].exists() and not paths["seed_dir"].exists() and not paths["xml"].exists()
    assert not _seed_isos(lab)
    assert paths["cache"].exists() and paths["image"].exists()
