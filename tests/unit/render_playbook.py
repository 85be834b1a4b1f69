"""playbooks/render-serving-config.yml, run as a user runs it, for the tests that read its files."""

import os
import shutil
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
PLAYBOOK = shutil.which("ansible-playbook", path=str(REPO / ".venv/bin")) or shutil.which("ansible-playbook")


def render_serving_config(*extra_vars: str) -> None:
    """Run the playbook with these `-e` values; fail with its output when it fails."""
    args = [arg for value in extra_vars for arg in ("-e", value)]
    done = subprocess.run(
        [PLAYBOOK, str(REPO / "playbooks/render-serving-config.yml"), *args],
        cwd=REPO,
        env=dict(os.environ, ANSIBLE_CONFIG=str(REPO / "ansible.cfg")),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
