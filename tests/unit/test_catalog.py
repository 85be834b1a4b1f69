"""The model catalog (roles/vm-llm-aimachine/vars/catalog.yml) against real configs and the sizing model."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import pytest
import yaml
from sizing_plugin import sizing

REPO = Path(__file__).resolve().parents[2]
DATA = Path(__file__).parent / "data"
CATALOG = yaml.safe_load((REPO / "roles/vm-llm-aimachine/vars/catalog.yml").read_text())[
    "__vm_llm_aimachine_catalog"
]


REAL_CONFIG = {
    "qwen2.5-7b-instruct-awq": "qwen2.5-7b-instruct.hqq-4bit.config.json",
    "qwen2.5-coder-7b-instruct-awq": "qwen2.5-7b-instruct.hqq-4bit.config.json",
    "qwen3-8b-awq": "qwen3-8b.config.json",
    "qwen3-8b-fp8": "qwen3-8b.config.json",
    "qwen2.5-14b-instruct-awq": "qwen2.5-14b-instruct.config.json",
}
SHAPE_FROM_CONFIG = {
    "layers": "num_hidden_layers",
    "attention_heads": "num_attention_heads",
    "kv_heads": "num_key_value_heads",
    "hidden_size": "hidden_size",
    "intermediate_size": "intermediate_size",
    "vocab_size": "vocab_size",
    "max_position_embeddings": "max_position_embeddings",
}


def weights_bytes(shape: dict, scheme: str) -> int:
    """Safetensors size from the shape: AWQ 4-bit group 128 (qweight, qzeros, fp16 scales) or FP8
    with a float32 scale per 128x128 block; embeddings, untied head and norms in 16 bit."""

    def linear(n_in: int, n_out: int, bias: bool) -> int:
        if scheme == "awq":
            size = n_in * n_out // 2 + (n_in // 128) * (n_out // 8) * 4 + (n_in // 128) * n_out * 2
        else:
            size = n_in * n_out + math.ceil(n_in / 128) * math.ceil(n_out / 128) * 4
        return size + (n_out * 2 if bias else 0)

    h, i, v, hd = shape["hidden_size"], shape["intermediate_size"], shape["vocab_size"], shape["head_dim"]
    q, kv = shape["attention_heads"] * hd, shape["kv_heads"] * hd
    qwen2 = shape["architecture"] == "Qwen2ForCausalLM"  # QKV bias; Qwen3 has q/k norms instead
    layer = (
        linear(h, q, qwen2)
        + 2 * linear(h, kv, qwen2)
        + linear(q, h, False)
        + 2 * linear(h, i, False)
        + linear(i, h, False)
        + 2 * h * 2
        + (0 if qwen2 else 2 * hd * 2)
    )
    return 2 * v * h * 2 + h * 2 + shape["layers"] * layer


def props(entry: dict) -> dict:
    return dict(
        entry["shape"],
        weights_bytes=int(entry["weights_gb"] * 1e9),
        min_compute_capability=entry["min_compute_capability"],
    )


def test_one_default_and_it_is_the_origin_model():
    defaults = [name for name, entry in CATALOG.items() if entry["default"]]
    assert defaults == ["qwen2.5-7b-instruct-awq"]
    assert CATALOG["qwen2.5-7b-instruct-awq"]["repo_id"] == "Qwen/Qwen2.5-7B-Instruct-AWQ"


def test_the_origin_documents_upgrade_paths_are_there():
    assert {e["repo_id"] for e in CATALOG.values()} == {
        "Qwen/Qwen2.5-7B-Instruct-AWQ",
        "Qwen/Qwen2.5-Coder-7B-Instruct-AWQ",
        "Qwen/Qwen3-8B-AWQ",
        "Qwen/Qwen3-8B-FP8",
        "Qwen/Qwen2.5-14B-Instruct-AWQ",
    }
    assert CATALOG["qwen2.5-14b-instruct-awq"]["tensor_parallel_size"] == 2
    assert float(CATALOG["qwen3-8b-fp8"]["min_compute_capability"]) >= 8.9


@pytest.mark.parametrize("name", sorted(CATALOG))
def test_revision_is_a_commit_or_explicitly_absent(name):
    entry = CATALOG[name]
    revision = entry["revision"]
    assert revision is None or re.fullmatch(r"[0-9a-f]{40}", revision), revision
    assert entry["revision_evidence"].strip(), "say where the hash was seen, or why there is none"


@pytest.mark.parametrize("name", sorted(CATALOG))
def test_shape_matches_a_real_published_config(name):
    entry, cfg = CATALOG[name], json.loads((DATA / REAL_CONFIG[name]).read_text())
    for ours, theirs in SHAPE_FROM_CONFIG.items():
        assert entry["shape"][ours] == cfg[theirs], ours
    assert entry["shape"]["architecture"] == cfg["architectures"][0]
    assert entry["shape"]["head_dim"] == cfg.get("head_dim", cfg["hidden_size"] // cfg["num_attention_heads"])
    assert (
        entry["kv_bytes_per_token"]
        == sizing.kv_bytes_per_token(cfg)
        == sizing.kv_bytes_per_token(entry["shape"])
    )


def test_weight_formula_reproduces_the_published_file_sizes():
    """Checked where Hugging Face lists the files: 4 + 1.57 GB and 3.99 + 3.97 + 2.02 GB."""
    assert weights_bytes(CATALOG["qwen2.5-7b-instruct-awq"]["shape"], "awq") / 1e9 == pytest.approx(
        5.57, abs=0.01
    )
    assert weights_bytes(CATALOG["qwen2.5-14b-instruct-awq"]["shape"], "awq") / 1e9 == pytest.approx(
        9.98, abs=0.01
    )


@pytest.mark.parametrize("name", sorted(CATALOG))
def test_weights_gb_agrees_with_the_shape(name):
    entry = CATALOG[name]
    computed = weights_bytes(entry["shape"], entry["quantization"]) / 1e9
    assert entry["weights_gb"] == pytest.approx(computed, abs=0.01)


@pytest.mark.parametrize("name", sorted(CATALOG))
def test_vram_figures_are_what_the_sizing_filter_computes(name):
    """Smallest card (256 MiB steps, no desktop) that serves the context with the entry's GPUs."""
    entry = CATALOG[name]
    tp = entry["tensor_parallel_size"]
    for key, gib in entry["vram_per_gpu_gib"].items():
        context = int(key.removeprefix("context_"))
        profile = {"max_model_len": context, "min_model_len": context, "tensor_parallel_size": tp}

        def fits(mib: int, profile: dict = profile) -> bool:
            card = {"memory_total_mib": mib, "compute_capability": "9.0", "count": tp}
            try:
                sizing.vllm_sizing(props(entry), card, profile)
            except sizing.SizingError:
                return False
            return True

        assert fits(int(gib * 1024)), f"{name} does not fit {gib} GiB for {context} tokens"
        assert not fits(int(gib * 1024) - 256), f"{name} would fit below {gib} GiB for {context} tokens"


