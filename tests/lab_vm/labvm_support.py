"""Fixtures and helpers for the lab_vm tests: a libvirt daemon serving the test driver, a pinned
image, an SSH banner, and the runner of the real playbook (json callback).

The test modules import the fixtures from here (no conftest.py: another conftest module of that
name in scripts/tests is imported by name by its tests).

libvirt's test driver (test:///default) keeps its state in the process that opened it, and
community.libvirt's modules open a fresh connection for every call, so a client-side
test:///default forgets each define before the next task. Inside libvirtd, however, every
connection to test:///default shares one in-memory hypervisor while at least one connection
stays open. So we start a private libvirtd, hold one connection for the whole session, and
point the role at test+unix:///default?socket=...: every module call then goes through the
real libvirt API (remote protocol, test driver) and sees what the previous task did.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
PLAYBOOK = ROOT / "playbooks" / "rebuild-lab-vm.yml"
ADD_HOST_TASK = "Add the lab VM to the in-memory inventory (group llm_hosts)"


@dataclass
class Libvirtd:
    uri: str
    conn: Any  # libvirt.virConnect, held open so the test driver keeps its state
    log: Path


@dataclass
class Image:
    path: Path
    url: str
    checksum: str


@dataclass
class SshBanner:
    port: int
    connections: int = 0


def ssh_public_key() -> str:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    raw = (
        Ed25519PrivateKey.generate()
        .public_key()
        .public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
    )
    return raw.decode() + " pytest@controller"


def _messages(result: dict[str, Any]) -> str:
    """A failed result's message, with those of its failed loop items."""
    items = [str(i.get("msg", "")) for i in result.get("results", []) if i.get("failed")]
    return " | ".join([str(result.get("msg", "")), *items])


@dataclass
class Run:
    """One ansible-playbook run with the json callback: its exit code, stats and task results."""

    rc: int
    stdout: str
    stderr: str
    data: dict[str, Any] = field(default_factory=dict)

    @property
    def stats(self) -> dict[str, int]:
        return self.data.get("stats", {}).get("hv", {})

    def host_failures(self) -> dict[str, str]:
        """Per host, the message of the task that failed it."""
        return {
            host: f"{t['task']['name']}: {_messages(r)}"
            for t in self._tasks()
            for host, r in t["hosts"].items()
            if r.get("failed")
        }

    def _tasks(self) -> list[dict[str, Any]]:
        return [task for play in self.data.get("plays", []) for task in play.get("tasks", [])]

    def results(self, task_name: str) -> list[dict[str, Any]]:
        return [r for t in self._tasks() if t["task"]["name"] == task_name for r in t["hosts"].values()]

    def changed_tasks(self) -> list[str]:
        return [
            t["task"]["name"] for t in self._tasks() if any(r.get("changed") for r in t["hosts"].values())
        ]

    def failure_messages(self) -> str:
        return "\n".join(
            f"{t['task']['name']}: {_messages(r)}"
            for t in self._tasks()
            for r in t["hosts"].values()
            if r.get("failed")
        )

    def result(self, task_name: str, host: str) -> dict[str, Any]:
        (found,) = [
            t["hosts"][host] for t in self._tasks() if t["task"]["name"] == task_name and host in t["hosts"]
        ]
        return found

    def host_stats(self, host: str) -> dict[str, int]:
        return self.data.get("stats", {}).get(host, {})

    def ok(self, host: str = "hv") -> Run:
        """Assert `host` finished without failures (other hosts of the run may fail on purpose)."""
        stats = self.host_stats(host)
        detail = f"rc={self.rc}\n{self.failure_messages()}\n{self.stderr[-3000:]}\n{self.stdout[-3000:]}"
        assert stats and stats["failures"] == 0 and stats["unreachable"] == 0, detail
        if not self.host_failures():
            assert self.rc == 0, detail
        return self


def run_playbook(
    tmp: Path,
    common_vars: dict[str, Any],
    *,
    host_vars: dict[str, dict[str, Any]] | None = None,
    check: bool = False,
) -> Run:
    """Run playbooks/rebuild-lab-vm.yml against this machine as the `hypervisors` group (connection local).

    common_vars go to the inventory's `all` group, so the VM added to llm_hosts sees them too
    (lab_vm_deploy_site); host_vars give hosts their own values (one host per bad input).
    """
    tmp.mkdir(parents=True, exist_ok=True)
    connection = {
        "ansible_connection": "local",
        "ansible_python_interpreter": sys.executable,
        # The tests run as root or as a user; never through sudo.
        "ansible_become": False,
    }
    hosts = {name: {**connection, **values} for name, values in (host_vars or {"hv": {}}).items()}
    inventory = tmp / "inventory.json"
    inventory.write_text(
        json.dumps({"all": {"vars": common_vars}, "hypervisors": {"hosts": hosts}}), encoding="utf-8"
    )
    cmd = [str(Path(sys.executable).parent / "ansible-playbook"), "-i", str(inventory), str(PLAYBOOK)]
    if check:
        cmd += ["--check", "--diff"]
    env = {
        **os.environ,
        "ANSIBLE_CONFIG": str(ROOT / "ansible.cfg"),
        "ANSIBLE_STDOUT_CALLBACK": "ansible.posix.json",
        "ANSIBLE_LOCALHOST_WARNING": "false",
        "ANSIBLE_NOCOLOR": "1",
    }
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300, check=False)
    # Kept beside the inventory for whoever debugs a failure.
    (tmp / "ansible-output.json").write_text(proc.stdout, encoding="utf-8")
    try:
        data = json.loads(proc.stdout[proc.stdout.index("{") :])
    except ValueError:
        data = {}
    return Run(rc=proc.returncode, stdout=proc.stdout, stderr=proc.stderr, data=data)


