"""The host role's served models (roles/vm-llm-aimachine/filter_plugins/aimachine_models.py), and the
render playbook dividing a card between them exactly as the host role does (issue 16)."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest
import yaml
from render_playbook import REPO, render_serving_config
from sizing_plugin import sizing

PATH = REPO / "roles/vm-llm-aimachine/filter_plugins/aimachine_models.py"
_spec = importlib.util.spec_from_file_location("aimachine_models", PATH)
models = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(models)

CATALOG = yaml.safe_load((REPO / "roles/vm-llm-aimachine/vars/catalog.yml").read_text())[
    "__vm_llm_aimachine_catalog"
]
DEFAULTS = yaml.safe_load((REPO / "roles/vm-llm-aimachine/defaults/main.yml").read_text())
GROUP_VARS = yaml.safe_load((REPO / "group_vars/all.yml").read_text())
# The single-model variables as group_vars/all.yml and the role's defaults set them.
LEGACY = {
    "model": GROUP_VARS["vm_llm_aimachine_model"],
    "source": "huggingface",
    "id": "",
    "revision": "",
    "local_path": "",
    "size_bytes": 0,
    "served_name": GROUP_VARS["vm_llm_aimachine_served_model_name"],
    "profile": {},
}
CARD_16GIB = {"name": "16 GiB card", "memory_total_mib": 16384, "compute_capability": "8.9"}


def _resolve(entries, legacy=LEGACY, port=8000):
    return models.vm_llm_aimachine_resolve_models(entries, CATALOG, legacy, port)


def _errors(entries, legacy=LEGACY, port=8000):
    return models.vm_llm_aimachine_models_errors(entries, CATALOG, legacy, port)


def test_the_default_is_chat_autocomplete_and_embeddings_on_consecutive_ports():
    entries = DEFAULTS["vm_llm_aimachine_models"]
    assert _errors(entries) == []
    served = _resolve(entries)
    assert [(m["role"], m["port"], m["instance"], m["catalog"]) for m in served] == [
        ("chat", 8000, "", "qwen2.5-7b-instruct-awq"),
        ("autocomplete", 8001, "autocomplete", "qwen2.5-coder-1.5b"),
        ("embed", 8002, "embed", "qwen3-embedding-0.6b"),
    ]
    chat, coder, embed = served
    # The chat model is the one the single-model variables describe: same name as before.
    assert chat["name"] == "qwen2.5-7b-instruct" and chat["legacy"]
    assert (
        chat["tool_call_parser"] == "hermes"
        and chat["revision"] == CATALOG["qwen2.5-7b-instruct-awq"]["revision"]
    )
    assert coder["fim"] == CATALOG["qwen2.5-coder-1.5b"]["fim"] and coder["tool_call_parser"] == ""
    assert coder["name"] == "Qwen/Qwen2.5-Coder-1.5B" and coder["profile"] == {"kv_tokens": 8192}
    assert embed["dimensions"] == 1024 and embed["vllm_extra_config"]["runner"] == "pooling"
    assert embed["size_bytes"] == int(CATALOG["qwen3-embedding-0.6b"]["weights_gb"] * 1e9)


def test_the_primary_chat_model_comes_first_whatever_the_order():
    served = _resolve([{"model": "qwen3-embedding-0.6b", "role": "embed"}, {"role": "chat"}])
    assert [(m["role"], m["port"], m["instance"], m["index"]) for m in served] == [
        ("chat", 8000, "", 1),
        ("embed", 8001, "embed", 0),
    ]
    # Two models of one role: the second instance is numbered.
    served = _resolve([{"role": "chat"}, {"model": "qwen3-8b-awq", "role": "chat", "name": "qwen3"}])
    assert [m["instance"] for m in served] == ["", "chat-2"]


def test_a_one_model_setup_is_one_line_and_an_old_inventory_keeps_its_model():
    legacy = dict(
        LEGACY, model="", id="aimachine/tiny-qwen2", source="controller", local_path="/m", served_name=""
    )
    (only,) = _resolve([{"role": "chat"}], legacy=legacy)
    assert (only["name"], only["source"], only["local_path"], only["port"]) == (
        "aimachine/tiny-qwen2",
        "controller",
        "/m",
        8000,
    )
    # An entry that names its own model is not described by the single-model variables.
    (named,) = _resolve([{"model": "qwen3-8b-awq", "role": "chat"}])
    assert named["name"] == "Qwen/Qwen3-8B-AWQ" and not named["legacy"]


@pytest.mark.parametrize(
    ("entries", "message"),
    [
        ([], "vm_llm_aimachine_models must be a non-empty list"),
        (
            [{"role": "chat"}, {"model": "gpt-5", "role": "chat"}],
            "vm_llm_aimachine_models[1].model 'gpt-5' is not in the catalog",
        ),
        (
            [{"role": "vision"}],
            "vm_llm_aimachine_models[0].role must be one of chat, autocomplete, embed, rerank",
        ),
        (
            [{"role": "chat"}, {"model": "qwen3-embedding-0.6b", "role": "chat"}],
            "qwen3-embedding-0.6b is the catalog's embed model, not a chat model",
        ),
        ([{"role": "chat", "port": 8001}], "vm_llm_aimachine_models[0] has unknown keys ['port']"),
        ([{"role": "chat"}, {"role": "embed"}], "vm_llm_aimachine_models[1] names no model"),
        (
            [{"role": "chat"}, {"role": "autocomplete", "id": "a/b", "revision": "main"}],
            "vm_llm_aimachine_models[1].revision must be a 40-hex commit of a/b (got 'main')",
        ),
        (
            [{"role": "chat"}, {"role": "autocomplete", "id": "a/b", "revision": "a" * 40}],
            "(autocomplete) needs the model's fill-in-the-middle tokens",
        ),
        (
            [
                {"role": "chat"},
                {"role": "embed", "id": "x/y", "source": "controller", "local_path": "/nonexistent"},
            ],
            "local_path /nonexistent has no config.json on the controller",
        ),
        (
            [
                {"role": "chat"},
                {"model": "qwen2.5-7b-instruct-awq", "role": "chat", "name": "qwen2.5-7b-instruct"},
            ],
            "'qwen2.5-7b-instruct' is served already by vm_llm_aimachine_models[0]",
        ),
        ([{"role": "chat", "name": "a b"}], "vm_llm_aimachine_models[0].name 'a b' must be a model name"),
    ],
)
def test_bad_entries_are_refused_naming_the_entry(entries, message):
    errors = _errors(entries)
    assert any(message in e for e in errors), errors


def test_ports_above_the_range_are_refused():
    assert any("its port 65536" in e for e in _errors(DEFAULTS["vm_llm_aimachine_models"], port=65534))


def test_the_render_playbook_divides_the_card_as_the_bundle_sizing_does(tmp_path: Path):
    """playbooks/render-serving-config.yml with the default models: each instance's vLLM config
    holds its share of the 16 GiB card, the shares the llm_bundle_sizing filter computes."""
    entries = [dict(e) for e in DEFAULTS["vm_llm_aimachine_models"]]
    entries[0] = {"role": "chat", "model": "qwen2.5-7b-instruct-awq", "name": "qwen2.5-7b-instruct"}
    render_serving_config(json.dumps({"render_dir": str(tmp_path), "render_models": entries}))
    bundle = json.loads((tmp_path / "bundle.json").read_text())
    expected = sizing.bundle_sizing(
        [
            {
                "name": m["name"],
                "role": m["role"],
                "model": dict(
                    CATALOG[m["catalog"]]["shape"],
                    weights_bytes=int(CATALOG[m["catalog"]]["weights_gb"] * 1e9),
                    quantization=CATALOG[m["catalog"]]["quantization"],
                ),
                "profile": m["profile"],
            }
            for m in _resolve(entries)
        ],
        CARD_16GIB,
    )
    assert [i["gpu_memory_utilization"] for i in bundle["instances"]] == [
        i["gpu_memory_utilization"] for i in expected["instances"]
    ]
    for unit, port, share in zip(
        ("aimachine-llm", "aimachine-llm-autocomplete", "aimachine-llm-embed"),
        (8000, 8001, 8002),
        expected["instances"],
        strict=True,
    ):
        config = yaml.safe_load((tmp_path / unit / f"{unit}.yaml").read_text())
        assert config["port"] == port and config["served-model-name"] == share["name"]
        assert config["gpu-memory-utilization"] == share["gpu_memory_utilization"]
        assert config["max-model-len"] == share["sizing"]["max_model_len"]
        assert config["max-num-seqs"] == share["sizing"]["max_num_seqs"]
        assert f"/etc/aimachine/{unit}.env" in (tmp_path / unit / f"{unit}.service").read_text()
    assert sum(i["gpu_memory_utilization"] for i in bundle["instances"]) < 0.95
    embed = yaml.safe_load((tmp_path / "aimachine-llm-embed/aimachine-llm-embed.yaml").read_text())
    assert embed["runner"] == "pooling"
