"""Several models per host (issue #16): the served models, a section per non-chat model and what
co-hosting costs the chat model.

Inputs (PLAN.md contracts 3 and 4): `metadata.models` (the host role's `vm_llm_aimachine_deployed
.models`; missing: one chat model made from `metadata.model`), and per non-chat model the run
directory's `models/<served-name>/bench/bench.json` (`--workload fim` or `embeddings`) and
`models/<served-name>/quality/summary.json` (`--suites infill` or `retrieval`).
"""

from __future__ import annotations

import math
from typing import Any

from aimachine.report.capacity import capacity_section
from aimachine.report.records import rec


def served_models(meta: dict[str, Any]) -> list[dict[str, Any]]:
    models = meta.get("models")
    if models:
        return [dict(m) for m in models]
    model = meta.get("model") or {}
    return [
        {
            "name": model.get("served_name") or model.get("id"),
            "role": "chat",
            "catalog_key": model.get("catalog_key"),
            "id": model.get("id"),
            "revision": model.get("revision"),
            "quantization": model.get("quantization"),
            "engine": (meta.get("engine") or {}).get("name"),
        }
    ]


def _stat(summary: dict[str, Any], keys: tuple[str, ...], stat: str) -> float | None:
    for key in keys:
        value = (summary.get(key) or {}).get(stat) if isinstance(summary.get(key), dict) else None
        if value is not None:
            return float(value)
    return None


def _scalar(summary: dict[str, Any], keys: tuple[str, ...]) -> float | None:
    for key in keys:
        if isinstance(summary.get(key), int | float):
            return float(summary[key])
    return None


def _result(label: str, score: float | None, stderr: float | None) -> dict[str, Any]:
    """A model's headline result for the grade: a fraction and its standard error, as percent."""
    return {
        "label": label,
        "score_percent": None if score is None else 100 * score,
        "stderr_percent": None if stderr is None else 100 * stderr,
    }


def workload_kind(bench: dict[str, Any] | None) -> str | None:
    workload = (bench or {}).get("workload")
    if isinstance(workload, str):
        return workload
    if isinstance(workload, dict):
        return workload.get("kind") or workload.get("name") or workload.get("type") or workload.get("api")
    return None


def _suite(quality: dict[str, Any] | None, name: str) -> dict[str, Any] | None:
    return ((quality or {}).get("suites") or {}).get(name)


def autocomplete_section(
    model: dict[str, Any],
    bench: dict[str, Any] | None,
    quality: dict[str, Any] | None,
    config: dict[str, Any],
) -> dict[str, Any]:
    where = f"models/{model['name']}/bench"
    levels = []
    for lv in (bench or {}).get("levels") or []:
        s = lv.get("summary") or {}
        what = f"{where} level {lv['name']}"
        levels.append(
            {
                "name": lv["name"],
                "requests": int(s.get("completed") or 0) + int(s.get("errors") or 0),
                "errors": rec(s.get("errors"), "", digits=0, measured=what),
                "ttft_p50_ms": rec(_stat(s, ("ttft_ms",), "p50"), "ms", measured=f"{what} TTFT p50"),
                "ttft_p99_ms": rec(_stat(s, ("ttft_ms",), "p99"), "ms", measured=f"{what} TTFT p99"),
                "total_p50_ms": rec(
                    _stat(s, ("e2el_ms",), "p50"), "ms", measured=f"{what} total latency p50"
                ),
                "total_p99_ms": rec(
                    _stat(s, ("e2el_ms",), "p99"), "ms", measured=f"{what} total latency p99"
                ),
                "output_tokens_per_s": rec(
                    s.get("output_throughput"), "tok/s", measured=f"{what} output tokens/s"
                ),
            }
        )
    infill = _suite(quality, "infill")
    section: dict[str, Any] = {
        "bench_available": bench is not None,
        "workload": workload_kind(bench),
        "levels": levels,
        "capacity": capacity_section(bench, config.get("capacity") or {}, role="autocomplete", where=where)
        if bench
        else {"available": False, "reason": "no FIM benchmark in this run"},
    }
    if infill:
        p = infill.get("pass@1")
        n = int(infill.get("problems") or 0)
        se = infill.get("pass@1_stderr")
        if se is None and p is not None and n:
            se = math.sqrt(p * (1 - p) / n)
        what = f"models/{model['name']}/quality infill ({n} masked spans)"
        section["infill"] = {
            "problems": rec(n, "", digits=0, measured=what),
            "pass_at_1": rec(None if p is None else 100 * p, "%", measured=what),
            "stderr": rec(None if se is None else 100 * se, "pts", measured=f"{what}: binomial SE"),
            # The suite's own requests, streamed one at a time (quality/infill.py).
            "ttft_p50_ms": rec(_stat(infill, ("ttft_ms",), "p50"), "ms", measured=f"{what}: TTFT p50"),
            "ttft_p99_ms": rec(_stat(infill, ("ttft_ms",), "p99"), "ms", measured=f"{what}: TTFT p99"),
            "total_p50_ms": rec(_stat(infill, ("total_ms",), "p50"), "ms", measured=f"{what}: total p50"),
            "total_p99_ms": rec(_stat(infill, ("total_ms",), "p99"), "ms", measured=f"{what}: total p99"),
        }
        section["result"] = _result(f"infill pass@1 ({n} spans)", p, se)
    else:
        section["infill"] = None
    return section


