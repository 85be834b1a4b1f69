"""`make demo`: its reports land in the checkout and outlive `make demo-destroy` (issue 18, item 5).

The demo scenario's own inventory files (molecule/shared/group_vars, molecule/demo/host_vars)
resolved by Ansible itself, and the real scripts/demo-summary.sh run in a scratch checkout.
"""

import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ANSIBLE = Path(sys.executable).parent / "ansible"


def test_demo_reports_go_to_the_checkouts_reports_dir(tmp_path):
    inventory = tmp_path / "inventory"
    inventory.mkdir()
    (inventory / "hosts.yml").write_text(
        "llm_hosts:\n  hosts:\n    aimachine-demo:\n      ansible_connection: local\n"
    )
    (inventory / "group_vars").symlink_to(ROOT / "molecule" / "shared" / "group_vars")
    (inventory / "host_vars").symlink_to(ROOT / "molecule" / "demo" / "host_vars")
    env = dict(
        os.environ,
        MOLECULE_PROJECT_DIRECTORY=str(ROOT),
        MOLECULE_EPHEMERAL_DIRECTORY=str(tmp_path / "ephemeral"),
        ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"),
    )
    run = subprocess.run(
        [
            str(ANSIBLE),
            "-i",
            str(inventory),
            "aimachine-demo",
            "-m",
            "ansible.builtin.debug",
            "-a",
            "msg={{ llm_verify_reports_dir }}|{{ vm_llm_aimachine_secrets_dir }}",
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    assert f"msg: {ROOT}/reports|{ROOT}/secrets\n" in run.stdout, run.stdout
    # molecule's demo scenario reads these host_vars.
    assert "host_vars: ./host_vars/" in (ROOT / "molecule" / "demo" / "molecule.yml").read_text()


def test_demo_destroy_says_what_it_leaves(tmp_path):
    checkout = tmp_path / "checkout"
    (checkout / "scripts").mkdir(parents=True)
    shutil.copy2(ROOT / "scripts" / "demo-summary.sh", checkout / "scripts")
    run_dir = checkout / "reports" / "aimachine-demo" / "20261203T050000Z"
    run_dir.mkdir(parents=True)
    (run_dir / "report.md").write_text("# report\n")
    (run_dir.parent / "latest").symlink_to(run_dir.name)
    (checkout / "secrets" / "aimachine-demo").mkdir(parents=True)
    run = subprocess.run(
        [str(checkout / "scripts" / "demo-summary.sh"), "--destroyed"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    out = run.stdout
    assert "reports    reports/aimachine-demo/ (latest: reports/aimachine-demo/20261203T050000Z)" in out, out
    assert "secrets    secrets/aimachine-demo/" in out, out
    if (
        shutil.which("docker")
        and subprocess.run(["docker", "info"], capture_output=True, check=False).returncode == 0
    ):
        assert "dockerd    running" in out, out
    assert (run_dir / "report.md").exists()
