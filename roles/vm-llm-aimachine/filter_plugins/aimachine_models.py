"""The served models of one appliance host, resolved once (issue 16; issue 20 point 1).

- ``vm_llm_aimachine_models_errors(models, catalog, legacy, base_port)``: what is wrong with
  ``vm_llm_aimachine_models``, one line each naming the entry (empty when it is good).
- ``vm_llm_aimachine_resolve_models(models, catalog, legacy, base_port)``: one mapping per served
  model, the primary model first (the first chat model, else the first entry): what the host role
  passes to llm_model and llm_server, what the front door routes and what the published fact
  ``vm_llm_aimachine_deployed.models`` says. The render playbook runs the same step
  (tasks/resolve.yml), so nothing re-derives the served name, the catalog mapping or the ports.

An entry: ``{model: <catalog key>, role: chat|autocomplete|embed|rerank, name: <served name>,
source, id, revision, local_path, size_bytes, profile, fim, dimensions}``. The primary entry
without ``model``, ``id`` and ``local_path`` is the model the single-model variables describe
(``legacy``: vm_llm_aimachine_model, _model_source, _model_id, _model_revision,
_model_local_path, _model_size_bytes, _served_model_name), so an inventory written before the
list keeps deploying the same chat model under the same name, unit, port and paths.

Ports: the primary model takes ``base_port`` (vm_llm_aimachine_port, 8000), the others the next
ports in list order. The primary keeps llm_server's single-model unit and directories
(instance ""); the others are instances named after their role (``autocomplete``; a second model of
the same role ``autocomplete-2``), i.e. unit ``aimachine-llm-<instance>``.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from typing import Any

ROLES = ("chat", "autocomplete", "embed", "rerank")
SOURCES = ("huggingface", "controller", "host")
KEYS = {
    "model",
    "role",
    "name",
    "source",
    "id",
    "revision",
    "local_path",
    "size_bytes",
    "profile",
    "fim",
    "dimensions",
}
FIM_KEYS = ("prefix", "suffix", "middle")
# llm_server's rule for a served name (letters, digits, '.', '_', '-', at most one '/', no '..').
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*(/[A-Za-z0-9][A-Za-z0-9._-]*)?$")
_REVISION = re.compile(r"^[0-9a-f]{40}$")
_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*/[A-Za-z0-9][A-Za-z0-9._-]*$")
_QUANTIZED = re.compile(r"(?i)-(awq|fp8|gptq.*|int[48])$")


def _text(value: Any) -> str:
    return "" if value is None else str(value).strip()


def _int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    try:
        return int(str(value).strip())
    except (TypeError, ValueError):
        return None


def _primary_index(models: list[Any]) -> int:
    for i, m in enumerate(models):
        if isinstance(m, Mapping) and m.get("role") == "chat":
            return i
    return 0


def _uses_legacy(entry: Mapping[str, Any], primary: bool) -> bool:
    return primary and not any(_text(entry.get(k)) for k in ("model", "id", "local_path"))


def _one(
    entry: Mapping[str, Any],
    primary: bool,
    catalog: Mapping[str, Any],
    legacy: Mapping[str, Any],
) -> dict[str, Any]:
    """One entry with its catalog entry and the single-model fallbacks applied (no checks)."""
    use_legacy = _uses_legacy(entry, primary)
    key = _text(entry.get("model")) or (_text(legacy.get("model")) if use_legacy else "")
    cat = catalog.get(key) or {} if key else {}

    def pick(name: str, legacy_name: str | None = None, default: Any = "") -> Any:
        value = entry.get(name)
        if _text(value):
            return value
        if use_legacy and legacy_name and _text(legacy.get(legacy_name)):
            return legacy[legacy_name]
        return default

    role = _text(entry.get("role")) or "chat"
    model_id = _text(pick("id", "id")) or _text(cat.get("repo_id"))
    size = _int(pick("size_bytes", "size_bytes", 0)) or 0
    if size <= 0:
        size = int(float(cat.get("weights_gb") or 0) * 1_000_000_000)
    fim = entry.get("fim") or cat.get("fim") or None
    embedding = cat.get("embedding") or {}
    dimensions = _int(entry.get("dimensions")) or _int(embedding.get("dim"))
    profile = dict(legacy.get("profile") or {}) if use_legacy else {}
    profile.update(entry.get("profile") or {})
    return {
        "role": role,
        "catalog": key or None,
        "source": _text(pick("source", "source")) or "huggingface",
        "id": model_id,
        "revision": _text(pick("revision", "revision")) or _text(cat.get("revision")),
        "local_path": _text(pick("local_path", "local_path")),
        "size_bytes": size,
        "name": _text(pick("name", "served_name")) or model_id,
        "fim": dict(fim) if role == "autocomplete" and isinstance(fim, Mapping) else None,
        "dimensions": dimensions if role in ("embed", "rerank") else None,
        "profile": profile,
        "tensor_parallel_size": int(cat.get("tensor_parallel_size") or 1),
        "shape": dict(cat.get("shape") or {}),
        "quantization": cat.get("quantization"),
        "tool_call_parser": _text(cat.get("tool_call_parser")) if role == "chat" else "",
        # An embedding model's vLLM runner and pooler (the catalog's embedding.vllm_args).
        "vllm_extra_config": dict(embedding.get("vllm_args") or {}),
        "base_model": _QUANTIZED.sub("", model_id),
        "published_scores": list(cat.get("scores") or []),
        "scores_note": cat.get("scores_note"),
        "legacy": use_legacy,
    }


def _instances(resolved: list[dict[str, Any]]) -> None:
    """Instance names: '' for the primary, the role (role-2, role-3 for repeats) for the rest."""
    # The primary model counts as its role's first: a second chat model is "chat-2".
    seen: dict[str, int] = {}
    for item in resolved:
        if item["primary"]:
            item["instance"] = ""
            seen[item["role"]] = 1
            continue
        seen[item["role"]] = seen.get(item["role"], 0) + 1
        count = seen[item["role"]]
        item["instance"] = item["role"] if count == 1 else f"{item['role']}-{count}"


def vm_llm_aimachine_resolve_models(
    models: Any, catalog: Mapping[str, Any], legacy: Mapping[str, Any], base_port: Any = 8000
) -> list[dict[str, Any]]:
    if not isinstance(models, list) or not models:
        return []
    primary = _primary_index(models)
    order = [primary] + [i for i in range(len(models)) if i != primary]
    port = _int(base_port) or 8000
    out = []
    for rank, i in enumerate(order):
        entry = models[i] if isinstance(models[i], Mapping) else {}
        item = _one(entry, i == primary, catalog or {}, legacy or {})
        item.update({"index": i, "primary": i == primary, "port": port + rank})
        out.append(item)
    _instances(out)
    return out


def vm_llm_aimachine_models_errors(
    models: Any, catalog: Mapping[str, Any], legacy: Mapping[str, Any], base_port: Any = 8000
) -> list[str]:
    """One line per problem in vm_llm_aimachine_models; empty when it is good."""
    if not isinstance(models, list) or not models:
        return [
            "vm_llm_aimachine_models must be a non-empty list of {model: <catalog key>, role: "
            f"chat|autocomplete|embed|rerank}}, got {models!r}"
        ]
    catalog = catalog or {}
    errors: list[str] = []
    primary = _primary_index(models)
    for i, entry in enumerate(models):
        where = f"vm_llm_aimachine_models[{i}]"
        if not isinstance(entry, Mapping):
            errors.append(
                f"{where} must be a mapping such as {{model: qwen2.5-coder-1.5b, role: autocomplete}}"
            )
            continue
        unknown = sorted(set(entry) - KEYS)
        if unknown:
            errors.append(f"{where} has unknown keys {unknown} (known: {sorted(KEYS)})")
        role = _text(entry.get("role"))
        if role not in ROLES:
            errors.append(f"{where}.role must be one of {', '.join(ROLES)} (got {role!r})")
            continue
        key = _text(entry.get("model"))
        if key and key not in catalog:
            errors.append(f"{where}.model {key!r} is not in the catalog; known: {', '.join(catalog)}")
            continue
        cat_role = (catalog.get(key) or {}).get("role") if key else None
        if cat_role and cat_role != role and not (cat_role == "chat" and role == "autocomplete"):
            errors.append(f"{where}: {key} is the catalog's {cat_role} model, not a {role} model")
        if not key and not _uses_legacy(entry, i == primary) and not _text(entry.get("id")):
            errors.append(
                f"{where} names no model: give model (a catalog key), or id "
                "(and source / local_path for a local model)"
            )
        for name in ("profile", "fim"):
            if entry.get(name) not in (None, "") and not isinstance(entry.get(name), Mapping):
                errors.append(f"{where}.{name} must be a mapping (got {entry.get(name)!r})")
        for name in ("size_bytes", "dimensions"):
            if entry.get(name) not in (None, "") and (
                _int(entry.get(name)) is None or _int(entry.get(name)) < 0
            ):
                errors.append(f"{where}.{name} must be a whole number (got {entry.get(name)!r})")
    if errors:
        return errors
    resolved = vm_llm_aimachine_resolve_models(models, catalog, legacy, base_port)
    names: dict[str, int] = {}
    for item in resolved:
        where = f"vm_llm_aimachine_models[{item['index']}]"
        if item["legacy"]:
            continue  # the single-model variables have their own checks (tasks/arguments.yml)
        if item["source"] not in SOURCES:
            errors.append(f"{where}.source must be one of {', '.join(SOURCES)} (got {item['source']!r})")
        if item["source"] == "huggingface":
            if not _ID.match(item["id"]):
                errors.append(f"{where}.id must be 'owner/name' (got {item['id']!r})")
            if not _REVISION.match(item["revision"]):
                errors.append(
                    f"{where}.revision must be a 40-hex commit of {item['id'] or 'the model'} "
                    f"(got {item['revision']!r}): a branch or tag can move under a deployment"
                )
        elif not item["local_path"]:
            errors.append(f"{where}.local_path must name the model directory (source {item['source']})")
        elif item["source"] == "controller" and not os.path.isfile(
            os.path.join(item["local_path"], "config.json")
        ):
            errors.append(f"{where}.local_path {item['local_path']} has no config.json on the controller")
        elif item["revision"] and not _REVISION.match(item["revision"]):
            errors.append(f"{where}.revision must be a 40-hex commit (got {item['revision']!r})")
    for item in resolved:
        where = f"vm_llm_aimachine_models[{item['index']}]"
        name = item["name"]
        if not _NAME.match(name) or ".." in name:
            errors.append(
                f"{where}.name {name!r} must be a model name such as 'org/model' or 'model' "
                "(letters, digits, '.', '_', '-', at most one '/')"
            )
        if name in names:
            errors.append(
                f"{where}.name {name!r} is served already by vm_llm_aimachine_models[{names[name]}]"
            )
        names.setdefault(name, item["index"])
        if item["role"] == "autocomplete":
            fim = item["fim"] or {}
            missing = [k for k in FIM_KEYS if not _text(fim.get(k))]
            if missing:
                errors.append(
                    f"{where} (autocomplete) needs the model's fill-in-the-middle tokens: a catalog model "
                    f"with fim, or fim: {{prefix, suffix, middle, stop}} (missing {', '.join(missing)})"
                )
        if item["port"] > 65535:
            errors.append(
                f"{where}: its port {item['port']} "
                f"(vm_llm_aimachine_port + {item['port'] - resolved[0]['port']}) is above 65535"
            )
    return errors


class FilterModule:
    """Ansible filter entry point."""

    def filters(self) -> dict[str, Any]:
        return {
            "vm_llm_aimachine_models_errors": vm_llm_aimachine_models_errors,
            "vm_llm_aimachine_resolve_models": vm_llm_aimachine_resolve_models,
        }
