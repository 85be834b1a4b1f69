"""playbooks/render-serving-config.yml for issue 21's two-GPU 14B and issue 16's bundle instances,
rendered as a user runs it, and (with AIMACHINE_VLLM_PYTHON) checked by the pinned vLLM's parser."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
import yaml
from pinned_vllm import vllm_python
from render_playbook import REPO, render_serving_config
from sizing_plugin import sizing

CARD_16GIB = {"name": "16 GiB card", "memory_total_mib": 16384, "compute_capability": "8.9"}
CHECKER = REPO / "scripts/check_vllm_config_keys.py"


def _render(tmp_path: Path, name: str, **variables) -> tuple[dict, dict]:
    out = tmp_path / name
    render_serving_config(json.dumps({"render_dir": str(out), **variables}))
    return (
        yaml.safe_load((out / "aimachine-llm.yaml").read_text()),
        json.loads((out / "sizing.json").read_text()),
    )


def _check(*paths: Path) -> subprocess.CompletedProcess | None:
    python = vllm_python()
    if python is None:
        return None
    return subprocess.run(
        [python, str(CHECKER), *map(str, paths)], capture_output=True, text=True, timeout=900, check=False
    )


def test_14b_tensor_parallel_2_on_two_16gib_cards(tmp_path):
    config, sized = _render(
        tmp_path,
        "tp2",
        render_model="qwen2.5-14b-instruct-awq",
        render_model_path="/var/lib/aimachine/models/Qwen2.5-14B-Instruct-AWQ",
        render_served_model_name="qwen2.5-14b-instruct",
        render_gpus=[CARD_16GIB, CARD_16GIB],
    )
    assert config["tensor-parallel-size"] == 2
    assert config["max-model-len"] == 32768
    # Per GPU: half the KV heads (2 x 48 x 4 x 128 x 2 B) and half the 9.98 GB of weights.
    assert sized["kv_bytes_per_token"] == 98304
    assert sized["arithmetic"]["weights_gib_per_gpu"] == pytest.approx(9.98e9 / 2 / 1024**3, abs=0.01)
    assert config["max-num-seqs"] == sizing.seqs_from_capacity(sized["kv_cache_tokens"])
    # What the sizing charged: 512 where the pool fits, max-num-seqs where it would cost context.
    assert config["max-cudagraph-capture-size"] == sized["max_cudagraph_capture_size"]
    assert config["max-cudagraph-capture-size"] in (512, config["max-num-seqs"])
    done = _check(tmp_path / "tp2/aimachine-llm.yaml")
    if done is not None:
        assert done.returncode == 0, done.stdout + done.stderr


def test_bundle_instances_render_with_their_share_and_role(tmp_path):
    catalog = yaml.safe_load((REPO / "roles/vm-llm-aimachine/vars/catalog.yml").read_text())
    catalog = catalog["__vm_llm_aimachine_catalog"]

    def props(key: str, **overrides) -> dict:
        entry = dict(catalog[key], **overrides)
        # As the render playbook passes them: the catalog's quantization sizes the weights' surplus.
        return dict(
            entry["shape"], weights_bytes=int(entry["weights_gb"] * 1e9), quantization=entry["quantization"]
        )

    bundle = sizing.bundle_sizing(
        [
            {
                "name": "coder",
                "role": "autocomplete",
                "model": props("qwen2.5-coder-1.5b", weights_gb=1.15, quantization="awq"),
            },
            {"name": "embed", "role": "embed", "model": props("qwen3-embedding-0.6b")},
        ],
        CARD_16GIB,
    )
    embed = next(i for i in bundle["instances"] if i["name"] == "embed")
    wishes = {k: v for k, v in sizing.ROLE_PROFILES["embed"].items() if k != "kv_tokens"}
    config, sized = _render(
        tmp_path,
        "embed",
        render_model="qwen3-embedding-0.6b",
        render_model_path="/var/lib/aimachine/models/Qwen3-Embedding-0.6B",
        render_served_model_name="qwen3-embedding-0.6b",
        render_gpus=[CARD_16GIB],
        render_port=8002,
        render_profile=dict(wishes, gpu_memory_utilization=embed["gpu_memory_utilization"]),
    )
    assert config["port"] == 8002 and config["runner"] == "pooling"
    assert config["gpu-memory-utilization"] == embed["gpu_memory_utilization"]
    assert config["max-model-len"] == 4096
    assert sized["kv_cache_tokens"] == embed["sizing"]["kv_cache_tokens"]
    assert "pooling: no sampler" in sized["arithmetic"]["activation_formula"]
    done = _check(tmp_path / "embed/aimachine-llm.yaml")
    if done is not None:
        assert done.returncode == 0, done.stdout + done.stderr


def test_env_file_writes_the_compile_artifact_setting_and_only_variables_vllm_reads(tmp_path):
    """The EnvironmentFile writes VLLM_USE_MEGA_AOT_ARTIFACT either way (vLLM's own default differs by
    torch version); with the pinned vLLM, every VLLM_* name in it is one vLLM reads, and a misspelt
    one fails."""
    envs = {}
    for value in (True, False):
        out = tmp_path / f"mega-{value}"
        render_serving_config(
            json.dumps({"render_dir": str(out), "llm_server_vllm_mega_aot_artifact": value})
        )
        envs[value] = out / "aimachine-llm.env"
    lines = {value: path.read_text().splitlines() for value, path in envs.items()}
    assert "VLLM_USE_MEGA_AOT_ARTIFACT=1" in lines[True]
    assert "VLLM_USE_MEGA_AOT_ARTIFACT=0" in lines[False]
    assert "VLLM_WORKER_MULTIPROC_METHOD=fork" in lines[True]
    bogus = tmp_path / "bogus.env"
    bogus.write_text(
        envs[True].read_text().replace("VLLM_USE_MEGA_AOT_ARTIFACT", "VLLM_USE_MEGA_AOT_ARTEFACT")
    )
    done = _check(envs[True], bogus)
    if done is None:
        pytest.skip("set AIMACHINE_VLLM_PYTHON to a Python with the pinned vLLM")
    assert done.returncode == 1, done.stdout + done.stderr
    named = sum(1 for line in lines[True] if line.startswith("VLLM_"))
    assert f"{envs[True]}: {named} VLLM_* variables are read by vLLM" in done.stdout
    assert "VLLM_USE_MEGA_AOT_ARTEFACT is not a variable vLLM reads" in done.stderr
    assert "did you mean VLLM_USE_MEGA_AOT_ARTIFACT?" in done.stderr