# Banner of Debian 12's OpenSSH; the role's wait looks for "OpenSSH" in it.
SSH_BANNER = b"SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u3\r\n"
NOBODY = 65534


def need(*tools: str) -> None:
    missing = [t for t in tools if shutil.which(t) is None]
    if missing:
        pytest.skip(f"needs {', '.join(missing)} (see docs/runbook-rebuild-lab-vm.md, 'Tests')")


@pytest.fixture(scope="session", name="libvirtd")
def libvirtd_fixture() -> Iterator[Libvirtd]:
    need("libvirtd", "virsh")
    libvirt = pytest.importorskip("libvirt", reason="needs libvirt-python in the test's Python")
    pytest.importorskip("lxml", reason="community.libvirt.virt needs lxml")
    # Not under pytest's tmp dir: that one is 0700 to root, and the daemon may run as nobody.
    base = Path(tempfile.mkdtemp(prefix="lab_vm-libvirtd-"))
    run_dir = base / "run"
    run_dir.mkdir()
    conf = base / "libvirtd.conf"
    conf.write_text(f'unix_sock_dir = "{run_dir}"\n', encoding="utf-8")
    conf.chmod(0o644)
    env = {
        **os.environ,
        "HOME": str(base),
        "XDG_RUNTIME_DIR": str(run_dir),
        "XDG_CONFIG_HOME": str(base / "config"),
        "XDG_CACHE_HOME": str(base / "cache"),
    }
    cmd = ["libvirtd", "-f", str(conf)]
    if shutil.which("setpriv"):
        # Should pytest be killed (a CI timeout), the daemon goes with it.
        cmd = ["setpriv", "--pdeathsig", "TERM", *cmd]
    if os.geteuid() == 0:
        # As root libvirtd starts the system QEMU driver, which needs the libvirt-qemu user and
        # /run/libvirt; as an ordinary user it is a private session daemon (test driver included).
        need("setpriv")
        os.chown(base, NOBODY, NOBODY)
        os.chown(run_dir, NOBODY, NOBODY)
        cmd[1:1] = [f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups"]
    log = base / "libvirtd.log"
    with log.open("wb") as log_file:
        proc = subprocess.Popen(cmd, env=env, stdout=log_file, stderr=subprocess.STDOUT)
    sock = run_dir / "libvirt-sock"
    deadline = time.monotonic() + 30
    while not sock.exists():
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"libvirtd did not start: {log.read_text(errors='replace')[-2000:]}")
        time.sleep(0.1)
    uri = f"test+unix:///default?socket={sock}"
    conn = libvirt.open(uri)
    try:
        yield Libvirtd(uri=uri, conn=conn, log=log)
    finally:
        conn.close()
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(scope="session", name="image")
def image_fixture(tmp_path_factory: pytest.TempPathFactory) -> Image:
    """A real (tiny) qcow2 served from file://, with its real sha512, standing in for the cloud image."""
    need("qemu-img")
    path = tmp_path_factory.mktemp("mirror") / "debian-12-genericcloud-amd64-20250210-2019.qcow2"
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(path), "64M"], check=True)
    digest = hashlib.sha512(path.read_bytes()).hexdigest()
    return Image(path=path, url=path.as_uri(), checksum=f"sha512:{digest}")


@pytest.fixture(scope="session", name="ssh_banner")
def ssh_banner_fixture() -> Iterator[SshBanner]:
    """A TCP server on 127.0.0.1 that greets like OpenSSH: what the role's wait looks for."""
    server = socket.create_server(("127.0.0.1", 0))
    server.settimeout(0.2)
    banner = SshBanner(port=server.getsockname()[1])
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                client, _ = server.accept()
            except TimeoutError:
                continue
            with client:
                banner.connections += 1
                client.sendall(SSH_BANNER)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield banner
    stop.set()
    thread.join(timeout=2)
    server.close()
