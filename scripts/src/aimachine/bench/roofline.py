"""The memory-bandwidth bound of single-stream decode, from the model's weight files and the card.

One decode step of a dense model reads every weight once: all layers (quantized or not) and the
output head. The input embedding is a row lookup (one row per token), unless the head is tied to
it, in which case the head reads it whole, once. Bytes come from the safetensors headers (dtype,
shape and byte offsets of every tensor; nothing is loaded). KV cache read per step grows with the
context: 2 (K and V) x layers x KV heads x head dim x bytes per element, per token.

Bound (tokens/s) = bandwidth / bytes per step. REFERENCES.md: Qwen2.5-7B-Instruct-AWQ reads
about 4.48 GB a step (3.39 GB of quantized layers + 1.09 GB untied fp16 head).
"""

from __future__ import annotations

import json
import re
import struct
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

EMBEDDING_SUFFIXES = ("embed_tokens.weight", "wte.weight", "word_embeddings.weight", "tok_embeddings.weight")
HEAD_NAMES = ("lm_head.weight", "output.weight")
_HEADER_LIMIT = 100 * 2**20  # the safetensors format caps the header at 100 MB
DTYPE_BYTES = {
    "float32": 4,
    "float16": 2,
    "bfloat16": 2,
    "float64": 8,
    "fp8": 1,
    "fp8_e4m3": 1,
    "fp8_e5m2": 1,
}

# 16 GB cards the appliance targets, plus the lent H100: peak memory bandwidth in GB/s (10^9 B/s).
# Source: aimachine REFERENCES.md, "Physical limits" table (vendor specifications).
CARD_BANDWIDTH_GBS: dict[str, float] = {
    "RTX 4060 Ti 16GB": 288.0,
    "RTX 5060 Ti 16GB": 448.0,
    "RTX A4000": 448.0,
    "RTX 4070 Ti SUPER": 672.0,
    "RTX 4080": 717.0,
    "RTX 4080 SUPER": 736.0,
    "RTX 5080": 960.0,
    "H100 80GB HBM3": 3350.0,
}
CARD_TABLE_SOURCE = "REFERENCES.md 'Physical limits' table (vendor specifications)"


class RooflineError(ValueError):
    """A model directory whose weights cannot be sized."""


def _normal(name: str) -> str:
    text = name.lower().replace("nvidia", "").replace("geforce", "")
    return re.sub(r"[^a-z0-9]", "", text)


def card_bandwidth(name: str) -> float:
    """Bandwidth of a card from the table, matched on its name as NVML spells it or as a person does.

    The 16 GB size may be left out ("NVIDIA GeForce RTX 4060 Ti" is what NVML says for both sizes,
    and both have the same 288 GB/s).
    """
    wanted = _normal(name)
    for card, gbs in CARD_BANDWIDTH_GBS.items():
        key = _normal(card)
        if wanted in (key, key.removesuffix("16gb")):
            return gbs
    raise RooflineError(
        f"unknown card {name!r}; known: {', '.join(CARD_BANDWIDTH_GBS)} (or pass --bandwidth-gbs)"
    )


def read_safetensors_header(path: Path) -> dict[str, dict[str, Any]]:
    """Tensor name -> {"dtype", "shape", "data_offsets"} from a safetensors file's header alone."""
    with Path(path).open("rb") as handle:
        prefix = handle.read(8)
        if len(prefix) != 8:
            raise RooflineError(f"{path}: too short to be a safetensors file")
        (size,) = struct.unpack("<Q", prefix)
        if size > _HEADER_LIMIT:
            raise RooflineError(f"{path}: header length {size} is not plausible; not a safetensors file?")
        raw = handle.read(size)
    if len(raw) != size:
        raise RooflineError(f"{path}: header cut short ({len(raw)} of {size} bytes)")
    try:
        header = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise RooflineError(f"{path}: header is not JSON ({error})") from None
    header.pop("__metadata__", None)
    return header