def embed_section(
    model: dict[str, Any], bench: dict[str, Any] | None, quality: dict[str, Any] | None
) -> dict[str, Any]:
    where = f"models/{model['name']}/bench"
    levels = []
    for lv in (bench or {}).get("levels") or []:
        # bench.json 1.1 keeps the embeddings figures in the summary's `embeddings` block
        s = {**(lv.get("summary") or {}), **((lv.get("summary") or {}).get("embeddings") or {})}
        what = f"{where} level {lv['name']}"
        levels.append(
            {
                "name": lv["name"],
                "inputs_per_s": rec(
                    _scalar(s, ("inputs_per_s", "input_throughput", "request_throughput")),
                    "inputs/s",
                    measured=what,
                ),
                "tokens_per_s": rec(
                    _scalar(
                        s,
                        (
                            "prompt_tokens_per_s",
                            "tokens_per_s",
                            "total_token_throughput",
                        ),
                    ),
                    "tok/s",
                    digits=0,
                    measured=what,
                ),
                "latency_p50_ms": rec(
                    _stat(s, ("latency_ms", "e2el_ms"), "p50"), "ms", measured=f"{what} latency p50"
                ),
                "latency_p99_ms": rec(
                    _stat(s, ("latency_ms", "e2el_ms"), "p99"), "ms", measured=f"{what} latency p99"
                ),
            }
        )
    retrieval = _suite(quality, "retrieval")
    section: dict[str, Any] = {
        "bench_available": bench is not None,
        "workload": workload_kind(bench),
        "levels": levels,
    }
    if retrieval:
        r1 = retrieval.get("recall@1", retrieval.get("recall_at_1"))
        mrr = retrieval.get("mrr", retrieval.get("MRR"))
        n = int(retrieval.get("queries") or retrieval.get("problems") or 0)
        se = math.sqrt(r1 * (1 - r1) / n) if r1 is not None and n else None
        what = f"models/{model['name']}/quality retrieval ({n} queries)"
        r5 = retrieval.get("recall@5")
        chance = retrieval.get("chance") or {}
        sanity = retrieval.get("sanity") or {}
        section["retrieval"] = {
            "queries": rec(n, "", digits=0, measured=what),
            "recall_at_1": rec(None if r1 is None else 100 * r1, "%", measured=what),
            "recall_at_5": rec(None if r5 is None else 100 * r5, "%", measured=what),
            "mrr": rec(mrr, "", digits=3, measured=what),
            "stderr": rec(None if se is None else 100 * se, "pts", measured=f"{what}: binomial SE"),
            "chance_recall_at_1": rec(
                None if chance.get("recall@1") is None else 100 * chance["recall@1"],
                "%",
                measured=f"{what}: 1 / documents",
            ),
            "chance_mrr": rec(chance.get("mrr"), "", digits=3, measured=f"{what}: a random ranking"),
            "texts_per_s": rec(
                (retrieval.get("embeddings") or {}).get("texts_per_s"),
                "texts/s",
                measured=f"{what}: queries and documents embedded one request at a time",
            ),
            "sanity_rule": sanity.get("rule"),
            "sanity_passed": sanity.get("passed"),
        }
        section["result"] = _result(f"retrieval recall@1 ({n} queries)", r1, se)
    else:
        section["retrieval"] = None
    return section


