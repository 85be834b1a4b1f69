"""Bad input fails before anything changes, with a message naming the variable.

Runs the real site.yml against this machine (inventories/local, connection local) in --check
mode, so even a missed validation could not change the machine; and it asserts the run never
reached the phase that applies the roles.
"""

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PLAYBOOK = Path(sys.executable).parent / "ansible-playbook"
GOOD_KEY = "k" * 40

CASES = {
    "non-numeric port": (["-e", "vm_llm_aimachine_port=eighty"], "vm_llm_aimachine_port"),
    "privileged port": (["-e", "vm_llm_aimachine_port=80"], "llm_server_port must be 1024-65535"),
    "unknown engine": (["-e", "vm_llm_aimachine_engine=tgi"], "vm_llm_aimachine_engine"),
    "unknown mode": (["-e", "vm_llm_aimachine_mode=tpu"], "vm_llm_aimachine_mode"),
    "model not in catalog": (
        ["-e", "vm_llm_aimachine_model=gpt-5"],
        "vm_llm_aimachine_model 'gpt-5' is not in the catalog",
    ),
    "missing model path": (
        [
            "-e",
            "vm_llm_aimachine_model=",
            "-e",
            "vm_llm_aimachine_model_id=local/none",
            "-e",
            "vm_llm_aimachine_model_source=controller",
            "-e",
            "vm_llm_aimachine_model_local_path=/nonexistent/model",
        ],
        "llm_model_local_path /nonexistent/model has no config.json on the controller",
    ),
    "branch instead of revision": (
        ["-e", "vm_llm_aimachine_model_revision=main"],
        "llm_model_revision a 40-hex commit (got 'main')",
    ),
    "short api key": (
        ["-e", "vm_llm_aimachine_api_key=short"],
        "llm_server_api_key must be at least 32 characters",
    ),
}


def run_site(extra: list[str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        [
            str(PLAYBOOK),
            "-i",
            str(ROOT / "inventories/local/hosts.yml"),
            str(ROOT / "site.yml"),
            "--check",
            "-e",
            "vm_llm_aimachine_mode=cpu",
            "-e",
            f"vm_llm_aimachine_api_key={GOOD_KEY}",
            *extra,
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        env={"ANSIBLE_CONFIG": str(ROOT / "ansible.cfg"), "ANSIBLE_NOCOLOR": "1", "PATH": "/usr/bin:/bin"},
        check=False,
    )


@pytest.mark.e2e
@pytest.mark.parametrize("case", CASES, ids=list(CASES))
def test_bad_input_fails_before_any_change(case):
    extra, expected = CASES[case]
    done = run_site(extra)
    out = done.stdout + done.stderr
    assert done.returncode != 0, out[-3000:]
    assert expected in " ".join(out.split()), out[-3000:]
    # The roles are applied only after every component validated its input.
    assert "TASK [vm-llm-aimachine : Apply the components]" not in out, out[-3000:]
    assert "llm_base : Install the base packages" not in out
    # The API key is never echoed, not even in a validation error.
    assert GOOD_KEY not in out