def weight_files(model_dir: Path) -> list[Path]:
    """The safetensors files of a model directory: those of the index, else every *.safetensors."""
    model_dir = Path(model_dir)
    index = model_dir / "model.safetensors.index.json"
    if index.is_file():
        weight_map = json.loads(index.read_text(encoding="utf-8")).get("weight_map", {})
        files = [model_dir / name for name in sorted(set(weight_map.values()))]
        missing = [f.name for f in files if not f.is_file()]
        if missing:
            raise RooflineError(f"{index} names files that are not there: {', '.join(missing)}")
        return files
    files = sorted(model_dir.glob("*.safetensors"))
    if not files:
        raise RooflineError(f"no safetensors weights in {model_dir}")
    return files


@dataclass(frozen=True)
class DecodeBytes:
    """Bytes a decode step reads, and how they add up."""

    weights_bytes: int
    layer_bytes: int
    head_bytes: int
    embedding_bytes: int
    embedding_row_bytes: int
    other_bytes: int
    tied_embeddings: bool
    decode_step_bytes: int
    kv_bytes_per_token: int | None
    tensors: int
    files: int

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _tensor_bytes(name: str, info: dict[str, Any]) -> int:
    try:
        start, end = info["data_offsets"]
    except (KeyError, TypeError, ValueError):
        raise RooflineError(f"tensor {name!r} has no valid data_offsets in its header") from None
    return int(end) - int(start)


def kv_bytes_per_token(config: dict[str, Any], kv_dtype_bytes: int | None = None) -> int | None:
    """2 x layers x KV heads x head dim x element bytes, from config.json (None if it lacks the numbers)."""
    text = config.get("text_config") if isinstance(config.get("text_config"), dict) else config
    layers = text.get("num_hidden_layers")
    heads = text.get("num_attention_heads")
    kv_heads = text.get("num_key_value_heads") or heads
    head_dim = text.get("head_dim") or (
        text["hidden_size"] // heads if text.get("hidden_size") and heads else None
    )
    if kv_dtype_bytes is None:
        dtype = str(text.get("torch_dtype") or text.get("dtype") or config.get("torch_dtype") or "float16")
        kv_dtype_bytes = DTYPE_BYTES.get(dtype, 2)
    if not (layers and kv_heads and head_dim):
        return None
    return 2 * int(layers) * int(kv_heads) * int(head_dim) * kv_dtype_bytes


def decode_bytes(model_dir: Path, kv_dtype_bytes: int | None = None) -> DecodeBytes:
    """Size a decode step of the model in `model_dir` (config.json + safetensors headers)."""
    model_dir = Path(model_dir)
    config_file = model_dir / "config.json"
    config = json.loads(config_file.read_text(encoding="utf-8")) if config_file.is_file() else {}
    files = weight_files(model_dir)
    layer = head = embedding = other = 0
    embedding_rows = 0
    count = 0
    for path in files:
        for name, info in read_safetensors_header(path).items():
            size = _tensor_bytes(name, info)
            count += 1
            if name.endswith(EMBEDDING_SUFFIXES):
                embedding += size
                shape = info.get("shape") or [1]
                embedding_rows += int(shape[0])
            elif name in HEAD_NAMES or name.endswith(".lm_head.weight"):
                head += size
            elif re.search(r"\.(layers|h|blocks)\.\d+\.", name):
                layer += size
            else:
                other += size
    if count == 0:
        raise RooflineError(f"the safetensors files in {model_dir} hold no tensors")
    tied = head == 0
    if tied and embedding == 0:
        raise RooflineError(f"{model_dir}: found neither an output head nor an input embedding to size")
    row = embedding // embedding_rows if embedding_rows else 0
    # Untied: the head is read whole and the embedding is one row a token; tied: the shared matrix once.
    step = layer + other + (embedding if tied else head + row)
    return DecodeBytes(
        weights_bytes=layer + head + embedding + other,
        layer_bytes=layer,
        head_bytes=head,
        embedding_bytes=embedding,
        embedding_row_bytes=row,
        other_bytes=other,
        tied_embeddings=tied,
        decode_step_bytes=step,
        kv_bytes_per_token=kv_bytes_per_token(config, kv_dtype_bytes),
        tensors=count,
        files=len(files),
    )


