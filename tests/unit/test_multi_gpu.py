"""Several GPUs for one model: tensor parallel in one host, pipeline parallel across hosts.

The sizing filter's arithmetic with real config.json files, and the real render playbook
(playbooks/render-serving-config.yml) for the catalog's two-GPU entry; the rendered keys are
checked against the pinned vLLM's own parser when AIMACHINE_VLLM_PYTHON is set.
"""

from __future__ import annotations

import json
import math
import subprocess
from pathlib import Path

import pytest
import yaml
from pinned_vllm import vllm_python
from render_playbook import PLAYBOOK, render_serving_config
from sizing_plugin import sizing

REPO = Path(__file__).resolve().parents[2]
DATA = Path(__file__).parent / "data"
CHECKER = REPO / "scripts/check_vllm_config_keys.py"

# A 16 GiB card without a desktop, as render-serving-config.yml describes its default GPU.
CARD_16GB = {
    "name": "16 GiB card",
    "memory_total_mib": 16384,
    "compute_capability": "8.9",
    "display_active": False,
}
QWEN25_14B_AWQ_BYTES = 9_980_000_000


def qwen25_14b() -> dict:
    config = json.loads((DATA / "qwen2.5-14b-instruct.config.json").read_text())
    return sizing.model_props(config, QWEN25_14B_AWQ_BYTES)


def test_pipeline_stages_split_the_layers_and_the_weights():
    one = sizing.vllm_sizing(qwen25_14b(), CARD_16GB, {"min_model_len": 1024})
    two = sizing.vllm_sizing(qwen25_14b(), CARD_16GB, {"pipeline_parallel_size": 2})
    # 48 layers, 8 KV heads x 128 x 2 B: 196608 B/token on one stage, 24 layers' worth on each of two.
    assert one["kv_bytes_per_token"] == 2 * 48 * 8 * 128 * 2
    assert two["kv_bytes_per_token"] == 2 * 24 * 8 * 128 * 2
    assert two["arithmetic"]["weights_gib_per_gpu"] == round(math.ceil(QWEN25_14B_AWQ_BYTES / 2) / 1024**3, 2)
    assert two["pipeline_parallel_size"] == 2 and two["tensor_parallel_size"] == 1
    # Stages on other hosts need Ray; it is chosen when the profile does not say.
    assert two["distributed_executor_backend"] == "ray"
    assert two["kv_cache_tokens"] > 2 * one["kv_cache_tokens"]


def test_one_stage_leaves_the_backend_to_vllm():
    result = sizing.vllm_sizing(qwen25_14b(), [CARD_16GB, CARD_16GB], {"tensor_parallel_size": 2})
    assert result["pipeline_parallel_size"] == 1 and result["distributed_executor_backend"] == ""


@pytest.mark.parametrize(
    ("profile", "message"),
    [
        ({"pipeline_parallel_size": 49}, "pipeline_parallel_size=49 exceeds the model's 48 layers"),
        ({"pipeline_parallel_size": 0}, "pipeline_parallel_size must be positive"),
        ({"distributed_executor_backend": "mpi"}, "distributed_executor_backend must be"),
    ],
)
def test_bad_pipeline_settings_fail_with_the_reason(profile, message):
    with pytest.raises(sizing.SizingError, match=message):
        sizing.vllm_sizing(qwen25_14b(), CARD_16GB, profile)


def _render(tmp_path: Path, gpus: list[dict], profile: dict, ray: str = "") -> tuple[dict, str]:
    out = tmp_path / "out"
    extra = tmp_path / "extra.json"
    extra.write_text(
        json.dumps(
            {
                "render_dir": str(out),
                "render_model": "qwen2.5-14b-instruct-awq",
                "render_model_path": "/var/lib/aimachine/models/Qwen2.5-14B-Instruct-AWQ",
                "render_served_model_name": "qwen2.5-14b-instruct",
                "render_gpus": gpus,
                "render_profile": profile,
                "render_ray_address": ray,
            }
        )
    )
    render_serving_config(f"@{extra}")
    path = out / "aimachine-llm.yaml"
    return yaml.safe_load(path.read_text()), str(path)


@pytest.mark.skipif(PLAYBOOK is None, reason="ansible-playbook is not installed")
def test_the_14b_entry_renders_tensor_parallel_on_a_two_gpu_host(tmp_path):
    config, _ = _render(tmp_path, [CARD_16GB, CARD_16GB], {})
    assert config["tensor-parallel-size"] == 2
    assert config["max-model-len"] == 32768
    assert "pipeline-parallel-size" not in config and "distributed-executor-backend" not in config


@pytest.mark.skipif(PLAYBOOK is None, reason="ansible-playbook is not installed")
def test_the_14b_entry_across_two_one_gpu_hosts_renders_ray_pipeline_stages(tmp_path):
    config, path = _render(
        tmp_path, [CARD_16GB], {"tensor_parallel_size": 1, "pipeline_parallel_size": 2}, ray="10.0.0.5:6379"
    )
    env = (tmp_path / "out" / "aimachine-llm.env").read_text()
    assert "\nRAY_ADDRESS=10.0.0.5:6379\n" in env
    assert config["tensor-parallel-size"] == 1
    assert config["pipeline-parallel-size"] == 2
    assert config["distributed-executor-backend"] == "ray"
    assert config["max-model-len"] == 32768
    python = vllm_python()
    if python:
        checked = subprocess.run(
            [python, str(CHECKER), path], capture_output=True, text=True, timeout=900, check=False
        )
        assert checked.returncode == 0, checked.stdout + checked.stderr
        assert f"{path}: 16 keys are valid" in checked.stdout  # + max-cudagraph-capture-size


@pytest.mark.skipif(PLAYBOOK is None, reason="ansible-playbook is not installed")
def test_a_pipeline_across_hosts_without_its_ray_head_is_refused(tmp_path):
    with pytest.raises(AssertionError, match="set llm_server_ray_address to the Ray head"):
        _render(tmp_path, [CARD_16GB], {"tensor_parallel_size": 1, "pipeline_parallel_size": 2})
