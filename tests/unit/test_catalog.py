"""The model catalog (roles/vm-llm-aimachine/vars/catalog.yml) against real configs and the sizing model."""

from __future__ import annotations

import ast
import hashlib
import json
import math
import os
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
    "qwen2.5-coder-1.5b": "qwen2.5-1.5b-instruct.transformers5.config.json",
    "qwen3-embedding-0.6b": "qwen3-embedding-0.6b.config.json",
}
SHAPE_FROM_CONFIG = {
    "layers": "num_hidden_layers",
    "attention_heads": "num_attention_heads",
    "kv_heads": "num_key_value_heads",
    "hidden_size": "hidden_size",
    "intermediate_size": "intermediate_size",
    "vocab_size": "vocab_size",
    "max_position_embeddings": "max_position_embeddings",
    "tie_word_embeddings": "tie_word_embeddings",
}
ROLES = {"chat", "autocomplete", "embed", "rerank"}


def weights_bytes(shape: dict, scheme: str | None) -> int:
    """Safetensors size from the shape: AWQ 4-bit group 128 (qweight, qzeros, fp16 scales), FP8
    with a float32 scale per 128x128 block, or None (16-bit weights); embeddings, the output head
    (unless tied to the embeddings) and norms in 16 bit."""

    def linear(n_in: int, n_out: int, bias: bool) -> int:
        if scheme is None:
            size = n_in * n_out * 2
        elif scheme == "awq":
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
    embeddings = (1 if shape["tie_word_embeddings"] else 2) * v * h * 2
    return embeddings + h * 2 + shape["layers"] * layer


def props(entry: dict) -> dict:
    return dict(
        entry["shape"],
        weights_bytes=int(entry["weights_gb"] * 1e9),
        min_compute_capability=entry["min_compute_capability"],
    )


def test_the_roles_default_is_the_origin_chat_model():
    """The default lives in the role's defaults (and group_vars), not in the catalog."""
    defaults = yaml.safe_load((REPO / "roles/vm-llm-aimachine/defaults/main.yml").read_text())
    group_vars = yaml.safe_load((REPO / "group_vars/all.yml").read_text())
    assert (
        defaults["vm_llm_aimachine_model"]
        == group_vars["vm_llm_aimachine_model"]
        == "qwen2.5-7b-instruct-awq"
    )
    assert CATALOG["qwen2.5-7b-instruct-awq"]["repo_id"] == "Qwen/Qwen2.5-7B-Instruct-AWQ"
    assert CATALOG["qwen2.5-7b-instruct-awq"]["role"] == "chat"
    assert not [name for name, entry in CATALOG.items() if "default" in entry]


@pytest.mark.parametrize("name", sorted(CATALOG))
def test_every_entry_has_a_role(name):
    assert CATALOG[name]["role"] in ROLES


