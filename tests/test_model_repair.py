"""An incomplete model is noticed and repaired (llm_model on this machine, connection local).

The tiny test model is generated for real (aimachine-tiny-model, two safetensors shards); a shard
is cut short as an interrupted download or a full disk leaves it.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
CHECK = ROOT / "roles/llm_model/files/check_safetensors.py"
SHARD = "model-00001-of-00002.safetensors"

PLAY = """
- name: Model only
  hosts: localhost
  connection: local
  gather_facts: false
  roles:
    - llm_model
"""


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    model = tmp_path_factory.mktemp("controller") / "tiny-qwen2"
    subprocess.run([str(BIN / "aimachine-tiny-model"), str(model), "--shards", "2"], check=True, timeout=300)
    return model


def run_role(tmp_path: Path, source: str, local_path: Path) -> tuple[int, str]:
    playbook = tmp_path / "model.yml"
    playbook.write_text(PLAY)
    extra = {
        "llm_model_source": source,
        "llm_model_id": "aimachine/tiny-qwen2",
        "llm_model_local_path": str(local_path),
        "llm_model_root": str(tmp_path / "models"),
    }
    done = subprocess.run(
        [str(BIN / "ansible-playbook"), "-i", "localhost,", str(playbook), "-e", json.dumps(extra)],
        capture_output=True,
        text=True,
        timeout=300,
        env={
            "ANSIBLE_CONFIG": str(ROOT / "ansible.cfg"),
            "ANSIBLE_ROLES_PATH": str(ROOT / "roles"),
            "ANSIBLE_NOCOLOR": "1",
            "ANSIBLE_PYTHON_INTERPRETER": "/usr/bin/python3",
            "PATH": "/usr/bin:/bin:/usr/sbin:/sbin",
        },
        check=False,
    )
    return done.returncode, " ".join((done.stdout + done.stderr).split())


def cut_short(path: Path) -> int:
    size = path.stat().st_size
    with path.open("r+b") as handle:
        handle.truncate(size // 2)
    return size


def check(directory: Path) -> tuple[int, list]:
    done = subprocess.run(
        ["/usr/bin/python3", str(CHECK), str(directory)], capture_output=True, text=True, check=False
    )
    return done.returncode, json.loads(done.stdout)


def test_checker_finds_a_shard_cut_short(tiny, tmp_path):
    copy = tmp_path / "m"
    subprocess.run(["cp", "-r", str(tiny), str(copy)], check=True)
    assert check(copy) == (0, [])
    size = cut_short(copy / SHARD)
    rc, bad = check(copy)
    assert rc == 1
    assert bad == [{"file": SHARD, "size": size // 2, "expected": size}]


def test_shard_cut_short_on_the_host_is_copied_again(tiny, tmp_path):
    rc, out = run_role(tmp_path, "controller", tiny)
    assert rc == 0, out[-2000:]
    deployed = tmp_path / "models/tiny-qwen2"
    cut_short(deployed / SHARD)
    rc, out = run_role(tmp_path, "controller", tiny)
    assert rc == 0, out[-2000:]
    assert "changed=1" in out  # the copy noticed the changed shard and replaced it
    assert (deployed / SHARD).stat().st_size == (tiny / SHARD).stat().st_size
    assert check(deployed) == (0, [])


def test_incomplete_source_is_noticed_and_named(tiny, tmp_path):
    broken = tmp_path / "broken-controller" / "tiny-qwen2"
    broken.parent.mkdir()
    subprocess.run(["cp", "-r", str(tiny), str(broken)], check=True)
    cut_short(broken / SHARD)
    rc, out = run_role(tmp_path, "controller", broken)
    assert rc != 0
    assert "Incomplete weight files" in out and SHARD in out
    assert "the controller copy is incomplete itself" in out, out[-2000:]
    # Model already on the host: noticed, not "repaired" by deleting the user's files.
    rc, out = run_role(tmp_path, "host", broken)
    assert rc != 0
    assert f"{SHARD}" in out and "Replace them in llm_model_local_path" in out, out[-2000:]
    assert (broken / SHARD).exists()
