"""Render roles/llm_server/templates/vllm-config.yaml.j2 with Ansible's own templar."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

pytest.importorskip("ansible")
from ansible.errors import AnsibleError
from ansible.parsing.dataloader import DataLoader
from ansible.template import Templar, trust_as_template
from pinned_vllm import vllm_python
from sizing_plugin import CARD_16GB_DESKTOP, sizing

REPO = Path(__file__).resolve().parents[2]
TEMPLATE = REPO / "roles/llm_server/templates/vllm-config.yaml.j2"
DATA = Path(__file__).parent / "data"
CHECKER = REPO / "scripts/check_vllm_config_keys.py"


def default_vars(**overrides: Any) -> dict[str, Any]:
    config = json.loads((DATA / "qwen2.5-7b-instruct.hqq-4bit.config.json").read_text())
    model = sizing.model_props(config, 5_570_000_000)
    variables = {
        "ansible_managed": "Ansible managed: do not edit",
        "__llm_server_vllm_sizing": sizing.vllm_sizing(model, CARD_16GB_DESKTOP, {}),
        "llm_server_model_path": "/var/lib/aimachine/models/Qwen2.5-7B-Instruct-AWQ",
        "__llm_server_served_name": "qwen2.5-7b-instruct",
        "llm_server_host": "127.0.0.1",
        "llm_server_port": 8000,
        "llm_server_vllm_enable_prefix_caching": True,
        "llm_server_vllm_tool_call_parser": "hermes",
        "llm_server_vllm_reasoning_parser": "",
        "llm_server_vllm_generation_config": "auto",
        "llm_server_vllm_download_dir": "",
        "llm_server_vllm_extra_config": {},
    }
    variables.update(overrides)
    return variables


def render(variables: dict[str, Any]) -> str:
    templar = Templar(loader=DataLoader(), variables=variables)
    return templar.template(trust_as_template(TEMPLATE.read_text()))


def test_default_config_for_a_16gb_card():
    text = render(default_vars())
    assert text.startswith("#\n# Ansible managed: do not edit\n#\n")
    config = yaml.safe_load(text)
    assert config == {
        "model": "/var/lib/aimachine/models/Qwen2.5-7B-Instruct-AWQ",
        "served-model-name": "qwen2.5-7b-instruct",
        "host": "127.0.0.1",
        "port": 8000,
        "max-model-len": 32768,
        "max-num-seqs": 104,
        "max-num-batched-tokens": 8192,
        # vLLM's own 512-token ceiling, so a 512-token prefill runs inside the graphs (run 7).
        "max-cudagraph-capture-size": 512,
        "gpu-memory-utilization": 0.89,
        "tensor-parallel-size": 1,
        "enable-prefix-caching": True,
        "enable-auto-tool-choice": True,
        "tool-call-parser": "hermes",
        "generation-config": "auto",
    }
    assert "KV cache 5.92 GiB, which holds 110880 tokens at 57344 B/token" in text
    assert "CUDA graphs 0.95" in text
    assert "speculative-config" not in config


def test_no_secret_and_no_forced_quantization_in_the_file():
    config = yaml.safe_load(render(default_vars(llm_server_api_key="sk-very-secret")))
    assert "api-key" not in config and "quantization" not in config
    assert "sk-very-secret" not in render(default_vars(llm_server_api_key="sk-very-secret"))


def test_model_without_tool_calling_gets_no_tool_flags():
    config = yaml.safe_load(render(default_vars(llm_server_vllm_tool_call_parser="")))
    assert "enable-auto-tool-choice" not in config and "tool-call-parser" not in config


def test_optional_keys_and_extras_render():
    two_gpus = sizing.vllm_sizing(
        sizing.model_props(json.loads((DATA / "qwen3-8b.config.json").read_text()), 6_098_479_104),
        [CARD_16GB_DESKTOP, CARD_16GB_DESKTOP],
        {"tensor_parallel_size": 2, "kv_cache_dtype": "fp8"},
    )
    config = yaml.safe_load(
        render(
            default_vars(
                __llm_server_vllm_sizing=two_gpus,
                llm_server_vllm_reasoning_parser="qwen3",
                llm_server_vllm_download_dir="/var/cache/hf",
                llm_server_vllm_extra_config={"disable_log_stats": True, "max-log-len": 100},
            )
        )
    )
    assert config["tensor-parallel-size"] == 2
    assert config["kv-cache-dtype"] == "fp8"
    assert config["reasoning-parser"] == "qwen3"
    assert config["download-dir"] == "/var/cache/hf"
    assert config["disable-log-stats"] is True and config["max-log-len"] == 100


def test_sizing_warnings_end_up_in_the_file():
    small = dict(CARD_16GB_DESKTOP, memory_total_mib=10240, memory_reserved_mib=300)
    model = sizing.model_props(
        json.loads((DATA / "qwen2.5-7b-instruct.hqq-4bit.config.json").read_text()), 5.57e9
    )
    text = render(default_vars(__llm_server_vllm_sizing=sizing.vllm_sizing(model, small, {})))
    assert "# Warning: context reduced from 32768 to" in text


@pytest.mark.parametrize(
    ("method", "expected"),
    [
        (
            "ngram",
            {"method": "ngram", "num_speculative_tokens": 3, "prompt_lookup_max": 4, "prompt_lookup_min": 2},
        ),
        ("suffix", {"method": "suffix"}),
    ],
)
def test_speculation_renders_a_json_speculative_config(method, expected):
    # The role sizes with the tokens a step verifies (vars/main.yml: 1 + 3 for ngram, 1 + 24 for suffix).
    step = 4 if method == "ngram" else 25
    model = sizing.model_props(
        json.loads((DATA / "qwen2.5-7b-instruct.hqq-4bit.config.json").read_text()), 5_570_000_000
    )
    sized = sizing.vllm_sizing(model, CARD_16GB_DESKTOP, {"speculative_step_tokens": step})
    config = yaml.safe_load(
        render(default_vars(llm_server_vllm_speculation=method, __llm_server_vllm_sizing=sized))
    )
    # A JSON string: vLLM's --speculative-config parses it with json.loads, in every release.
    assert isinstance(config["speculative-config"], str)
    assert json.loads(config["speculative-config"]) == expected
    # vLLM's rule, sequences x tokens per step, at least 512 and at most 1024: ngram's
    # 104 x 4 = 416 gets 512; suffix's 88 x 25 gets the 1024 cap.
    assert config["max-cudagraph-capture-size"] == (512 if method == "ngram" else 1024)
    assert config["max-cudagraph-capture-size"] == sized["max_cudagraph_capture_size"]
    assert "speculative-config" not in yaml.safe_load(render(default_vars(llm_server_vllm_speculation="off")))


DRAFT = {
    "method": "eagle3",
    "path": "/var/lib/aimachine/models/Qwen3-8B-speculator.eagle3",
    "repo_id": "RedHatAI/Qwen3-8B-speculator.eagle3",
    "revision": "0123456789abcdef0123456789abcdef01234567",
}


def test_draft_speculation_needs_a_pinned_head():
    text = render(
        default_vars(
            llm_server_vllm_speculation="draft",
            llm_server_vllm_speculation_draft=DRAFT,
            llm_server_vllm_speculation_tokens=4,
        )
    )
    assert json.loads(yaml.safe_load(text)["speculative-config"]) == {
        "method": "eagle3",
        "model": DRAFT["path"],
        "num_speculative_tokens": 4,
    }
    assert f"@ {DRAFT['revision']}" in text
    for bad in ({}, dict(DRAFT, revision="main"), dict(DRAFT, path="")):
        with pytest.raises(AnsibleError, match="pinned 40-hex revision"):
            render(default_vars(llm_server_vllm_speculation="draft", llm_server_vllm_speculation_draft=bad))
    with pytest.raises(AnsibleError, match="must be eagle3, eagle or draft_model"):
        render(
            default_vars(
                llm_server_vllm_speculation="draft",
                llm_server_vllm_speculation_draft=dict(DRAFT, method="medusa"),
            )
        )
    with pytest.raises(AnsibleError, match="must be off, ngram, suffix or draft"):
        render(default_vars(llm_server_vllm_speculation="mtp"))
    with pytest.raises(AnsibleError, match="which the role already sets"):
        render(default_vars(llm_server_vllm_extra_config={"speculative_config": {"method": "ngram"}}))


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ({"api-key": "x"}, "EnvironmentFile"),
        ({"api_key": "x"}, "EnvironmentFile"),
        ({"quantization": "awq"}, "vllm#21376"),
        ({"max_model_len": 4096}, "sets max-model-len, which the role already sets"),
    ],
)
def test_forbidden_extras_fail_with_a_reason(extra, message):
    with pytest.raises(AnsibleError, match=message):
        render(default_vars(llm_server_vllm_extra_config=extra))


# --- the rendered file against the pinned vLLM (CI installs it into a throwaway venv) ---------


@pytest.mark.e2e
@pytest.mark.skipif(vllm_python() is None, reason="set AIMACHINE_VLLM_PYTHON to a Python with vLLM installed")
def test_rendered_config_keys_exist_in_vllm(tmp_path):
    good = tmp_path / "vllm-config.yaml"
    good.write_text(render(default_vars()))
    bogus = tmp_path / "bogus.yaml"
    bogus.write_text(render(default_vars(llm_server_vllm_extra_config={"max-modle-len": 4096})))
    specs = []
    for method in ("ngram", "suffix"):
        specs.append(tmp_path / f"spec-{method}.yaml")
        specs[-1].write_text(render(default_vars(llm_server_vllm_speculation=method)))
    bad_spec = tmp_path / "bad-spec.yaml"
    bad_spec.write_text(
        render(default_vars(llm_server_vllm_speculation="ngram"))
        .replace('\\"ngram\\"', '\\"ngramm\\"')
        .replace("prompt_lookup_max", "prompt_lookup_maxx")
    )
    done = subprocess.run(
        [vllm_python(), str(CHECKER), str(good), str(bogus), *specs, str(bad_spec)],
        check=False,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert done.returncode == 1, done.stdout + done.stderr
    assert f"{good}: 14 keys are valid" in done.stdout
    for spec in specs:
        assert f"{spec}: 15 keys are valid" in done.stdout, done.stderr
    assert f"{bad_spec}: error: speculative-config: method 'ngramm' is not one of vLLM's" in done.stderr
    assert (
        f"{bad_spec}: error: speculative-config: prompt_lookup_maxx is not a SpeculativeConfig field "
        "(did you mean: prompt_lookup_max" in done.stderr
    )
    assert (
        f"{bogus}: error: max-modle-len: not a `vllm serve` option (did you mean: max-model-len"
        in done.stderr
    )