@pytest.mark.parametrize("name", sorted(CATALOG))
def test_every_entry_runs_on_its_16gb_target(name):
    """The appliance's target: 16 GB cards with a desktop, as many as the entry asks for."""
    entry = CATALOG[name]
    card = {
        "name": "16 GB",
        "memory_total_mib": 16376,
        "memory_reserved_mib": 434,
        "compute_capability": "8.9",
        "display_active": True,
    }
    tp = entry["tensor_parallel_size"]
    result = sizing.vllm_sizing(props(entry), [card] * tp, {"tensor_parallel_size": tp})
    assert result["tensor_parallel_size"] == tp
    assert result["max_model_len"] >= 8192


def test_tool_and_reasoning_parsers():
    assert CATALOG["qwen2.5-7b-instruct-awq"]["tool_call_parser"] == "hermes"
    # REFERENCES.md: Qwen2.5-Coder does not emit the hermes format.
    assert CATALOG["qwen2.5-coder-7b-instruct-awq"]["tool_call_parser"] is None
    assert CATALOG["qwen3-8b-awq"]["reasoning_parser"] == "qwen3"
    for entry in CATALOG.values():
        assert entry["tool_call_parser"] in (None, "hermes")


def test_default_scores_are_the_sourced_ones():
    scores = {s["benchmark"]: s for s in CATALOG["qwen2.5-7b-instruct-awq"]["scores"]}
    assert scores["HumanEval"]["score"] == 84.8
    assert scores["MBPP"]["score"] == 79.2  # not the 72B model's 88.2 that the origin document used
    assert scores["IFEval strict-prompt"]["score"] == 71.2


@pytest.mark.parametrize("name", sorted(CATALOG))
def test_every_entry_has_published_scores_with_sources(name):
    entry = CATALOG[name]
    assert entry["scores"], "transcribe the publisher's scores; scores_note says from which table"
    for score in entry["scores"]:
        assert score["source"].startswith("https://") and isinstance(score["score"], float)
        assert score["model"], "say which model the publisher scored (not the quantized one)"
    assert entry["scores_note"].strip()
    benchmarks = [(s["benchmark"], s["model"]) for s in entry["scores"]]
    assert len(benchmarks) == len(set(benchmarks)), "one figure per benchmark and model"


def test_coder_and_qwen3_scores_are_the_report_tables():
    coder = {s["benchmark"]: s["score"] for s in CATALOG["qwen2.5-coder-7b-instruct-awq"]["scores"]}
    # Qwen2.5-Coder report v3, Tables 16 and 19 (not the prose's 37.6 and 51.9).
    assert (coder["HumanEval"], coder["MBPP+"]) == (88.4, 71.7)
    assert (coder["LiveCodeBench 2407-2409"], coder["Aider pass@1 (whole edit format)"]) == (18.2, 55.6)
    qwen3 = {(s["benchmark"], s["model"]): s["score"] for s in CATALOG["qwen3-8b-awq"]["scores"]}
    # Qwen3 report v1, Table 17 (thinking) and Table 18 (non-thinking).
    assert qwen3[("LiveCodeBench v5 2410-2502", "Qwen3-8B, thinking mode")] == 57.5
    assert qwen3[("LiveCodeBench v5 2410-2502", "Qwen3-8B, non-thinking mode")] == 22.8
    # Both quantizations carry Qwen3-8B's own figures, and say that theirs could not be read.
    assert CATALOG["qwen3-8b-fp8"]["scores"] == CATALOG["qwen3-8b-awq"]["scores"]
    for name in ("qwen3-8b-awq", "qwen3-8b-fp8"):
        assert "could not be read" in CATALOG[name]["scores_note"]