def is_local(base_url: str) -> bool:
    """Whether the server runs on this machine, so this machine's GPU is the server's GPU."""
    host = (urlsplit(base_url).hostname or "").lower()
    return host in {"localhost", "127.0.0.1", "::1"} or host.startswith("127.")


def resolve_bandwidth(
    bandwidth_gbs: float | None, gpu_name: str | None, base_url: str, gpu_index: int = 0
) -> tuple[float | None, str, str | None]:
    """(GB/s, where it came from, card name), or (None, why not, None).

    Order: --bandwidth-gbs, then --gpu-name in the table, then this machine's GPU through
    aimachine.gpu (NVML, nvidia-smi) when the server is local.
    """
    if bandwidth_gbs is not None:
        if bandwidth_gbs <= 0:
            raise RooflineError(f"--bandwidth-gbs must be positive, got {bandwidth_gbs}")
        return bandwidth_gbs, "--bandwidth-gbs", gpu_name
    if gpu_name:
        return card_bandwidth(gpu_name), f"--gpu-name lookup in {CARD_TABLE_SOURCE}", gpu_name
    if not is_local(base_url):
        return (
            None,
            "the server is not on this machine: pass --gpu-name or --bandwidth-gbs for its card",
            None,
        )
    try:
        from aimachine.gpu import detect_gpus  # noqa: PLC0415 - GPU facts are optional here
    except ImportError as error:
        return None, f"aimachine.gpu is not importable ({error}); pass --gpu-name or --bandwidth-gbs", None
    try:
        gpus = detect_gpus()
    except Exception as error:  # a broken driver must not stop the benchmark
        return None, f"GPU detection failed ({type(error).__name__}: {error})", None
    if not gpus:
        return None, "no NVIDIA GPU on this machine (NVML and nvidia-smi found none)", None
    if not 0 <= gpu_index < len(gpus):
        return None, f"--gpu-index {gpu_index} but this machine has {len(gpus)} GPU(s)", None
    gpu = gpus[gpu_index]
    name = str(gpu.get("name"))
    if gpu.get("bandwidth_gbs"):
        return float(gpu["bandwidth_gbs"]), f"aimachine.gpu ({gpu.get('source', '?')}) on {name}", name
    try:
        return card_bandwidth(name), f"{CARD_TABLE_SOURCE}, card detected by aimachine.gpu", name
    except RooflineError:
        return (
            None,
            f"{name}: bandwidth not reported by the driver and not in the table; pass --bandwidth-gbs",
            name,
        )


def roofline(
    step: DecodeBytes,
    bandwidth_gbs: float,
    measured_tokens_per_s: float | None,
    mean_context_tokens: float | None = None,
) -> dict[str, Any]:
    """Bound and measured single-stream decode speed; with the KV cache read at the mean context, too."""
    bound = bandwidth_gbs * 1e9 / step.decode_step_bytes
    result: dict[str, Any] = {
        "bandwidth_gbs": bandwidth_gbs,
        "decode_step_bytes": step.decode_step_bytes,
        "bound_tokens_per_s": bound,
        "measured_tokens_per_s": measured_tokens_per_s,
        "percent_of_bound": None if measured_tokens_per_s is None else 100.0 * measured_tokens_per_s / bound,
    }
    if step.kv_bytes_per_token and mean_context_tokens:
        with_kv = step.decode_step_bytes + mean_context_tokens * step.kv_bytes_per_token
        result |= {
            "mean_context_tokens": mean_context_tokens,
            "decode_step_bytes_with_kv": with_kv,
            "bound_tokens_per_s_with_kv": bandwidth_gbs * 1e9 / with_kv,
            "percent_of_bound_with_kv": None
            if measured_tokens_per_s is None
            else 100.0 * measured_tokens_per_s * with_kv / (bandwidth_gbs * 1e9),
        }
    return result
