"""Bad input fails before anything changes, with a message naming the variable.

Runs the real site.yml against this machine (inventories/local, connection local) in --check
mode, so even a missed validation could not change the machine; and it asserts the run never
reached the phase that applies the roles.
"""

import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PLAYBOOK = Path(sys.executable).parent / "ansible-playbook"
GOOD_KEY = "k" * 40
PORT_RANGE = "vm_llm_aimachine_port must be 1024-65535 (got "

CASES = {
    "non-numeric port": (["-e", "vm_llm_aimachine_port=eighty"], "vm_llm_aimachine_port"),
    "privileged port": (["-e", "vm_llm_aimachine_port=80"], PORT_RANGE + "80"),
    "port zero": (["-e", "vm_llm_aimachine_port=0"], PORT_RANGE + "0"),
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
        "vm_llm_aimachine_model_local_path /nonexistent/model has no config.json on the controller",
    ),
    "branch instead of revision": (
        ["-e", "vm_llm_aimachine_model_revision=main"],
        "vm_llm_aimachine_model_revision must be a 40-hex commit of the model repository (got 'main')",
    ),
    "short api key": (
        ["-e", "vm_llm_aimachine_api_key=short"],
        "llm_server_api_key must be at least 32 characters",
    ),
    # docs/bad-input.md lists every row below with the exact error.
    "port above 65535": (["-e", "vm_llm_aimachine_port=70000"], PORT_RANGE + "70000"),
    "type error in one line": (
        ["-e", "vm_llm_aimachine_port=eighty"],
        "Bad input: argument 'vm_llm_aimachine_port' is of type str and we were unable to convert to int",
    ),
    # Profile values are checked in every mode, the CPU engine's too (run_site sets mode cpu).
    "gpu memory utilization above 1": (
        ["-e", '{"vm_llm_aimachine_vllm_profile": {"gpu_memory_utilization": 1.5}}'],
        "vm_llm_aimachine_vllm_profile: gpu_memory_utilization must be a fraction in (0, 1] (got 1.5)",
    ),
    "negative gpu memory utilization": (
        ["-e", '{"vm_llm_aimachine_vllm_profile": {"gpu_memory_utilization": -0.1}}'],
        "vm_llm_aimachine_vllm_profile: gpu_memory_utilization must be a fraction in (0, 1] (got -0.1)",
    ),
    "context beyond the model": (
        ["-e", '{"vm_llm_aimachine_vllm_profile": {"max_model_len": 10000000}}'],
        "vm_llm_aimachine_vllm_profile: max_model_len must be 1-32768 tokens (got 10000000; "
        "max_position_embeddings of the model: 32768)",
    ),
    "unknown model source": (["-e", "vm_llm_aimachine_model_source=ftp"], "vm_llm_aimachine_model_source"),
    "served models not a list": (["-e", "vm_llm_aimachine_models=chat"], "vm_llm_aimachine_models"),
    "served model not in the catalog": (
        [
            "-e",
            '{"vm_llm_aimachine_models": [{"role": "chat"}, {"model": "starcoder", "role": "autocomplete"}]}',
        ],
        "vm_llm_aimachine_models[1].model 'starcoder' is not in the catalog",
    ),
    "autocomplete model without FIM tokens": (
        [
            "-e",
            '{"vm_llm_aimachine_models": [{"role": "chat"}, {"role": "autocomplete", "id": "acme/coder", '
            '"revision": "' + "a" * 40 + '"}]}',
        ],
        "vm_llm_aimachine_models[1] (autocomplete) needs the model's fill-in-the-middle tokens",
    ),
    "embedding model served as chat": (
        ["-e", '{"vm_llm_aimachine_models": [{"model": "qwen3-embedding-0.6b", "role": "chat"}]}'],
        "vm_llm_aimachine_models[0]: qwen3-embedding-0.6b is the catalog's embed model, not a chat model",
    ),
    "unknown driver source": (
        ["-e", "vm_llm_aimachine_nvidia_driver_source=ppa"],
        "vm_llm_aimachine_nvidia_driver_source",
    ),
    "reboot not a boolean": (["-e", "vm_llm_aimachine_reboot=maybe"], "vm_llm_aimachine_reboot"),
    "model size not a number": (
        ["-e", "vm_llm_aimachine_model_size_bytes=big"],
        "vm_llm_aimachine_model_size_bytes",
    ),
    "vllm profile not a mapping": (
        ["-e", "vm_llm_aimachine_vllm_profile=8192"],
        "vm_llm_aimachine_vllm_profile",
    ),
    "model id without owner": (
        [
            "-e",
            "vm_llm_aimachine_model=",
            "-e",
            "vm_llm_aimachine_model_id=no-owner",
            "-e",
            "vm_llm_aimachine_model_revision=" + "a" * 40,
        ],
        "llm_model_id must be 'owner/name' (got 'no-owner')",
    ),
    "gpu mode on a host without a gpu": (
        ["-e", "vm_llm_aimachine_mode=gpu"],
        "llm_preflight_mode is 'gpu' but this host shows no NVIDIA display controller",
    ),
    "model larger than the disk": (
        ["-e", "vm_llm_aimachine_model=", "-e", "vm_llm_aimachine_model_size_bytes=1000000000000000"],
        "Not enough disk space for the model on",
    ),
    "engine argument sets the port": (
        ["-e", '{"llm_server_extra_args": ["--port", "9000"]}'],
        "llm_server_extra_args must not set --host, --port or --api-key",
    ),
    "engine arguments not a list of strings": (
        ["-e", '{"llm_server_extra_args": {"port": 9000}}'],
        "llm_server_extra_args",
    ),
    "negative restart delay": (
        ["-e", "llm_server_restart_sec=-1"],
        "llm_server_restart_sec must be >= 0 (got -1)",
    ),
    "restart delay not a number": (["-e", "llm_server_restart_sec=soon"], "llm_server_restart_sec"),
    "known-good copies where the engine writes": (
        ["-e", "llm_server_known_good_dir=/var/lib/aimachine/server/known-good"],
        "llm_server_known_good_dir (/var/lib/aimachine/server/known-good) an absolute path outside "
        "llm_server_state_dir",
    ),
    "gate on an unknown metric": (
        ["-e", '{"llm_verify_gates": [{"metric": "speed", "min": 1}]}'],
        'llm_verify_gates: {"metric": "speed", "min": 1} needs a metric',
    ),
    "gate with two thresholds": (
        ["-e", '{"llm_verify_gates": [{"metric": "error_rate", "min": 0, "max": 1}]}'],
        "exactly one numeric min or max",
    ),
    "unknown verification mode": (["-e", "llm_verify_mode=slow"], "llm_verify_mode"),
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


