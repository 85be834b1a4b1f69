"""A Ray head and a worker form one cluster of two nodes, each under a hardened unit."""

from __future__ import annotations

import json

testinfra_hosts = ["ansible://aimachine-ray-head", "ansible://aimachine-ray-worker"]

VENV = "/opt/aimachine/ray/ray-2.60.0"
# The head's GCS directly (no driver): address and state (0: alive) of every node it knows.
NODES = (
    "import json; from ray._raylet import GcsClient; "
    "infos = GcsClient(address='{addr}').get_all_node_info(timeout=10).values(); "
    "print(json.dumps([{{'ip': n.node_manager_address, 'alive': n.state == 0, "
    "'cpus': n.resources_total.get('CPU')}} for n in infos]))"
)


def _head_address(host) -> str:
    unit = host.file("/etc/systemd/system/aimachine-ray.service").content_string
    for line in unit.splitlines():
        if line.startswith("ExecStart="):
            args = line.split()
            if "--head" in args:
                return args[args.index("--node-ip-address") + 1] + ":6379"
            return args[args.index("--address") + 1]
    raise AssertionError("no ExecStart in the unit")


# systemd-analyze security of the unit (Debian 12): measured 1.7 (docs/security.md).
MAX_EXPOSURE = 3.0


def test_unit_exposure(exposure):
    score, report = exposure("aimachine-ray.service")
    assert score <= MAX_EXPOSURE, report[-3000:]


def test_node_runs_as_its_own_user_under_a_hardened_unit(host):
    service = host.service("aimachine-ray")
    assert service.is_running and service.is_enabled
    pid = host.check_output("systemctl show -p MainPID --value aimachine-ray")
    assert host.check_output(f"ps -o user= -p {pid}").strip() == "aimachine-ray"
    props = host.check_output(
        "systemctl show -p NoNewPrivileges -p ProtectSystem -p PrivateTmp -p PrivateDevices aimachine-ray"
    )
    for expected in ("NoNewPrivileges=yes", "ProtectSystem=strict", "PrivateTmp=yes", "PrivateDevices=yes"):
        assert expected in props


def test_cluster_reports_two_alive_nodes(host):
    code = NODES.format(addr=_head_address(host))
    nodes = json.loads(host.check_output(f'timeout 60 {VENV}/bin/python -c "{code}"').splitlines()[-1])
    alive = [n for n in nodes if n["alive"]]
    assert len(alive) == 2, nodes
    assert len({n["ip"] for n in alive}) == 2
    assert all(n["cpus"] == 1 for n in alive)


def test_ray_status_lists_two_active_nodes(host):
    status = host.check_output(f"timeout 120 {VENV}/bin/ray status --address {_head_address(host)}")
    active = status.split("Active:", 1)[1].split("Pending:", 1)[0]
    assert sum(1 for line in active.splitlines() if "node_" in line) == 2, status
