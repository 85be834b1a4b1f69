"""Size a vLLM deployment from the model's shape and the GPU's memory.

Ansible filters (and plain functions, stdlib only, so tests import this file directly):

- ``llm_kv_bytes_per_token``: KV-cache bytes one token costs, from config.json or model properties.
- ``llm_model_props``: model properties (llm_model's ``llm_model_properties`` shape) from config.json.
- ``llm_vllm_sizing``: ``max_model_len``, ``max_num_seqs``, ``gpu_memory_utilization`` and the
  arithmetic behind them; fails with the numbers and a suggestion when the profile cannot fit.
- ``llm_bundle_sizing``: several models on one card (chat, autocomplete, embed), each with its own
  share of the card (``gpu_memory_utilization``), the shares summing within the card; fails
  before any change, with every instance's numbers, when they do not fit.

How vLLM spends a GPU (vLLM 0.33.0, vllm/v1/worker/gpu_worker.py and vllm/v1/worker/utils.py):
it asks for ``ceil(total_memory * gpu_memory_utilization)`` bytes and refuses to start unless
that much is free; inside that budget go the weights, the activation peak of a profiling
forward pass over ``max_num_batched_tokens`` tokens, memory outside PyTorch, and the rest becomes
the KV cache. The CUDA-graph pool comes on top on vLLM 0.26's default runner (GPU run 7; the
older runner subtracts it): the sizing always charges it inside the budget. A request longer
than the KV cache holds is refused at start-up (QwenLM/Qwen3#295). docs/sizing.md walks
through one example with every number.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

try:  # Inside Ansible the error is an AnsibleFilterError; standalone a ValueError.
    from ansible.errors import AnsibleFilterError as _BaseError
except ImportError:  # pragma: no cover - depends on the environment
    _BaseError = ValueError  # type: ignore[misc,assignment]

GIB = 1024**3
MIB = 1024**2

# --- constants, each with its source -------------------------------------------------------
# A card that also drives a desktop loses about 1.2 GB to it (REFERENCES.md, vLLM settings).
# A real capture of an idle KDE/Wayland desktop shows 596 MiB used (scripts/tests/data/
# nvidia-smi/rtx-4080-super.query-gpu.csv); browsers and compositors grow it, so keep 1.2 GB.
DESKTOP_RESERVE_BYTES = 1_200_000_000
# The CUDA context lives outside vLLM's budget: vLLM checks that the budget is free *after* its
# own context exists. Measured on the lent H200 (torch 2.11, CUDA 13): free memory fell by
# 527 MiB when torch created its context (scripts/tests/data/nvidia-smi/SOURCES.md); rounded up.
CUDA_CONTEXT_BYTES = 600 * MIB
# Never hand vLLM more than this share of a card: free memory moves between preflight and
# start, and vLLM refuses to start if its budget is not free.
MAX_GPU_MEMORY_UTILIZATION = 0.95
# Everything below was calibrated on seven recorded starts of vLLM 0.26.0 on the lent H200
# (tests/unit/data/vllm-0.26.0-h200-run7-starts.log, docs/sizing.md "Calibration"): the 7B AWQ at
# 2,048 and 8,192 batched tokens, with 16, 24 and 136 sequences, CUDA graphs captured up to 16, 24,
# 136 and 512 tokens; the 1.5B coder (AWQ) and the 0.6B embedding model (16 bit, pooling).
#
# Memory outside PyTorch (NCCL, cuBLAS handles): measured 0.22-0.23 GiB in every start.
NON_TORCH_BYTES = GIB // 4
# Weights load larger than their files (AWQ repacked for the Marlin/Machete kernels): 3.7 % for the
# 7B AWQ (5.38 GiB loaded, 5.19 GiB of files), 4.6 % for the 1.5B AWQ (1.12 / 1.07 GiB); 1.1 % for
# the 16-bit 0.6B (1.12 / 1.11 GiB). Charged 5 % and 2 %.
WEIGHTS_SURPLUS_QUANTIZED = 0.05
WEIGHTS_SURPLUS_16BIT = 0.02
# vLLM's own "fit" figure keeps 150 MiB spare because its profiling "may slightly underestimate"
# (redundancy_buffer_memory, vllm/v1/worker/gpu_worker.py); the prediction keeps the same.
PROFILING_BUFFER_BYTES = 150 * MIB
# vLLM's profiling peak: the larger of (a) a fixed part that equals the 16-bit output head (vocab x
# hidden x 2 B: 1.01 GiB for the 7B, 0.43 GiB for the 1.5B, 0.29 GiB for the 0.6B; measured
# 1.04-1.13, 0.45 and 0.30 GiB) plus float32 hidden states for the batched tokens (the 7B: 1.04 GiB
# at 2,048 tokens, 1.13 GiB at 8,192) and (b) the sampler's float32 logits and probabilities for
# every sequence, an upper bound: they are not added to (a), since 16, 24, 128, 136, 256 and 1,024
# sequences measured the same 1.03-1.13 GiB (runs 7 and 9), plus this margin.
ACTIVATION_MARGIN_BYTES = 16 * MIB
# When the model's shapes are unknown: the 7B's peak plus a quarter GiB.
ACTIVATION_FALLBACK_BYTES = GIB + GIB // 4
# CUDA graphs grow with the largest captured size (max-cudagraph-capture-size): the 7B measured
# 0.08 GiB up to 24, 0.26 GiB up to 136, 0.92 GiB up to 512 tokens; the 1.5B 0.07 and the 0.6B
# 0.05 GiB up to 16. Charged 0.05 GiB + 1.8 MiB per token of the largest size (0.09, 0.29, 0.95
# GiB), scaled up (never down) by layers x hidden against the 7B's 28 x 3584.
CUDA_GRAPH_FIXED_BYTES = GIB // 20
CUDA_GRAPH_PER_TOKEN_BYTES = int(1.8 * MIB)
CUDA_GRAPH_REFERENCE = 28 * 3584
# vLLM's own ceiling for the default capture sizes (512; 1024 on compute capability 10.x). A chat
# instance captures up to 512 so a 512-token prefill runs inside the graphs (run 7: TTFT at one
# stream 39 ms with graphs up to 136, 24 ms up to 512); speculative decoding keeps vLLM's
# sequences x tokens per step, at least 512, at most 1024; never above max_num_batched_tokens.
CUDA_GRAPH_CAPTURE_DEFAULT = 512
CUDA_GRAPH_CAPTURE_SPECULATIVE_MAX = 1024
# max_num_seqs from the KV cache: the capacity divided by a typical sequence's footprint (1024
# tokens: the benchmark's 512 + 128, a FIM request, an agent's turn whose long prefix the prefix
# cache holds once for all), in steps of 8 (vLLM's CUDA-graph capture sizes), between these
# bounds. vLLM itself defaults to 256 sequences below 70 GiB (1024 above, A100s excepted); its
# scheduler admits only what the KV cache holds, so the bound costs nothing when sequences are long
# and keeps 32-64 short streams running at once.
SEQ_FOOTPRINT_TOKENS = 1024
MIN_NUM_SEQS = 8
MAX_NUM_SEQS = 256
SEQ_STEP = 8
# Keep 10% of the estimated KV cache spare, so a low estimate above cannot make vLLM refuse
# max_model_len at start.
KV_SAFETY_FACTOR = 0.90
# vLLM pages the KV cache in blocks of 16 tokens (CacheConfig.block_size default on CUDA).
KV_BLOCK_TOKENS = 16
# Context lengths are rounded down to this step when they have to shrink.
CONTEXT_STEP = 1024

DEFAULT_PROFILE: dict[str, Any] = {
    # Wanted context; None means the model's own max_position_embeddings.
    "max_model_len": 32768,
    # Below this context the deployment is useless for coding assistants: fail instead.
    "min_model_len": 8192,
    # Concurrent sequences (vLLM's max_num_seqs). None: from the KV cache (SEQ_FOOTPRINT_TOKENS);
    # the fixed 16 of earlier releases cost 35 % of the throughput at 32 streams (docs/sizing.md).
    "max_num_seqs": None,
    # Prefill chunk: vLLM's default for the OpenAI server on >= 70 GiB cards (8192; 2048 below,
    # EngineArgs.get_batch_defaults, vLLM 0.33.0). Measured on a 16 GiB budget: 8192 gave 6 % more
    # throughput at 64 streams than 2048 for 0.09 GiB more activation memory (docs/sizing.md).
    "max_num_batched_tokens": 8192,
    # "generate" or "pooling" (embedding models: no sampler, no logits).
    "runner": "generate",
    "tensor_parallel_size": 1,
    # Pipeline stages, one per host (vLLM's Ray executor across hosts; docs/multi-host.md). Each
    # stage holds its share of the layers: weights and KV cache per GPU shrink with it.
    "pipeline_parallel_size": 1,
    # "" lets vLLM choose (mp on one host); "ray" is required when the stages span hosts.
    "distributed_executor_backend": "",
    # "auto": the model's dtype. fp8 halves the KV cache but has failed on Ampere (vllm#7714).
    "kv_cache_dtype": "auto",
    # None: computed. A number overrides the computed utilization (still checked).
    "gpu_memory_utilization": None,
    # Largest CUDA-graph size: None for the rule (CUDA_GRAPH_CAPTURE_DEFAULT), "seqs" for
    # max_num_seqs (decode batches only), or a number of tokens.
    "max_cudagraph_capture_size": None,
    # Tokens one decode step verifies: 1, or 1 + the proposed tokens with speculative decoding.
    "speculative_step_tokens": 1,
    "enforce_eager": False,
}

_DTYPE_BYTES = {
    "float32": 4,
    "float": 4,
    "fp32": 4,
    "float16": 2,
    "half": 2,
    "fp16": 2,
    "bfloat16": 2,
    "bf16": 2,
    "fp8": 1,
    "fp8_e4m3": 1,
    "fp8_e5m2": 1,
    "fp8_inc": 1,
    "fp8_ds_mla": 1,
}

# Model-property aliases: llm_model_properties names first, then Hugging Face config names.
_ALIASES = {
    "layers": ("layers", "num_hidden_layers", "n_layer", "num_layers"),
    "attention_heads": ("attention_heads", "num_attention_heads", "n_head"),
    "kv_heads": ("kv_heads", "num_key_value_heads"),
    "head_dim": ("head_dim",),
    "hidden_size": ("hidden_size", "n_embd"),
    "intermediate_size": ("intermediate_size",),
    "vocab_size": ("vocab_size",),
    "max_position_embeddings": ("max_position_embeddings",),
    "weights_bytes": ("weights_bytes",),
    "dtype": ("dtype", "torch_dtype"),
}


class SizingError(_BaseError):  # type: ignore[misc,valid-type]
    """The profile does not fit, or the inputs are unusable. The message carries the numbers."""


def _get(props: Mapping[str, Any], key: str, default: Any = None) -> Any:
    for name in _ALIASES.get(key, (key,)):
        value = props.get(name)
        if value not in (None, ""):
            return value
    return default


def _int(value: Any, what: str) -> int:
    """Ansible hands numbers over as strings; accept both, reject anything else clearly."""
    if isinstance(value, bool):
        raise SizingError(f"{what} must be a number, got {value!r}")
    try:
        number = float(str(value).strip())
    except (TypeError, ValueError):
        raise SizingError(f"{what} must be an integer, got {value!r}") from None
    if not number.is_integer():
        raise SizingError(f"{what} must be an integer, got {value!r}")
    return int(number)


def _bool(value: Any) -> bool:
    """Ansible may hand booleans over as strings ("false")."""
    if isinstance(value, str):
        return value.strip().lower() in {"1", "true", "yes", "on"}
    return bool(value)


def _positive_int(value: Any, what: str) -> int:
    number = _int(value, what)
    if number <= 0:
        raise SizingError(f"{what} must be positive, got {number}")
    return number


def _text_config(config: Mapping[str, Any]) -> Mapping[str, Any]:
    """Multimodal checkpoints nest the language model's shape under text_config."""
    nested = config.get("text_config")
    if isinstance(nested, Mapping) and "num_hidden_layers" in nested:
        merged = dict(config)
        merged.update(nested)
        return merged
    return config


