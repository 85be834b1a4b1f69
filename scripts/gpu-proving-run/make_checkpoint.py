"""Write a random-weight Qwen2/Qwen3 checkpoint with a catalog model's exact shapes, 16-bit or AWQ.

For the GPU proving runs (run7.sh): speed and memory depend on the shapes and the kernels, not on
the weight values, so random weights measure them; the text they produce means nothing and no
quality or acceptance rate can be read from them. Layout as Hugging Face writes these models:
``model.embed_tokens``, per layer ``self_attn.{q,k,v,o}_proj`` (Qwen2: q/k/v biases; Qwen3:
``q_norm``/``k_norm``), ``mlp.{gate,up,down}_proj``, two RMS norms, ``model.norm`` and an untied
``lm_head`` unless the embeddings are tied. AWQ: GEMM packing, 4 bit, group 128, every zero point
8 (qzeros nibbles), small positive scales, as AutoAWQ's files hold them.

Usage: python make_checkpoint.py PRESET OUT_DIR [--awq | --no-awq]
Presets: qwen2.5-7b-awq, qwen2.5-coder-1.5b (bf16), qwen2.5-coder-1.5b-awq, qwen3-embedding-0.6b,
qwen2.5-14b-awq.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import torch
from safetensors.torch import save_file

GROUP = 128
# Shapes as the catalog (roles/vm-llm-aimachine/vars/catalog.yml) records them from config.json.
_COLUMNS = ("arch", "layers", "hidden", "inter", "heads", "kv", "hd", "vocab", "tie", "awq", "dtype")
PRESETS: dict[str, dict] = {
    name: dict(zip(_COLUMNS, row, strict=True))
    for name, row in {
        "qwen2.5-7b-awq": ("qwen2", 28, 3584, 18944, 28, 4, 128, 152064, False, True, "float16"),
        "qwen2.5-coder-1.5b": ("qwen2", 28, 1536, 8960, 12, 2, 128, 151936, True, False, "bfloat16"),
        "qwen3-embedding-0.6b": ("qwen3", 28, 1024, 3072, 16, 8, 128, 151669, True, False, "bfloat16"),
        "qwen2.5-14b-awq": ("qwen2", 48, 5120, 13824, 40, 8, 128, 152064, False, True, "float16"),
    }.items()
}
PRESETS["qwen3-embedding-0.6b"]["embed"] = True  # no lm_head; eos is <|endoftext|>
# The coder in 4-bit AWQ (GEMM, fp16 activations): the same shape, quantized.
PRESETS["qwen2.5-coder-1.5b-awq"] = {**PRESETS["qwen2.5-coder-1.5b"], "awq": True, "dtype": "float16"}
DEVICE = "cuda" if torch.cuda.is_available() else "cpu"


def _dense(shape: tuple[int, ...], dtype: torch.dtype, std: float = 0.02) -> torch.Tensor:
    return (torch.randn(shape, device=DEVICE, dtype=torch.float32) * std).to(dtype).cpu()


def _linear(out: dict, name: str, fin: int, fout: int, *, bias: bool, awq: bool, dtype: torch.dtype) -> None:
    if awq:
        # AWQ GEMM: qweight [in, out/8] int32, qzeros [in/128, out/8] int32, scales [in/128, out] fp16.
        out[name + ".qweight"] = torch.randint(
            -(2**31), 2**31 - 1, (fin, fout // 8), dtype=torch.int32, device=DEVICE
        ).cpu()
        out[name + ".qzeros"] = torch.full((fin // GROUP, fout // 8), 0x88888888 - 2**32, dtype=torch.int32)
        out[name + ".scales"] = (
            (torch.rand((fin // GROUP, fout), device=DEVICE, dtype=torch.float32) * 2e-3 + 1e-4)
            .to(torch.float16)
            .cpu()
        )
    else:
        out[name + ".weight"] = _dense((fout, fin), dtype)
    if bias:
        out[name + ".bias"] = torch.zeros(fout, dtype=torch.float16 if awq else dtype)


def write(preset: str, out_dir: Path, awq: bool | None = None) -> int:
    p = dict(PRESETS[preset])
    if awq is not None:
        p["awq"] = awq
    dtype = torch.float16 if p["awq"] else getattr(torch, p["dtype"])
    out_dir.mkdir(parents=True, exist_ok=True)
    h, hd = p["hidden"], p["hd"]
    index: dict[str, str] = {}
    shard: dict[str, torch.Tensor] = {
        "model.embed_tokens.weight": _dense((p["vocab"], h), dtype),
        "model.norm.weight": torch.ones(h, dtype=dtype),
    }
    if not p["tie"] and not p.get("embed"):
        shard["lm_head.weight"] = _dense((p["vocab"], h), dtype)
    files = []

    def flush() -> None:
        name = f"model-{len(files) + 1:05d}.safetensors"
        save_file(shard, str(out_dir / name), metadata={"format": "pt"})
        index.update(dict.fromkeys(shard, name))
        files.append(name)
        shard.clear()

    flush()
    for layer in range(p["layers"]):
        pre = f"model.layers.{layer}"
        qkv_bias = p["arch"] == "qwen2"
        q, kv, inter = p["heads"] * hd, p["kv"] * hd, p["inter"]
        for proj, fin, fout, bias in (
            ("self_attn.q_proj", h, q, qkv_bias),
            ("self_attn.k_proj", h, kv, qkv_bias),
            ("self_attn.v_proj", h, kv, qkv_bias),
            ("self_attn.o_proj", q, h, False),
            ("mlp.gate_proj", h, inter, False),
            ("mlp.up_proj", h, inter, False),
            ("mlp.down_proj", inter, h, False),
        ):
            _linear(shard, f"{pre}.{proj}", fin, fout, bias=bias, awq=p["awq"], dtype=dtype)
        shard[pre + ".input_layernorm.weight"] = torch.ones(h, dtype=dtype)
        shard[pre + ".post_attention_layernorm.weight"] = torch.ones(h, dtype=dtype)
        if p["arch"] == "qwen3":
            shard[pre + ".self_attn.q_norm.weight"] = torch.ones(hd, dtype=dtype)
            shard[pre + ".self_attn.k_norm.weight"] = torch.ones(hd, dtype=dtype)
        if sum(t.numel() * t.element_size() for t in shard.values()) > 2 * 10**9:
            flush()
    if shard:
        flush()
    size = sum((out_dir / f).stat().st_size for f in files)
    (out_dir / "model.safetensors.index.json").write_text(
        json.dumps({"metadata": {"total_size": size}, "weight_map": index})
    )
    qwen3 = p["arch"] == "qwen3"
    config = {
        "architectures": ["Qwen3ForCausalLM" if qwen3 else "Qwen2ForCausalLM"],
        "model_type": "qwen3" if qwen3 else "qwen2",
        "hidden_size": h,
        "intermediate_size": p["inter"],
        "num_hidden_layers": p["layers"],
        "num_attention_heads": p["heads"],
        "num_key_value_heads": p["kv"],
        "head_dim": hd,
        "hidden_act": "silu",
        "max_position_embeddings": 32768,
        "rms_norm_eps": 1e-6,
        "rope_theta": 1000000.0,
        "tie_word_embeddings": p["tie"],
        "torch_dtype": "float16" if p["awq"] else p["dtype"],
        "vocab_size": p["vocab"],
        "bos_token_id": 151643,
        "eos_token_id": 151643 if p.get("embed") else 151645,
        "attention_dropout": 0.0,
        "use_cache": True,
        "use_sliding_window": False,
        "sliding_window": None,
        "max_window_layers": p["layers"],
    }
    if qwen3:
        config["attention_bias"] = False
    if p["awq"]:
        config["quantization_config"] = {
            "bits": 4,
            "group_size": GROUP,
            "quant_method": "awq",
            "version": "gemm",
            "zero_point": True,
        }
    (out_dir / "config.json").write_text(json.dumps(config, indent=1))
    (out_dir / "generation_config.json").write_text(
        json.dumps({"bos_token_id": 151643, "eos_token_id": [151645, 151643], "do_sample": False})
    )
    return size


def main() -> None:
    args = sys.argv[1:]
    if len(args) < 2 or args[0] not in PRESETS:
        sys.exit(__doc__)
    awq = True if "--awq" in args else False if "--no-awq" in args else None
    t0 = time.time()
    size = write(args[0], Path(args[1]), awq)
    print(f"{args[0]}: {size / 1e9:.3f} GB in {time.time() - t0:.1f} s to {args[1]}")


if __name__ == "__main__":
    main()