def model_sections(
    meta: dict[str, Any], inputs: dict[str, dict[str, Any]], config: dict[str, Any]
) -> list[dict[str, Any]]:
    """One entry per served model; `inputs` maps a served name to {bench, quality} documents."""
    out = []
    for model in served_models(meta):
        entry: dict[str, Any] = {"model": model, "role": model.get("role", "chat")}
        data = inputs.get(str(model.get("name"))) or {}
        if entry["role"] == "autocomplete":
            entry["autocomplete"] = autocomplete_section(
                model, data.get("bench"), data.get("quality"), config
            )
        elif entry["role"] == "embed":
            entry["embed"] = embed_section(model, data.get("bench"), data.get("quality"))
        elif entry["role"] != "chat":
            entry["note"] = f"the report does not measure the {entry['role']} role yet"
        out.append(entry)
    return out


def results_by_role(sections: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    out = {}
    for s in sections:
        part = s.get(s["role"]) if s["role"] in ("autocomplete", "embed") else None
        if part and part.get("result"):
            out[s["role"]] = part["result"]
    return out


def _chat(meta: dict[str, Any]) -> dict[str, Any] | None:
    return next((m for m in served_models(meta) if m.get("role", "chat") == "chat"), None)


def cohosting_section(
    report_meta: dict[str, Any], perf: dict[str, Any], history: list[dict[str, Any]]
) -> dict[str, Any]:
    """The chat model co-hosted (this run) against its latest run alone on this host (history)."""
    now = served_models(report_meta)
    chat = _chat(report_meta)
    if len(now) < 2 or chat is None:
        return {"applies": False, "reason": "one model served: nothing is co-hosted"}
    alone = [
        h
        for h in history
        if len(served_models(h.get("metadata") or {})) == 1
        and (_chat(h.get("metadata") or {}) or {}).get("id") == chat.get("id")
        and (h.get("performance") or {}).get("available")
    ]
    if not alone:
        return {
            "applies": True,
            "available": False,
            "reason": (
                "no run of the chat model alone on record on this host: deploy it alone once "
                "(vm_llm_aimachine_models with "
                "one entry) and verify, and the next co-hosted report compares the two"
            ),
        }
    base = max(alone, key=lambda h: h.get("generated_at") or "")
    when = base.get("generated_at")
    before = {lv["name"]: lv for lv in (base.get("performance") or {}).get("levels") or []}
    rows = []
    for lv in perf.get("levels") or []:
        old = before.get(lv["name"])
        if not old:
            continue
        a, c = old.get("output_tokens_per_s"), lv.get("output_tokens_per_s")
        rows.append(
            {
                "level": lv["name"],
                "alone_tokens_per_s": rec(
                    a, "tok/s", measured=f"this host's run alone at {when}, level {lv['name']}"
                ),
                "cohosted_tokens_per_s": rec(c, "tok/s", measured=f"this run, level {lv['name']}"),
                "change": rec(
                    None if not a or c is None else 100 * (c - a) / a,
                    "%",
                    measured="computed: co-hosted / alone - 1",
                    digits=1,
                ),
                "alone_ttft_p99_ms": rec(
                    old.get("ttft_p99_ms"), "ms", measured=f"this host's run alone at {when}"
                ),
                "cohosted_ttft_p99_ms": rec(lv.get("ttft_p99_ms"), "ms", measured="this run"),
            }
        )
    kv_now = chat.get("kv_cache_tokens")
    kv_before = (_chat(base.get("metadata") or {}) or {}).get("kv_cache_tokens")
    kv = None
    if kv_now is not None and kv_before is not None:
        kv = {
            "alone": rec(kv_before, "tokens", digits=0, measured=f"published by the host role at {when}"),
            "cohosted": rec(kv_now, "tokens", digits=0, measured="published by the host role for this run"),
            "change": rec(
                100 * (kv_now - kv_before) / kv_before if kv_before else None, "%", measured="computed"
            ),
        }
    return {"applies": True, "available": True, "baseline": when, "levels": rows, "kv_cache": kv}
