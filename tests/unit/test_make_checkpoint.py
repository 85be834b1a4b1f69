"""scripts/gpu-proving-run/make_checkpoint.py writes the layout transformers itself expects.

The presets are cut to two layers (and a small vocabulary for the AWQ one) to stay fast; every
other shape is the catalog's. The 16-bit checkpoints must hold exactly the tensors, with exactly
the shapes, of the model transformers builds from the written config.json; the AWQ one the GEMM
packing vLLM's AWQ loader reads (qweight [in, out/8], qzeros [in/128, out/8], scales [in/128, out]).
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")
from safetensors import safe_open  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
SPEC = importlib.util.spec_from_file_location(
    "make_checkpoint", REPO / "scripts/gpu-proving-run/make_checkpoint.py"
)
mc = importlib.util.module_from_spec(SPEC)
SPEC.loader.exec_module(mc)
CATALOG = yaml.safe_load((REPO / "roles/vm-llm-aimachine/vars/catalog.yml").read_text())[
    "__vm_llm_aimachine_catalog"
]


def _shapes(directory: Path) -> dict[str, tuple[int, ...]]:
    out = {}
    for file in directory.glob("*.safetensors"):
        with safe_open(str(file), "pt") as handle:
            for key in handle.keys():  # noqa: SIM118 - safe_open is not a dict
                out[key] = tuple(handle.get_slice(key).get_shape())
    return out


# transformers builds the model in a fresh interpreter: in the same process as the Ansible tests,
# torch._dynamo's import trips over Ansible's sys.intern patch (a class, not a function).
_BUILD = """
import json, sys, torch, transformers
config = transformers.AutoConfig.from_pretrained(sys.argv[1])
with torch.device("meta"):
    model = transformers.AutoModelForCausalLM.from_config(config)
print(json.dumps({k: list(v.shape) for k, v in model.state_dict().items()}))
"""


def _transformers_shapes(directory: Path) -> dict[str, tuple[int, ...]]:
    done = subprocess.run(
        [sys.executable, "-c", _BUILD, str(directory)],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return {k: tuple(v) for k, v in json.loads(done.stdout.strip().splitlines()[-1]).items()}


@pytest.mark.parametrize(
    ("preset", "entry"),
    [("qwen2.5-coder-1.5b", "qwen2.5-coder-1.5b"), ("qwen3-embedding-0.6b", "qwen3-embedding-0.6b")],
)
def test_16bit_layout_is_transformers_own(tmp_path, monkeypatch, preset, entry):
    shape = CATALOG[entry]["shape"]
    p = dict(mc.PRESETS[preset], layers=2)
    assert (p["hidden"], p["inter"], p["heads"], p["kv"], p["hd"], p["vocab"], p["tie"]) == (
        shape["hidden_size"],
        shape["intermediate_size"],
        shape["attention_heads"],
        shape["kv_heads"],
        shape["head_dim"],
        shape["vocab_size"],
        shape["tie_word_embeddings"],
    )
    monkeypatch.setitem(mc.PRESETS, "small", p)
    mc.write("small", tmp_path)
    config = transformers.AutoConfig.from_pretrained(tmp_path)
    assert config.architectures == [shape["architecture"]]
    want = _transformers_shapes(tmp_path)
    if config.tie_word_embeddings:
        want.pop("lm_head.weight", None)
    assert _shapes(tmp_path) == want


def test_awq_layout_and_sizes(tmp_path, monkeypatch):
    shape = CATALOG["qwen2.5-7b-instruct-awq"]["shape"]
    p = dict(mc.PRESETS["qwen2.5-7b-awq"], layers=2, vocab=1024)
    assert p["hidden"] == shape["hidden_size"] and p["inter"] == shape["intermediate_size"]
    monkeypatch.setitem(mc.PRESETS, "small", p)
    mc.write("small", tmp_path)
    have = _shapes(tmp_path)
    h, i = p["hidden"], p["inter"]
    assert have["model.layers.1.mlp.down_proj.qweight"] == (i, h // 8)
    assert have["model.layers.1.mlp.down_proj.qzeros"] == (i // 128, h // 8)
    assert have["model.layers.1.mlp.down_proj.scales"] == (i // 128, h)
    assert have["model.layers.0.self_attn.k_proj.bias"] == (p["kv"] * p["hd"],)
    assert have["lm_head.weight"] == (1024, h)  # untied, 16-bit
    config = json.loads((tmp_path / "config.json").read_text())
    assert config["quantization_config"] == {
        "bits": 4,
        "group_size": 128,
        "quant_method": "awq",
        "version": "gemm",
        "zero_point": True,
    }
    index = json.loads((tmp_path / "model.safetensors.index.json").read_text())
    assert set(index["weight_map"]) == set(have)
