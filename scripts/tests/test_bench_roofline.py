"""Bytes a decode step reads, from safetensors headers; bandwidth lookup; the bound."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import numpy as np
import pytest
from aimachine.bench import roofline as rl
from aimachine.bench.roofline import (
    RooflineError,
    card_bandwidth,
    decode_bytes,
    read_safetensors_header,
    resolve_bandwidth,
    roofline,
)
from safetensors import safe_open
from safetensors.numpy import save_file

# Qwen2.5-7B-Instruct's shapes (its config.json) and the AWQ GEMM layout (4-bit, group 128):
# qweight int32 [in, out/8], qzeros int32 [in/128, out/8], scales fp16 [in/128, out].
H, INTER, LAYERS, HEADS, KV_HEADS, HEAD_DIM, VOCAB, GROUP = 3584, 18944, 28, 28, 4, 128, 152064, 128
ITEM = {"I32": 4, "F16": 2, "F32": 4}


def write_header_only(path: Path, tensors: dict[str, tuple[str, list[int]]]) -> None:
    """A safetensors file cut after its header: names, dtypes, shapes and offsets, no data.

    A synthetic fixture (the real 5.57 GB checkpoint cannot be downloaded here); the header is
    laid out exactly as the format specifies, offsets contiguous in the order given.
    """
    header: dict[str, object] = {"__metadata__": {"format": "pt"}}
    offset = 0
    for name, (dtype, shape) in tensors.items():
        size = ITEM[dtype] * int(np.prod(shape))
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [offset, offset + size]}
        offset += size
    raw = json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(raw)) + raw)


def awq_linear(prefix: str, fan_in: int, fan_out: int, bias: bool) -> dict[str, tuple[str, list[int]]]:
    tensors = {
        f"{prefix}.qweight": ("I32", [fan_in, fan_out // 8]),
        f"{prefix}.qzeros": ("I32", [fan_in // GROUP, fan_out // 8]),
        f"{prefix}.scales": ("F16", [fan_in // GROUP, fan_out]),
    }
    if bias:
        tensors[f"{prefix}.bias"] = ("F16", [fan_out])
    return tensors


@pytest.fixture(scope="module")
def qwen7b_awq(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("qwen2.5-7b-awq-headers")
    head = {
        "model.embed_tokens.weight": ("F16", [VOCAB, H]),
        "lm_head.weight": ("F16", [VOCAB, H]),
        "model.norm.weight": ("F16", [H]),
    }
    layers: dict[str, tuple[str, list[int]]] = {}
    for i in range(LAYERS):
        p = f"model.layers.{i}"
        layers |= awq_linear(f"{p}.self_attn.q_proj", H, HEADS * HEAD_DIM, True)
        layers |= awq_linear(f"{p}.self_attn.k_proj", H, KV_HEADS * HEAD_DIM, True)
        layers |= awq_linear(f"{p}.self_attn.v_proj", H, KV_HEADS * HEAD_DIM, True)
        layers |= awq_linear(f"{p}.self_attn.o_proj", HEADS * HEAD_DIM, H, False)
        layers |= awq_linear(f"{p}.mlp.gate_proj", H, INTER, False)
        layers |= awq_linear(f"{p}.mlp.up_proj", H, INTER, False)
        layers |= awq_linear(f"{p}.mlp.down_proj", INTER, H, False)
        layers[f"{p}.input_layernorm.weight"] = ("F16", [H])
        layers[f"{p}.post_attention_layernorm.weight"] = ("F16", [H])
    write_header_only(directory / "model-00001-of-00002.safetensors", head)
    write_header_only(directory / "model-00002-of-00002.safetensors", layers)
    weight_map = dict.fromkeys(head, "model-00001-of-00002.safetensors") | dict.fromkeys(
        layers, "model-00002-of-00002.safetensors"
    )
    (directory / "model.safetensors.index.json").write_text(json.dumps({"weight_map": weight_map}))
    config = {
        "hidden_size": H,
        "num_hidden_layers": LAYERS,
        "num_attention_heads": HEADS,
        "num_key_value_heads": KV_HEADS,
        "torch_dtype": "float16",
        "tie_word_embeddings": False,
    }
    (directory / "config.json").write_text(json.dumps(config))
    return directory


def test_qwen25_7b_awq_matches_the_reference_figures(qwen7b_awq: Path) -> None:
    # REFERENCES.md: 5.57 GB on disk; a step reads 3.39 GB of layers + 1.09 GB of head = 4.48 GB;
    # KV cache 2 x 28 x 4 x 128 x 2 bytes = 56 KiB a token.
    step = decode_bytes(qwen7b_awq)
    assert step.weights_bytes / 1e9 == pytest.approx(5.57, abs=0.005)
    assert step.layer_bytes / 1e9 == pytest.approx(3.39, abs=0.005)
    assert step.head_bytes / 1e9 == pytest.approx(1.09, abs=0.005)
    assert step.decode_step_bytes / 1e9 == pytest.approx(4.48, abs=0.005)
    assert step.embedding_row_bytes == H * 2
    assert not step.tied_embeddings
    assert step.kv_bytes_per_token == 56 * 1024
    assert (step.files, step.tensors) == (2, 3 + LAYERS * (7 * 3 + 3 + 2))
    # The table of REFERENCES.md: bound = bandwidth / 4.48 GB.
    for card, bound in [
        ("RTX 4060 Ti 16GB", 64),
        ("RTX 5060 Ti 16GB", 100),
        ("RTX 4070 Ti SUPER", 150),
        ("RTX 4080 SUPER", 164),
        ("RTX 5080", 214),
        ("H100 80GB HBM3", 748),
    ]:
        assert roofline(step, card_bandwidth(card), None)["bound_tokens_per_s"] == pytest.approx(
            bound, abs=0.5
        )


def test_roofline_percent_and_kv_at_context(qwen7b_awq: Path) -> None:
    step = decode_bytes(qwen7b_awq)
    result = roofline(step, 448.0, measured_tokens_per_s=80.0, mean_context_tokens=1000)
    assert result["percent_of_bound"] == pytest.approx(100 * 80 / (448e9 / step.decode_step_bytes))
    with_kv = step.decode_step_bytes + 1000 * 57344
    assert result["decode_step_bytes_with_kv"] == with_kv
    assert result["bound_tokens_per_s_with_kv"] == pytest.approx(448e9 / with_kv)
    assert result["percent_of_bound_with_kv"] > result["percent_of_bound"]


def test_real_tiny_model_files(tiny_model_dir: Path) -> None:
    """Header sizes against the tensors themselves, loaded from the real (tiny) checkpoint."""
    step = decode_bytes(tiny_model_dir)
    sizes = {}
    for path in sorted(tiny_model_dir.glob("*.safetensors")):
        with safe_open(str(path), framework="numpy") as handle:
            for name in handle.keys():  # noqa: SIM118
                sizes[name] = handle.get_tensor(name).nbytes
    assert step.weights_bytes == sum(sizes.values())
    embedding = sizes["model.embed_tokens.weight"]
    config = json.loads((tiny_model_dir / "config.json").read_text())
    assert step.head_bytes == sizes["lm_head.weight"]
    assert step.decode_step_bytes == sum(sizes.values()) - embedding + config["hidden_size"] * 4
    layers, kv_heads = config["num_hidden_layers"], config["num_key_value_heads"]
    assert step.kv_bytes_per_token == 2 * layers * kv_heads * config["head_dim"] * 4  # float32


def test_tied_embeddings_count_once(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    tensors = {
        "model.embed_tokens.weight": rng.standard_normal((100, 8)).astype(np.float16),
        "model.layers.0.mlp.up_proj.weight": rng.standard_normal((16, 8)).astype(np.float16),
        "model.norm.weight": np.ones(8, dtype=np.float16),
    }
    save_file(tensors, str(tmp_path / "model.safetensors"))
    (tmp_path / "config.json").write_text(json.dumps({"tie_word_embeddings": True}))
    step = decode_bytes(tmp_path)
    assert step.tied_embeddings
    assert step.decode_step_bytes == (100 * 8 + 16 * 8 + 8) * 2
    assert step.kv_bytes_per_token is None  # config without layer numbers


def test_bad_files_are_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(RooflineError, match="no safetensors weights"):
        decode_bytes(tmp_path)
    (tmp_path / "model.safetensors").write_bytes(b"\x05\x00")
    with pytest.raises(RooflineError, match="too short"):
        read_safetensors_header(tmp_path / "model.safetensors")
    (tmp_path / "model.safetensors").write_bytes(struct.pack("<Q", 2**40))
    with pytest.raises(RooflineError, match="not plausible"):
        read_safetensors_header(tmp_path / "model.safetensors")
    (tmp_path / "model.safetensors.index.json").write_text(
        json.dumps({"weight_map": {"a": "gone.safetensors"}})
    )
    with pytest.raises(RooflineError, match=r"gone\.safetensors"):
        decode_bytes(tmp_path)


def test_card_names_as_nvml_and_people_spell_them() -> None:
    assert card_bandwidth("NVIDIA GeForce RTX 4060 Ti") == 288.0  # NVML's name for both sizes
    assert card_bandwidth("RTX 4060 Ti 16GB") == 288.0
    assert card_bandwidth("NVIDIA GeForce RTX 4080 SUPER") == 736.0
    assert card_bandwidth("rtx 4080") == 717.0
    assert card_bandwidth("NVIDIA RTX A4000") == 448.0
    assert card_bandwidth("NVIDIA H100 80GB HBM3") == 3350.0
    with pytest.raises(RooflineError, match="unknown card"):
        card_bandwidth("NVIDIA H100 PCIe")  # different memory, not guessed


def test_bandwidth_sources_in_order(monkeypatch: pytest.MonkeyPatch) -> None:
    local = "http://127.0.0.1:8000"
    assert resolve_bandwidth(500.0, "RTX 5080", local)[:2] == (500.0, "--bandwidth-gbs")
    gbs, source, card = resolve_bandwidth(None, "RTX 5080", "http://gpu-box:8000")
    assert (gbs, card) == (960.0, "RTX 5080") and "REFERENCES.md" in source
    gbs, reason, _ = resolve_bandwidth(None, None, "http://gpu-box:8000")
    assert gbs is None and "not on this machine" in reason
    with pytest.raises(RooflineError):
        resolve_bandwidth(-1.0, None, local)
    assert (
        rl.is_local("http://localhost:1")
        and rl.is_local("http://[::1]:1")
        and not rl.is_local("http://10.0.0.2")
    )


def test_bandwidth_from_this_machine_when_the_server_is_local() -> None:
    """On this machine (no GPU) detection says so; with a GPU it reports aimachine.gpu's figure."""
    from aimachine.gpu import detect_gpus

    gpus = detect_gpus()
    gbs, source, card = resolve_bandwidth(None, None, "http://127.0.0.1:8000")
    if not gpus:
        assert gbs is None and "no NVIDIA GPU" in source
    else:
        assert gbs == gpus[0]["bandwidth_gbs"] and card == gpus[0]["name"]
