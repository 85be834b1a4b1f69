"""Improvement strategies from the catalog and the serving profile, each with numbers: measured on
this host where its history has a run of that model, published (with the source) where not.

The single-stream bound of another model on this card is this card's memory bandwidth (measured
through NVML) over the bytes a decode step reads, approximated by the model's weights on disk
(the catalog's weights_gb; a decode step reads every quantized layer and the output head).
Speculative decoding's comparison comes from `aimachine.report.speculation` (written with the
serving profile): its result is shown when the module gives one, else it says "not measured".
"""

from __future__ import annotations

import importlib
from typing import Any

from aimachine.report.records import rec


def _published(entry: dict[str, Any], benchmark: str) -> dict[str, Any] | None:
    for s in entry.get("scores") or []:
        if str(s.get("benchmark", "")).lower() == benchmark.lower():
            return s
    return None


def _history_run(history: list[dict[str, Any]], key: str) -> dict[str, Any] | None:
    runs = [h for h in history if ((h.get("metadata") or {}).get("model") or {}).get("catalog_key") == key]
    return max(runs, key=lambda h: h.get("generated_at") or "") if runs else None


def _speculation(
    meta: dict[str, Any], bench: dict[str, Any] | None, history: list[dict[str, Any]]
) -> dict[str, Any]:
    try:
        module = importlib.import_module("aimachine.report.speculation")
    except ImportError:
        return {"available": False, "reason": "no speculative-decoding comparison in this version"}
    fn = getattr(module, "report_section", None) or getattr(module, "compare", None)
    if fn is None:
        return {"available": False, "reason": "aimachine.report.speculation offers no report_section()"}
    result = fn(meta=meta, bench=bench, history=history)
    if not result:
        return {"available": False, "reason": "not measured on this host"}
    return {"available": True, **result}


def strategies_section(
    meta: dict[str, Any],
    perf: dict[str, Any],
    history: list[dict[str, Any]],
    refs: dict[str, Any],
    bench: dict[str, Any] | None,
) -> dict[str, Any]:
    catalog = meta.get("catalog") or {}
    deployed = (meta.get("model") or {}).get("catalog_key")
    roof = perf.get("roofline") or {}
    bandwidth = roof.get("bandwidth_gbs") if roof.get("available") else None
    rows = []
    for key, entry in catalog.items():
        if key == deployed or entry.get("role", "chat") != "chat":
            continue
        where = f"catalog entry {key}"
        row: dict[str, Any] = {
            "key": key,
            "description": entry.get("description"),
            "weights_gb": rec(
                entry.get("weights_gb"),
                "GB",
                digits=2,
                source=f"{where}: {entry.get('weights_evidence', 'catalog')}",
            ),
            "gpus": rec(entry.get("tensor_parallel_size") or 1, "", digits=0, source=where),
            "vram_per_gpu_gib": rec(
                (entry.get("vram_per_gpu_gib") or {}).get("context_32768"),
                "GiB",
                digits=2,
                source=f"{where}: llm_sizing at 32,768 tokens of context",
            ),
            "min_compute_capability": entry.get("min_compute_capability"),
        }
        for bench_name in ("HumanEval", "MBPP"):
            s = _published(entry, bench_name)
            row[bench_name.lower()] = (
                rec(s["score"], "%", source=f"{s.get('model')}: {s.get('source')}") if s else rec(None)
            )
        others = [
            s for s in entry.get("scores") or [] if s.get("benchmark") in ("LiveCodeBench v5 2410-2502",)
        ]
        row["other_published"] = [
            {
                "benchmark": s["benchmark"],
                "model": s.get("model"),
                "score": rec(s["score"], "", source=s.get("source")),
            }
            for s in others
        ]
        row["scores_note"] = entry.get("scores_note")
        if bandwidth and entry.get("weights_gb"):
            tp = int(entry.get("tensor_parallel_size") or 1)
            bound = float(bandwidth) * tp / float(entry["weights_gb"])
            row["bound_tokens_per_s"] = rec(
                bound,
                "tok/s",
                digits=0,
                measured=(
                    f"computed: {float(bandwidth):g} GB/s (this card, {roof.get('bandwidth_source')}) x "
                    f"{tp} GPU(s) / "
                    f"{float(entry['weights_gb']):g} GB of weights"
                ),
            )
        else:
            row["bound_tokens_per_s"] = rec(None)
        run = _history_run(history, key)
        if run:
            m = run.get("metrics") or {}
            when = run.get("generated_at")
            row["measured_here"] = {
                "generated_at": when,
                "humaneval": rec(
                    None if m.get("humaneval_pass_at_1") is None else 100 * m["humaneval_pass_at_1"],
                    "%",
                    measured=f"this host's run of {key} at {when}",
                ),
                "single_stream_tokens_per_s": rec(
                    m.get("single_stream_tokens_per_s"),
                    "tok/s",
                    measured=f"this host's run of {key} at {when}",
                ),
            }
        rows.append(row)
    current = None
    if deployed and deployed in catalog:
        entry = catalog[deployed]
        current = {
            "key": deployed,
            "weights_gb": rec(entry.get("weights_gb"), "GB", digits=2, source=f"catalog entry {deployed}"),
        }
    profile = refs.get("profile_measured") or {}
    return {
        "models": rows,
        "deployed": current,
        "catalog_available": bool(catalog),
        "profile": [
            {
                "streams": rec(p["streams"], "streams", digits=0, source=profile.get("source")),
                "profile_tokens_per_s": rec(
                    p["profile_tokens_per_s"], "tok/s", digits=0, source=profile.get("source")
                ),
                "defaults_tokens_per_s": rec(
                    p["defaults_tokens_per_s"], "tok/s", digits=0, source=profile.get("source")
                ),
                "profile_ttft_mean_ms": rec(
                    p["profile_ttft_mean_ms"], "ms", digits=0, source=profile.get("source")
                ),
                "defaults_ttft_mean_ms": rec(
                    p["defaults_ttft_mean_ms"], "ms", digits=0, source=profile.get("source")
                ),
            }
            for p in profile.get("rows") or []
        ],
        "speculation": _speculation(meta, bench, history),
    }