def dtype_bytes(dtype: Any) -> int:
    """Bytes per element of a config dtype or a vLLM kv_cache_dtype."""
    name = str(dtype).strip().lower().removeprefix("torch.")
    if name not in _DTYPE_BYTES:
        raise SizingError(f"unknown dtype {dtype!r}; known: {', '.join(sorted(_DTYPE_BYTES))}")
    return _DTYPE_BYTES[name]


def _kv_element_bytes(props: Mapping[str, Any], kv_cache_dtype: str) -> int:
    if kv_cache_dtype and kv_cache_dtype != "auto":
        return dtype_bytes(kv_cache_dtype)
    # "auto" keeps the model dtype; AWQ checkpoints are float16, unknown ones are taken as 16 bit.
    dtype = _get(props, "dtype")
    if dtype in (None, "", "unknown", "auto"):
        return 2
    return dtype_bytes(dtype)


def _kv_shape(config: Mapping[str, Any], kv_cache_dtype: str) -> tuple[int, int, int, int]:
    """(layers, KV heads, head dim, bytes per element) of a config.json or model properties."""
    if not isinstance(config, Mapping):
        raise SizingError(f"model config must be a mapping, got {type(config).__name__}")
    props = _text_config(config)
    layers = _positive_int(_get(props, "layers"), "num_hidden_layers")
    heads = _positive_int(_get(props, "attention_heads"), "num_attention_heads")
    kv_heads = _positive_int(_get(props, "kv_heads", heads), "num_key_value_heads")
    head_dim_value = _get(props, "head_dim")
    if head_dim_value is None:
        head_dim = _positive_int(_get(props, "hidden_size"), "hidden_size") // heads
    else:
        head_dim = _positive_int(head_dim_value, "head_dim")
    return layers, kv_heads, head_dim, _kv_element_bytes(props, kv_cache_dtype)