def test_the_origin_documents_upgrade_paths_are_there():
    assert {e["repo_id"] for e in CATALOG.values() if e["role"] == "chat"} == {
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


def test_weight_formula_reproduces_the_16bit_sizes():
    """Qwen3-Embedding-0.6B's model.safetensors is 1,191,586,416 bytes: tensors plus a 33 KB header.
    Qwen2.5-Coder-1.5B's card gives 1.54B parameters, 1.31B of them outside the embeddings."""
    embed = weights_bytes(CATALOG["qwen3-embedding-0.6b"]["shape"], None)
    assert embed == 595_776_512 * 2
    assert 0 < 1_191_586_416 - embed < 64 * 1024
    coder = CATALOG["qwen2.5-coder-1.5b"]["shape"]
    params = weights_bytes(coder, None) // 2
    assert round(params / 1e9, 2) == 1.54
    assert round((params - coder["vocab_size"] * coder["hidden_size"]) / 1e9, 2) == 1.31


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


def test_the_embedding_config_copy_is_the_published_file():
    """Byte for byte: 727 bytes with the SHA-256 two public audits of revision 97b0c614 record."""
    raw = (DATA / "qwen3-embedding-0.6b.config.json").read_bytes()
    assert len(raw) == 727
    assert (
        hashlib.sha256(raw).hexdigest() == "b5bf1f51fc45be473a54718cef92448d90a1be001bf9b9a44b8c7f10a19feaa9"
    )


def test_autocomplete_entry_has_the_qwen_fim_tokens():
    entry = CATALOG["qwen2.5-coder-1.5b"]
    assert entry["repo_id"] == "Qwen/Qwen2.5-Coder-1.5B"  # the base model: FIM-trained, not chat-tuned
    fim = entry["fim"]
    # Qwen2.5-Coder's README (QwenLM/Qwen2.5-Coder): <|fim_prefix|> 151659, <|fim_middle|> 151660,
    # <|fim_suffix|> 151661; prompt = prefix + code before + suffix + code after + middle.
    assert (fim["prefix"], fim["suffix"], fim["middle"]) == (
        "<|fim_prefix|>",
        "<|fim_suffix|>",
        "<|fim_middle|>",
    )
    assert {"<|endoftext|>", "<|fim_pad|>", "<|file_sep|>"} <= set(fim["stop"])
    assert entry["tool_call_parser"] is None and entry["reasoning_parser"] is None
    assert "embedding" not in entry


def test_embedding_entry_pools_the_last_token_into_the_hidden_size():
    entry = CATALOG["qwen3-embedding-0.6b"]
    emb = entry["embedding"]
    assert emb["dim"] == entry["shape"]["hidden_size"] == 1024
    assert (emb["pooling"], emb["normalize"]) == ("last", True)
    assert emb["dims_supported"] == [32, 1024]
    assert emb["query_prompt"] == "Instruct: {task}\nQuery:{query}"
    assert emb["vllm_args"]["runner"] == "pooling"
    assert "fim" not in entry


def _vllm_source(relative: str) -> Path | None:
    python = os.environ.get("AIMACHINE_VLLM_PYTHON", "/var/tmp/aimachine-vllm-0.33.0/bin/python")
    found = sorted(Path(python).parent.parent.glob(f"lib/python3*/site-packages/vllm/{relative}"))
    return found[0] if found else None


def _literal_values(tree: ast.Module, name: str) -> set[str]:
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == name for t in node.targets):
            return {
                c.value
                for c in ast.walk(node.value)
                if isinstance(c, ast.Constant) and isinstance(c.value, str)
            }
    raise AssertionError(f"{name} not found")


@pytest.mark.skipif(_vllm_source("config/pooler.py") is None, reason="the pinned vLLM's source is not here")
def test_embedding_vllm_args_exist_in_the_pinned_vllm():
    """Read, not imported (importing vLLM takes 40 s): the runner value and the PoolerConfig fields.
    vLLM 0.33.0 removed PoolerConfig.normalize; a key it does not know fails `vllm serve`."""
    args = CATALOG["qwen3-embedding-0.6b"]["embedding"]["vllm_args"]
    pooler = ast.parse(_vllm_source("config/pooler.py").read_text())
    fields = {
        n.target.id
        for c in ast.walk(pooler)
        if isinstance(c, ast.ClassDef) and c.name == "PoolerConfig"
        for n in c.body
        if isinstance(n, ast.AnnAssign)
    }
    assert set(args["pooler_config"]) <= fields, set(args["pooler_config"]) - fields
    assert "normalize" not in fields
    assert args["pooler_config"]["seq_pooling_type"] in _literal_values(pooler, "SequencePoolingType")
    # What vLLM reads to accept `dimensions` (ModelConfig.is_matryoshka) and where it comes from.
    engine_args = _vllm_source("engine/arg_utils.py").read_text()
    assert "    hf_overrides: HfOverrides" in engine_args
    assert (
        'getattr(\n            self.hf_config, "is_matryoshka", False'
        in _vllm_source("config/model.py").read_text()
    )
    assert args["hf_overrides"] == {"is_matryoshka": True}
    # ModelConfig.runner is Literal["auto", RunnerType]; RunnerType lives beside the scheduler.
    assert args["runner"] in _literal_values(
        ast.parse(_vllm_source("config/scheduler.py").read_text()), "RunnerType"
    )
