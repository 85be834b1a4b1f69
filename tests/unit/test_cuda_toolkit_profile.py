"""roles/cuda_toolkit/templates/aimachine-cuda.sh.j2, rendered by Ansible and sourced by real shells."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

pytest.importorskip("ansible")
from ansible.parsing.dataloader import DataLoader
from ansible.template import Templar, trust_as_template

REPO = Path(__file__).resolve().parents[2]
TEMPLATE = REPO / "roles/cuda_toolkit/templates/aimachine-cuda.sh.j2"
HOME = "/usr/local/cuda-13.0"
SHELLS = [s for s in ("sh", "dash", "bash") if shutil.which(s)]


@pytest.fixture(scope="module")
def script(tmp_path_factory: pytest.TempPathFactory) -> Path:
    variables = {
        "ansible_managed": "Ansible managed: do not edit",
        "cuda_toolkit_version": "13.0",
        "__cuda_toolkit_home": HOME,
    }
    text = Templar(loader=DataLoader(), variables=variables).template(trust_as_template(TEMPLATE.read_text()))
    path = tmp_path_factory.mktemp("profile") / "aimachine-cuda.sh"
    path.write_text(text)
    return path


def _source(shell: str, script: Path, env: dict[str, str], times: int) -> list[str]:
    report = 'printf "%s|%s|%s" "$PATH" "$LD_LIBRARY_PATH" "$CUDA_HOME"'
    command = "".join(f". {script}; " for _ in range(times)) + report
    out = subprocess.run([shell, "-c", command], env=env, capture_output=True, text=True, check=True)
    return out.stdout.split("|")


@pytest.mark.parametrize("shell", SHELLS)
def test_sets_paths_once_however_often_sourced(shell, script):
    for times in (1, 3):
        path, ld, cuda_home = _source(shell, script, {"PATH": "/usr/bin:/bin"}, times)
        assert path == f"{HOME}/bin:/usr/bin:/bin"
        assert ld == f"{HOME}/lib64"
        assert cuda_home == HOME


@pytest.mark.parametrize("shell", SHELLS)
def test_keeps_what_was_there(shell, script):
    env = {"PATH": "/usr/bin:/bin", "LD_LIBRARY_PATH": "/opt/lib"}
    path, ld, _ = _source(shell, script, env, 2)
    assert path == f"{HOME}/bin:/usr/bin:/bin"
    assert ld == f"{HOME}/lib64:/opt/lib"


def test_header_says_ansible_managed(script):
    assert script.read_text().startswith("#\n# Ansible managed: do not edit\n#\n")