def kv_bytes_per_token(
    config: Mapping[str, Any],
    kv_cache_dtype: str = "auto",
    tensor_parallel_size: int = 1,
    pipeline_parallel_size: int = 1,
) -> int:
    """KV-cache bytes per token: 2 (K and V) x layers x KV heads x head dim x element size.

    With tensor parallelism each GPU holds its share of the KV heads (at least one: vLLM
    replicates heads when there are fewer heads than GPUs); with pipeline parallelism each stage
    holds its share of the layers (the largest share counts). The result is per GPU.
    Qwen2.5-7B: 2 x 28 x 4 x 128 x 2 bytes = 57344 bytes (56 KiB).
    """
    layers, kv_heads, head_dim, element = _kv_shape(config, kv_cache_dtype)
    tp = _positive_int(tensor_parallel_size, "tensor_parallel_size")
    pp = _positive_int(pipeline_parallel_size, "pipeline_parallel_size")
    return 2 * math.ceil(layers / pp) * max(1, kv_heads // tp) * head_dim * element


def model_props(config: Mapping[str, Any], weights_bytes: int | str | None = None) -> dict[str, Any]:
    """Model properties in llm_model's shape from a config.json (plus the weights' size)."""
    props = _text_config(config)
    heads = _positive_int(_get(props, "attention_heads"), "num_attention_heads")
    hidden = _get(props, "hidden_size")
    head_dim = _get(props, "head_dim")
    if head_dim is None and hidden is not None:
        head_dim = _positive_int(hidden, "hidden_size") // heads
    quant = props.get("quantization_config") or {}
    return {
        "layers": _positive_int(_get(props, "layers"), "num_hidden_layers"),
        "attention_heads": heads,
        "kv_heads": _positive_int(_get(props, "kv_heads", heads), "num_key_value_heads"),
        "head_dim": None if head_dim is None else int(head_dim),
        "hidden_size": None if hidden is None else int(hidden),
        "intermediate_size": _get(props, "intermediate_size"),
        "vocab_size": _get(props, "vocab_size"),
        "dtype": _get(props, "dtype", "unknown"),
        "max_position_embeddings": _get(props, "max_position_embeddings", 0),
        "quantization": quant.get("quant_method") if isinstance(quant, Mapping) else None,
        "weights_bytes": None if weights_bytes in (None, "") else _int(weights_bytes, "weights_bytes"),
    }


def _gib(value: float) -> float:
    return round(value / GIB, 2)


def _gpu_list(gpus: Any) -> list[Mapping[str, Any]]:
    if isinstance(gpus, Mapping):
        count = _positive_int(gpus.get("count", 1), "gpu count")
        return [gpus] * count
    if isinstance(gpus, Sequence) and not isinstance(gpus, str):
        return [g for g in gpus if isinstance(g, Mapping)]
    raise SizingError(f"gpu must be a GPU fact (mapping) or a list of them, got {type(gpus).__name__}")


def _capability(value: Any) -> tuple[int, int] | None:
    if value in (None, ""):
        return None
    text = str(value).strip()
    try:
        major, _, minor = text.partition(".")
        return int(major), int(minor or 0)
    except ValueError:
        raise SizingError(f"compute capability must look like '8.9', got {value!r}") from None


def _activation_bytes(
    props: Mapping[str, Any], tokens: int, seqs: int, tp: int, pooling: bool = False
) -> tuple[int, str]:
    """Peak of vLLM's profiling pass: the larger of the 16-bit output head's size (vocab x hidden x
    2 B) plus float32 hidden states for the batched tokens, and the sampler's float32 logits and
    probabilities for every sequence (none for a pooling model), plus a margin. Calibrated on the
    recorded starts (docs/sizing.md); `tp` does not enter (measured on one GPU only)."""
    hidden = _get(props, "hidden_size")
    inter = _get(props, "intermediate_size")
    vocab = _get(props, "vocab_size")
    if hidden in (None, "") or inter in (None, "") or vocab in (None, ""):
        return ACTIVATION_FALLBACK_BYTES, "fallback (hidden/intermediate/vocab size unknown)"
    hidden_i = _positive_int(hidden, "hidden_size")
    _positive_int(inter, "intermediate_size")  # still validated: a bad value is bad input
    vocab_i = _positive_int(vocab, "vocab_size")
    head = vocab_i * hidden_i * 2
    per_token = tokens * hidden_i * 4
    sampler = 0 if pooling else seqs * vocab_i * 4 * 2
    formula = f"max(head {vocab_i} x {hidden_i} x 2 B + {tokens} tokens x {hidden_i} x 4 B"
    formula += ", pooling: no sampler)" if pooling else f", {seqs} seqs x {vocab_i} x 4 B x 2)"
    formula += f" + {ACTIVATION_MARGIN_BYTES // MIB} MiB"
    return max(head + per_token, sampler) + ACTIVATION_MARGIN_BYTES, formula


def capture_size(wish: Any, seqs: int, batched: int, step_tokens: int = 1) -> int:
    """The largest CUDA-graph size (vLLM's max_cudagraph_capture_size) the config renders."""
    if wish in (None, "", "auto"):
        if step_tokens > 1:
            size = max(
                CUDA_GRAPH_CAPTURE_DEFAULT, min(seqs * step_tokens, CUDA_GRAPH_CAPTURE_SPECULATIVE_MAX)
            )
        else:
            size = CUDA_GRAPH_CAPTURE_DEFAULT
    elif str(wish).strip().lower() == "seqs":
        size = seqs * step_tokens
    else:
        size = _positive_int(wish, "max_cudagraph_capture_size")
    # vLLM truncates the sizes to max_num_batched_tokens (VllmConfig, vLLM 0.33.0).
    return max(1, min(size, batched))


def _graph_bytes(props: Mapping[str, Any], capture: int) -> int:
    """The CUDA-graph pool for capture sizes up to ``capture`` tokens (0 when eager)."""
    if capture <= 0:
        return 0
    layers = _int(_get(props, "layers", 28) or 28, "num_hidden_layers")
    hidden = _int(_get(props, "hidden_size", 3584) or 3584, "hidden_size")
    scale = max(1.0, layers * hidden / CUDA_GRAPH_REFERENCE)
    return int(scale * (CUDA_GRAPH_FIXED_BYTES + capture * CUDA_GRAPH_PER_TOKEN_BYTES))


def weights_loaded_bytes(props: Mapping[str, Any], weights: int) -> int:
    """What the weights take once loaded: their files plus the measured surplus."""
    # 16 bit only when the properties say "no quantization" (a key present and empty); quantized or
    # unknown weights get the larger surplus.
    quant = props.get("quantization", "unknown")
    surplus = WEIGHTS_SURPLUS_16BIT if quant in (None, "", "none") else WEIGHTS_SURPLUS_QUANTIZED
    return math.ceil(weights * (1 + surplus))


def seqs_from_capacity(capacity_tokens: int, footprint: int = SEQ_FOOTPRINT_TOKENS) -> int:
    """max_num_seqs for a KV cache of ``capacity_tokens``: capacity / footprint, in steps of 8,
    clamped to [MIN_NUM_SEQS, MAX_NUM_SEQS]."""
    seqs = capacity_tokens // max(1, footprint) // SEQ_STEP * SEQ_STEP
    return max(MIN_NUM_SEQS, min(MAX_NUM_SEQS, seqs))


def vllm_sizing(
    model: Mapping[str, Any],
    gpu: Any,
    profile: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Choose max_model_len, max_num_seqs and gpu_memory_utilization that fit (see _size).

    CUDA graphs are captured up to 512 tokens when the card has the memory (the rule's default);
    when that would cost context (or the start), they are captured up to max_num_seqs only (decode
    batches; prefills run outside the graphs), with a warning that says so.
    """
    if profile is not None and not isinstance(profile, Mapping):
        raise SizingError(f"profile must be a mapping, got {type(profile).__name__}")
    wish = (profile or {}).get("max_cudagraph_capture_size")
    if wish not in (None, "", "auto"):
        return _size(model, gpu, profile)
    try:
        result = _size(model, gpu, profile)
    except SizingError as error:
        # The smaller pool's numbers are the closest to fitting: its error is the one to show.
        smaller = _size(model, gpu, dict(profile or {}, max_cudagraph_capture_size="seqs"))
        smaller["warnings"].append(
            f"CUDA graphs captured up to {smaller['max_cudagraph_capture_size']} tokens only (not "
            f"{CUDA_GRAPH_CAPTURE_DEFAULT}): the larger pool does not fit ({error}); prefills run "
            "outside the graphs"
        )
        return smaller
    if result["max_model_len"] < _int(result["arithmetic"]["wanted_model_len"], "max_model_len"):
        try:
            smaller = _size(model, gpu, dict(profile or {}, max_cudagraph_capture_size="seqs"))
        except SizingError:
            return result
        if smaller["max_model_len"] > result["max_model_len"]:
            smaller["warnings"].append(
                f"CUDA graphs captured up to {smaller['max_cudagraph_capture_size']} tokens only (not "
                f"{CUDA_GRAPH_CAPTURE_DEFAULT}): the larger pool would cut the context to "
                f"{result['max_model_len']} tokens; prefills run outside the graphs"
            )
            return smaller
    return result


def _size(
    model: Mapping[str, Any],
    gpu: Any,
    profile: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Choose max_model_len, max_num_seqs and gpu_memory_utilization that fit.

    ``model``: llm_model_properties (or ``model_props(config.json, weights_bytes)``);
    needs weights_bytes, layers, kv_heads, head_dim (or hidden_size), attention_heads.
    ``gpu``: one GPU fact from aimachine-gpu-facts (memory_total_mib, optional
    memory_reserved_mib, memory_free_mib, compute_capability, display_active, and ``count``),
    or the list of GPU facts. ``profile``: see DEFAULT_PROFILE.
    """
    if not isinstance(model, Mapping):
        raise SizingError(f"model properties must be a mapping, got {type(model).__name__}")
    if profile is not None and not isinstance(profile, Mapping):
        raise SizingError(f"profile must be a mapping, got {type(profile).__name__}")
    prof = dict(DEFAULT_PROFILE)
    # Ansible passes unset variables as "" (or None): they mean "the default".
    prof.update({k: v for k, v in (profile or {}).items() if v not in (None, "")})
    warnings: list[str] = []

    tp = _positive_int(prof["tensor_parallel_size"], "tensor_parallel_size")
    pp = _positive_int(prof["pipeline_parallel_size"], "pipeline_parallel_size")
    backend = str(prof["distributed_executor_backend"] or "")
    if backend not in ("", "ray", "mp"):
        raise SizingError(f"distributed_executor_backend must be '', 'ray' or 'mp', got {backend!r}")
    if pp > 1 and backend == "":
        # The stages run on other hosts (this host has tensor_parallel_size GPUs): only Ray spans hosts.
        backend = "ray"
    gpus = _gpu_list(gpu)
    if len(gpus) < tp:
        raise SizingError(
            f"the profile needs tensor_parallel_size={tp} GPUs, the host has {len(gpus)}. "
            f"Suggestion: choose a model that fits {len(gpus)} GPU(s) (docs/model-catalog.md) "
            "or add GPUs."
        )
    used = gpus[:tp]
    names = {str(g.get("name", "?")) for g in used}
    if len(names) > 1:
        warnings.append(
            f"tensor parallel over different GPUs ({', '.join(sorted(names))}); sized for the smallest"
        )

    heads = _positive_int(_get(model, "attention_heads"), "attention_heads")
    if heads % tp:
        raise SizingError(
            f"{heads} attention heads do not split over tensor_parallel_size={tp}; "
            "vLLM needs heads divisible by it. Suggestion: a tensor parallel size that divides it."
        )

    need_cc = _capability(model.get("min_compute_capability"))
    kv_dtype = str(prof["kv_cache_dtype"] or "auto")
    if kv_dtype.startswith("fp8"):
        need_cc = max(need_cc or (0, 0), (8, 9))
    for g in used:
        have = _capability(g.get("compute_capability"))
        if need_cc and have and have < need_cc:
            raise SizingError(
                f"{g.get('name', 'the GPU')} has compute capability {have[0]}.{have[1]}, the profile "
                f"needs {need_cc[0]}.{need_cc[1]} (FP8 weights or KV cache; vllm#7714). "
                "Suggestion: an AWQ model and kv_cache_dtype auto."
            )

    weights_total = _positive_int(_get(model, "weights_bytes"), "weights_bytes")
    weights = math.ceil(weights_total / (tp * pp))
    layers, kv_heads, head_dim, element = _kv_shape(model, kv_dtype)
    if pp > layers:
        raise SizingError(f"pipeline_parallel_size={pp} exceeds the model's {layers} layers")
    kv_token = kv_bytes_per_token(model, kv_dtype, tp, pp)
    max_pos = _int(_get(model, "max_position_embeddings", 0), "max_position_embeddings")

    seqs_auto = prof["max_num_seqs"] in (None, "", "auto")
    seqs = MAX_NUM_SEQS if seqs_auto else _positive_int(prof["max_num_seqs"], "max_num_seqs")
    footprint = _positive_int(
        prof.get("seq_footprint_tokens") or SEQ_FOOTPRINT_TOKENS, "seq_footprint_tokens"
    )
    batched = _positive_int(prof["max_num_batched_tokens"], "max_num_batched_tokens")
    runner = str(prof.get("runner") or "generate")
    if runner not in ("generate", "pooling"):
        raise SizingError(f"runner must be 'generate' or 'pooling', got {runner!r}")
    wanted_len = _positive_int(prof["max_model_len"] or max_pos, "max_model_len")
    min_len = _positive_int(prof["min_model_len"], "min_model_len")
    if max_pos and wanted_len > max_pos:
        warnings.append(
            f"wanted context {wanted_len} exceeds the model's max_position_embeddings {max_pos}; "
            f"using {max_pos}"
        )
        wanted_len = max_pos
    min_len = min(min_len, wanted_len)

    # Per GPU: what is usable, what stays outside vLLM's budget, what the budget holds.
    totals = [_positive_int(g.get("memory_total_mib"), "memory_total_mib") * MIB for g in used]
    reserved = [_int(g.get("memory_reserved_mib") or 0, "memory_reserved_mib") * MIB for g in used]
    usable = min(t - r for t, r in zip(totals, reserved, strict=True))
    display = any(_bool(g.get("display_active")) for g in used)
    outside = CUDA_CONTEXT_BYTES + (DESKTOP_RESERVE_BYTES if display else 0)

    computed_util = min(MAX_GPU_MEMORY_UTILIZATION, (usable - outside) / usable)
    computed_util = math.floor(computed_util * 100) / 100
    util = computed_util
    if prof["gpu_memory_utilization"] is not None:
        try:
            util = float(prof["gpu_memory_utilization"])
        except (TypeError, ValueError):
            raise SizingError(
                f"gpu_memory_utilization must be a number, got {prof['gpu_memory_utilization']!r}"
            ) from None
        if not 0 < util <= 1:
            raise SizingError(f"gpu_memory_utilization must be in (0, 1], got {util}")
        if util > computed_util:
            warnings.append(
                f"gpu_memory_utilization {util} is above the computed {computed_util}: "
                f"it leaves less than {_gib(outside)} GiB for the CUDA context"
                + (" and the desktop" if display else "")
            )
    budget = math.ceil(usable * util)

    frees = [g.get("memory_free_mib") for g in used]
    if all(f not in (None, "") for f in frees):
        min_free = min(_int(f, "memory_free_mib") * MIB for f in frees)
        if min_free < budget:
            warnings.append(
                f"only {_gib(min_free)} GiB free now, vLLM will ask for {_gib(budget)} GiB at start and "
                "refuse if it is not free: another process holds GPU memory (a running engine is "
                "stopped before the restart)"
            )

    eager = _bool(prof["enforce_eager"])
    pooling = runner == "pooling"
    step_tokens = _positive_int(prof.get("speculative_step_tokens") or 1, "speculative_step_tokens")
    runtime_fixed = weights_loaded_bytes(model, weights) - weights + NON_TORCH_BYTES + PROFILING_BUFFER_BYTES

    def _capture(n_seqs: int) -> int:
        if eager:
            return 0
        return capture_size(prof.get("max_cudagraph_capture_size"), n_seqs, max(batched, n_seqs), step_tokens)

    def _memory(n_seqs: int) -> tuple[int, str, int, int, int]:
        # vLLM needs a prefill chunk at least as long as one decode batch.
        n_batched = max(batched, n_seqs)
        act, formula = _activation_bytes(model, n_batched, n_seqs, tp, pooling)
        n_graphs = _graph_bytes(model, _capture(n_seqs))
        return act, formula, n_graphs, runtime_fixed + act + n_graphs, n_batched

    activation, activation_formula, graphs, overhead, batched_used = _memory(seqs)
    kv_bytes = budget - weights - overhead
    if seqs_auto and kv_bytes <= 0:
        # Nothing left even before the count: report the numbers at the fewest sequences.
        seqs = MIN_NUM_SEQS
        activation, activation_formula, graphs, overhead, batched_used = _memory(seqs)
        kv_bytes = budget - weights - overhead
    if seqs_auto and kv_bytes > 0:
        # Sized with the largest sequence count first (the most memory); the count that KV cache
        # supports needs no more, so the capacity only grows; a step up is taken while the grown
        # capacity still supports it (the count is then a fixed point of the rule).
        def _tokens(kv: int) -> int:
            return (kv // kv_token) // KV_BLOCK_TOKENS * KV_BLOCK_TOKENS

        seqs = seqs_from_capacity(_tokens(kv_bytes), footprint)
        activation, activation_formula, graphs, overhead, batched_used = _memory(seqs)
        kv_bytes = budget - weights - overhead
        for more in range(seqs_from_capacity(_tokens(kv_bytes), footprint), seqs, -SEQ_STEP):
            trial = _memory(more)
            if seqs_from_capacity(_tokens(budget - weights - trial[3]), footprint) >= more:
                seqs = more
                activation, activation_formula, graphs, overhead, batched_used = trial
                kv_bytes = budget - weights - overhead
                break
    batched = batched_used
    arithmetic: dict[str, Any] = {
        "gpus_used": tp,
        "pipeline_stages": pp,
        "wanted_model_len": wanted_len,
        "usable_gib_per_gpu": _gib(usable),
        "reserved_by_driver_gib": _gib(max(reserved)),
        "display_active": display,
        "outside_budget_gib": _gib(outside),
        "outside_budget": f"CUDA context {_gib(CUDA_CONTEXT_BYTES)} GiB"
        + (f" + desktop {_gib(DESKTOP_RESERVE_BYTES)} GiB" if display else ""),
        "gpu_memory_utilization": util,
        "budget_gib": _gib(budget),
        "weights_gib_total": _gib(weights_total),
        "weights_gib_per_gpu": _gib(weights),
        "runtime_fixed_gib": _gib(runtime_fixed),
        "runtime_fixed": (
            f"weights' load surplus {_gib(runtime_fixed - NON_TORCH_BYTES - PROFILING_BUFFER_BYTES)} GiB"
            f" + non-torch {_gib(NON_TORCH_BYTES)} GiB"
            f" + vLLM's profiling buffer {_gib(PROFILING_BUFFER_BYTES)} GiB"
        ),
        "activation_gib": _gib(activation),
        "activation_formula": activation_formula,
        "cuda_graphs_gib": _gib(graphs),
        "max_cudagraph_capture_size": _capture(seqs),
        "kv_cache_gib": _gib(max(kv_bytes, 0)),
        "budget_bytes_per_gpu": budget,
        "weights_bytes_per_gpu": weights,
        "overhead_bytes_per_gpu": overhead,
        "kv_bytes_per_token_per_gpu": kv_token,
        "max_num_seqs_rule": (
            f"KV capacity / {footprint} tokens, steps of {SEQ_STEP}, within {MIN_NUM_SEQS}..{MAX_NUM_SEQS}"
            if seqs_auto
            else "set by the profile"
        ),
        "kv_formula": (
            f"2 x {math.ceil(layers / pp)} layers x {max(1, kv_heads // tp)} KV heads/GPU x "
            f"{head_dim} head dim x {element} B = {kv_token} B/token"
        ),
    }

    if kv_bytes <= 0:
        raise SizingError(
            f"the model does not fit: per GPU {_gib(usable)} GiB usable, budget {_gib(budget)} GiB "
            f"(gpu_memory_utilization {util}), weights {_gib(weights)} GiB + runtime "
            f"{_gib(overhead)} GiB leave {_gib(kv_bytes)} GiB for the KV cache. Suggestion: a smaller "
            f"or more quantized model, tensor_parallel_size {tp * 2} on {tp * 2} GPUs"
            + (", or free the desktop's GPU (another card drives the display)" if display else "")
            + "."
        )

    capacity = (kv_bytes // kv_token) // KV_BLOCK_TOKENS * KV_BLOCK_TOKENS
    safe_capacity = int(capacity * KV_SAFETY_FACTOR)
    arithmetic.update({"kv_capacity_tokens": capacity, "kv_capacity_tokens_safe": safe_capacity})

    if safe_capacity >= wanted_len:
        max_model_len = wanted_len
    elif safe_capacity >= min_len:
        max_model_len = max(min_len, safe_capacity // CONTEXT_STEP * CONTEXT_STEP)
        warnings.append(
            f"context reduced from {wanted_len} to {max_model_len} tokens: the KV cache holds "
            f"{capacity} tokens ({_gib(kv_bytes)} GiB at {kv_token} B/token, "
            f"{int(KV_SAFETY_FACTOR * 100)}% of it used)"
        )
    else:
        per_gpu_for_min = math.ceil(min_len / KV_SAFETY_FACTOR) * kv_token
        raise SizingError(
            f"the KV cache is too small: {_gib(kv_bytes)} GiB holds {capacity} tokens at "
            f"{kv_token} B/token, the profile needs at least {min_len} tokens "
            f"({_gib(per_gpu_for_min)} GiB per GPU). Per GPU: {_gib(usable)} GiB usable, budget "
            f"{_gib(budget)} GiB, weights {_gib(weights)} GiB, runtime {_gib(overhead)} GiB. "
            f"Suggestion: tensor_parallel_size {tp * 2} on {tp * 2} GPUs, kv_cache_dtype fp8 on "
            "compute capability 8.9+, a smaller model, or a lower min_model_len."
        )

    full_length_seqs = capacity // max_model_len
    arithmetic["full_context_sequences"] = full_length_seqs
    if not seqs_auto and seqs > capacity // min(max_model_len, 4096):
        warnings.append(
            f"max_num_seqs {seqs} exceeds what the KV cache holds at 4096 tokens each "
            f"({capacity // min(max_model_len, 4096)}); vLLM will queue or preempt the rest"
        )

    return {
        "max_model_len": max_model_len,
        "max_num_seqs": seqs,
        "max_num_batched_tokens": batched,
        "max_cudagraph_capture_size": _capture(seqs),
        "gpu_memory_utilization": util,
        "tensor_parallel_size": tp,
        "pipeline_parallel_size": pp,
        "distributed_executor_backend": backend,
        "kv_cache_dtype": kv_dtype,
        "kv_cache_gib": _gib(kv_bytes),
        "kv_cache_tokens": capacity,
        "kv_bytes_per_token": kv_token,
        "arithmetic": arithmetic,
        "warnings": warnings,
    }


# --- several models on one card (issue 16) -----------------------------------------------------

# What each role asks of the card by default; a model's own "profile" overrides any key.
# kv_tokens: the KV cache the role reserves (tokens); the chat instances share what is left.
ROLE_PROFILES: dict[str, dict[str, Any]] = {
    # The card's remainder: the chat model is what the users wait on.
    "chat": {"max_model_len": 32768, "min_model_len": 8192},
    # Short context, low latency: a FIM prompt is a few thousand tokens of prefix and suffix; a
    # small prefill chunk keeps one long prompt from stalling the others' next keystroke.
    "autocomplete": {
        "max_model_len": 4096,
        "min_model_len": 4096,
        "max_num_seqs": 16,
        "max_num_batched_tokens": 2048,
        # Graphs for decode batches only: a FIM prefill (1-4k tokens) would need graphs up to
        # 2,048 tokens, about 3.7 GiB by the calibration: more than the coder's whole share.
        "max_cudagraph_capture_size": "seqs",
        "kv_tokens": 16384,
    },
    # One prefill per request, nothing kept afterwards: KV for one full-length batch only, and
    # no sampler (pooling runner). Code chunks are a few hundred tokens (Continue's @Codebase).
    "embed": {
        "max_model_len": 4096,
        "min_model_len": 4096,
        "max_num_seqs": 16,
        "max_num_batched_tokens": 4096,
        "runner": "pooling",
        # Every request is a prefill of its own length: graphs up to 16 tokens (measured 0.05 GiB).
        "max_cudagraph_capture_size": "seqs",
        "kv_tokens": 4096,
    },
}
ROLE_PROFILES["rerank"] = dict(ROLE_PROFILES["embed"])
_BUNDLE_STEP = 10_000  # utilization fractions in steps of 1e-4


def bundle_sizing(
    models: Sequence[Mapping[str, Any]],
    gpu: Any,
    profile: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Divide one card between several vLLM instances, one per model.

    ``models``: a list of ``{"name": str, "role": chat|autocomplete|embed|rerank, "model": model
    properties as vllm_sizing takes them, "profile": optional sizing wishes}``. ``gpu``: one GPU
    fact (the card they share). ``profile``: ``{"gpu_memory_utilization": cap}`` to cap the whole
    card's share (default: what the card leaves after one CUDA context per instance, at most 0.95).

    Every non-chat instance gets what its role needs (weights, runtime, activations, CUDA graphs
    and the role's ``kv_tokens`` of KV cache, 10 % spare); the chat instances share the rest
    equally. Returns ``{"instances": [{"name", "role", "gpu_memory_utilization", "profile", "sizing"}],
    "arithmetic": {...}, "warnings": [...]}``, each ``sizing`` being vllm_sizing's result for that
    instance's share. Raises SizingError, with every instance's numbers, when they do not fit.
    """
    if isinstance(models, Mapping) or not isinstance(models, Sequence) or not models:
        raise SizingError("models must be a non-empty list of {name, role, model, profile}")
    gpus = _gpu_list(gpu)
    card = gpus[0]
    usable = (
        _positive_int(card.get("memory_total_mib"), "memory_total_mib") * MIB
        - _int(card.get("memory_reserved_mib") or 0, "memory_reserved_mib") * MIB
    )
    display = _bool(card.get("display_active"))
    count = len(models)
    outside = count * CUDA_CONTEXT_BYTES + (DESKTOP_RESERVE_BYTES if display else 0)
    card_cap = (profile or {}).get("gpu_memory_utilization")
    if card_cap in (None, ""):
        card_budget = min(int(usable * MAX_GPU_MEMORY_UTILIZATION), usable - outside)
    else:
        card_budget = int(usable * float(card_cap))
    names: list[str] = []
    entries: list[tuple[str, str, Mapping[str, Any], dict[str, Any]]] = []
    for item in models:
        if not isinstance(item, Mapping):
            raise SizingError(f"each model must be a mapping, got {type(item).__name__}")
        name = str(item.get("name") or "")
        role = str(item.get("role") or "")
        if not name or name in names:
            raise SizingError(f"every model needs a unique name, got {name!r}")
        if role not in ROLE_PROFILES:
            raise SizingError(f"{name}: role must be one of {', '.join(ROLE_PROFILES)}, got {role!r}")
        names.append(name)
        wishes = dict(ROLE_PROFILES[role])
        wishes.update({k: v for k, v in (item.get("profile") or {}).items() if v not in (None, "")})
        entries.append((name, role, item.get("model") or {}, wishes))

    def _share(fraction: float, model: Mapping[str, Any], wishes: Mapping[str, Any]) -> dict[str, Any]:
        sized = {k: v for k, v in wishes.items() if k != "kv_tokens"}
        sized["gpu_memory_utilization"] = fraction
        return vllm_sizing(model, card, sized)

    instances: dict[str, dict[str, Any]] = {}
    lines: list[str] = []
    fixed_total = 0
    for name, role, model, wishes in entries:
        if role == "chat":
            continue
        # The overhead does not depend on the share: size once at the whole card to read it.
        probe = _share(1.0, model, dict(wishes, min_model_len=1))["arithmetic"]
        kv_token = probe["kv_bytes_per_token_per_gpu"]
        kv_tokens = max(
            _positive_int(wishes.get("kv_tokens"), "kv_tokens"),
            _positive_int(wishes["max_model_len"], "max_model_len"),
        )
        kv_need = (math.ceil(kv_tokens / KV_SAFETY_FACTOR / KV_BLOCK_TOKENS) + 1) * KV_BLOCK_TOKENS * kv_token
        need = probe["weights_bytes_per_gpu"] + probe["overhead_bytes_per_gpu"] + kv_need
        fraction = math.ceil(need / usable * _BUNDLE_STEP) / _BUNDLE_STEP
        instances[name] = {"name": name, "role": role, "gpu_memory_utilization": fraction}
        fixed_total += math.ceil(usable * fraction)
        lines.append(
            f"{name} ({role}): {_gib(need)} GiB = weights {_gib(probe['weights_bytes_per_gpu'])} + "
            f"runtime {_gib(probe['overhead_bytes_per_gpu'])} + KV {_gib(kv_need)} "
            f"({kv_tokens} tokens at {kv_token} B)"
        )
    chats = [e for e in entries if e[1] == "chat"]
    remainder = card_budget - fixed_total
    summary = (
        f"card {_gib(usable)} GiB usable, {count} CUDA contexts {_gib(count * CUDA_CONTEXT_BYTES)} GiB"
        + (f" + desktop {_gib(DESKTOP_RESERVE_BYTES)} GiB" if display else "")
        + f" outside, {_gib(card_budget)} GiB for the instances; "
    )
    if remainder <= 0:
        raise SizingError(
            "the models do not fit on one card: "
            + summary
            + "; ".join(lines)
            + f"; {_gib(-remainder)} GiB short before any chat model. Suggestion: drop a model, "
            "a quantized variant, or a larger card."
        )
    warnings: list[str] = []
    if chats:
        per_chat = remainder // len(chats)
        fraction = math.floor(per_chat / usable * _BUNDLE_STEP) / _BUNDLE_STEP
        for name, role, _model, _wishes in chats:
            instances[name] = {"name": name, "role": role, "gpu_memory_utilization": fraction}
            lines.append(f"{name} ({role}): the rest, {_gib(per_chat)} GiB")
    else:
        warnings.append(f"no chat model: {_gib(remainder)} GiB of the card stay unused")
    for name, _role, model, wishes in entries:
        # The wishes each instance is sized with: llm_server_vllm_profile of its llm_server instance
        # (the same call there gives the same sizing).
        instances[name]["profile"] = {k: v for k, v in wishes.items() if k != "kv_tokens"} | {
            "gpu_memory_utilization": instances[name]["gpu_memory_utilization"]
        }
        try:
            instances[name]["sizing"] = _share(instances[name]["gpu_memory_utilization"], model, wishes)
        except SizingError as error:
            raise SizingError(
                f"the models do not fit on one card: {name}: {error} -- " + summary + "; ".join(lines)
            ) from None
    total = sum(i["gpu_memory_utilization"] for i in instances.values())
    return {
        "instances": [instances[name] for name in names],
        "arithmetic": {
            "usable_gib": _gib(usable),
            "outside_budget_gib": _gib(outside),
            "card_budget_gib": _gib(card_budget),
            "gpu_memory_utilization_total": round(total, 4),
            "shares": lines,
        },
        "warnings": warnings,
    }


class FilterModule:
    """Ansible filter entry point."""

    def filters(self) -> dict[str, Any]:
        return {
            "llm_kv_bytes_per_token": kv_bytes_per_token,
            "llm_model_props": model_props,
            "llm_vllm_sizing": vllm_sizing,
            "llm_bundle_sizing": bundle_sizing,
        }