# The cases are independent --check runs of about 15 s each, mostly Ansible starting up: a few at
# once keep the whole file to a few minutes.
PARALLEL = int(os.environ.get("AIMACHINE_TEST_PARALLEL", "3"))


@pytest.fixture(scope="module")
def site_runs(request):
    """Every selected case's run, started together; each test then reads its own."""
    wanted = [
        item.callspec.params["case"]
        for item in request.session.items
        if item.originalname == "test_bad_input_fails_before_any_change" and hasattr(item, "callspec")
    ]
    with ThreadPoolExecutor(max_workers=PARALLEL) as pool:
        futures = {case: pool.submit(run_site, CASES[case][0]) for case in wanted}
        return {case: future.result() for case, future in futures.items()}


@pytest.mark.e2e
@pytest.mark.parametrize("case", CASES, ids=list(CASES))
def test_bad_input_fails_before_any_change(case, site_runs):
    expected = CASES[case][1]
    done = site_runs[case]
    out = done.stdout + done.stderr
    assert done.returncode != 0, out[-3000:]
    assert expected in " ".join(out.split()), out[-3000:]
    # The roles are applied only after every component validated its input.
    assert "TASK [vm-llm-aimachine : Apply the components]" not in out, out[-3000:]
    assert "llm_base : Install the base packages" not in out
    # The API key is never echoed, not even in a validation error.
    assert GOOD_KEY not in out
    # The appliance's own settings: one readable error, not an argument-spec dump of hundreds of
    # lines (a component's variable set directly still gets that role's spec check).
    if all(arg.startswith("vm_llm_aimachine_") or arg == "-e" for arg in CASES[case][0]):
        error = out[out.rfind("[ERROR]") : out.rfind("PLAY RECAP")]
        assert "argument_spec_data" not in out and len(error.splitlines()) < 30, error[-3000:]
