"""Build the report's data (report.json) from a bench run, a quality run and the host's metadata.

Every number in the report is taken from those inputs or from a published reference that
carries its source; nothing is estimated. What was not measured is said to be missing.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import resources
from typing import Any

import yaml

from aimachine import __version__
from aimachine.report import SCHEMA_VERSION, assess
from aimachine.report.capacity import capacity_section
from aimachine.report.cost import cost_section, value_section
from aimachine.report.gates import evaluate_gates
from aimachine.report.models import cohosting_section, model_sections, results_by_role
from aimachine.report.records import rec
from aimachine.report.speculation import report_section as speculation_section
from aimachine.report.strategies import strategies_section

# Metrics kept flat in report.json: gates, the previous-run diff and the trend read these.
# better: which direction is an improvement; unit: how the Markdown shows it.
METRICS: dict[str, dict[str, str]] = {
    "humaneval_pass_at_1": {"better": "higher", "unit": "fraction", "label": "HumanEval pass@1"},
    "mbpp_pass_at_1": {"better": "higher", "unit": "fraction", "label": "MBPP pass@1"},
    "scenarios_percent": {"better": "higher", "unit": "%", "label": "Practical scenarios"},
    "single_stream_tokens_per_s": {
        "better": "higher",
        "unit": "tok/s",
        "label": "Single-stream decode speed",
    },
    "peak_output_tokens_per_s": {"better": "higher", "unit": "tok/s", "label": "Peak output throughput"},
    "ttft_p50_ms": {"better": "lower", "unit": "ms", "label": "TTFT p50 (single stream)"},
    "ttft_p99_ms": {"better": "lower", "unit": "ms", "label": "TTFT p99 (single stream)"},
    "tpot_p50_ms": {"better": "lower", "unit": "ms", "label": "TPOT p50 (single stream)"},
    "error_rate": {"better": "lower", "unit": "fraction", "label": "Error rate"},
    "roofline_percent": {"better": "higher", "unit": "%", "label": "Roofline (% of bound)"},
    "electricity_per_million_tokens": {
        "better": "lower",
        "unit": "currency",
        "label": "Electricity per 1M output tokens (single stream)",
    },
}

DEFAULT_CONFIG: dict[str, Any] = {
    "gates": [],
    "regression_tolerance_percent": 10.0,
    "cost": {},
}


def references() -> dict[str, Any]:
    text = resources.files("aimachine.report").joinpath("data/references.yaml").read_text(encoding="utf-8")
    return yaml.safe_load(text)


def binomial_stderr(p: float, n: int) -> float:
    """Standard error of a pass rate p over n problems: sqrt(p(1-p)/n)."""
    return math.sqrt(p * (1.0 - p) / n) if n > 0 else float("nan")


@dataclass
class Inputs:
    meta: dict[str, Any]
    bench: dict[str, Any] | None
    quality: dict[str, Any] | None
    # quality/samples.jsonl: the model's answers (the scenarios' are shown in the report)
    samples: list[dict[str, Any]] | None = None
    # the other served models: served name -> {"bench": bench.json, "quality": summary.json}
    models: dict[str, dict[str, Any]] | None = None
    # speculative decoding measured both ways: "off" / method -> bench.json (report/speculation.py)
    speculation: dict[str, dict[str, Any]] | None = None


def _published(meta: dict[str, Any], benchmark: str) -> list[dict[str, Any]]:
    """The deployed model's published scores for a benchmark (the catalog's, passed in the metadata)."""
    scores = (meta.get("model") or {}).get("published_scores") or []
    return [s for s in scores if str(s.get("benchmark", "")).lower() == benchmark.lower()]


def _quality_section(inputs: Inputs, refs: dict[str, Any]) -> dict[str, Any]:
    quality = inputs.quality
    section: dict[str, Any] = {"available": quality is not None, "suites": {}, "not_run": []}
    if quality is None:
        section["reason"] = "no quality results in this run"
        return section
    suites = quality.get("suites") or {}
    names = {"humaneval": "HumanEval", "mbpp": "MBPP"}
    for suite, label in names.items():
        s = suites.get(suite)
        if s is None:
            section["not_run"].append(label)
            continue
        p = s.get("pass@1")
        n = int(s.get("problems") or 0)
        section["suites"][suite] = {
            "label": label,
            "problems": n,
            "samples_per_problem": s.get("samples_per_problem"),
            "passed_samples": s.get("passed_samples"),
            "pass_at_1": p,
            "stderr": None if p is None else binomial_stderr(float(p), n),
            "error_kinds": s.get("error_kinds") or {},
            "published": _published(inputs.meta, label),
            "frontier": list((refs.get("frontier") or {}).get(suite) or []),
            # A subset is not the benchmark: say so wherever the number appears.
            "subset": bool(
                (quality.get("settings") or {}).get("limit")
                or (quality.get("settings") or {}).get("task_ids")
            ),
        }
    settings = quality.get("settings") or {}
    section["settings"] = {
        k: settings.get(k) for k in ("mode", "samples", "temperature", "max_tokens", "limit", "seed")
    }
    section["isolation"] = settings.get("sandbox") or {}
    section["sandbox"] = isolation_text(section["isolation"])
    section["wall_time_s"] = quality.get("wall_time_s")
    return section


def _scenarios_section(inputs: Inputs, refs: dict[str, Any]) -> dict[str, Any]:
    scenarios = (inputs.quality or {}).get("scenarios")
    origin = refs.get("origin_document") or {}
    if not scenarios:
        return {"available": False, "reason": "the practical scenarios were not run"}
    answers = {
        str(r.get("id")): r
        for r in inputs.samples or []
        if r.get("id") is not None and "completion" in r and r.get("suite", "scenarios") == "scenarios"
    }
    sota = refs.get("scenario_sota_expected") or {}
    items = []
    for item in scenarios.get("items") or []:
        expected = (sota.get("percent") or {}).get(item.get("id"))
        answer = answers.get(str(item.get("id")))
        percent = item.get("percent")
        where = f"quality/summary.json scenario {item.get('id')}"
        items.append(
            {
                "id": item.get("id"),
                "title": item.get("title"),
                "points": item.get("points"),
                "max_points": item.get("max_points"),
                "percent": percent,
                "percent_rec": rec(percent, "%", measured=where),
                "sota_expected": rec(expected, "%", digits=0, source=sota.get("source")),
                "gap": rec(
                    None if expected is None or percent is None else float(percent) - float(expected),
                    "pts",
                    measured=f"computed: {where} minus the origin document's SOTA estimate",
                ),
                "answer": None if answer is None else answer.get("completion"),
                "answer_source": None if answer is None else "quality/samples.jsonl",
                "origin_reported_percent": item.get("origin_reported_percent"),
                "criteria": [
                    {
                        "id": c.get("id"),
                        "description": c.get("description"),
                        "points": c.get("points"),
                        "max_points": c.get("max_points"),
                        "evidence": c.get("evidence"),
                    }
                    for c in item.get("criteria") or []
                ],
            }
        )
    return {
        "available": True,
        "points": scenarios.get("points"),
        "max_points": scenarios.get("max_points"),
        "percent": scenarios.get("percent"),
        "items": items,
        "origin_percent": origin.get("practical_scenarios_percent"),
        "origin_source": origin.get("practical_scenarios_source"),
    }


def _level_row(level: dict[str, Any], telemetry: dict[str, Any]) -> dict[str, Any]:
    s = level["summary"]

    def stat(key: str, name: str) -> float | None:
        value = (s.get(key) or {}).get(name)
        return None if value is None else float(value)

    power = None
    per_level = (telemetry.get("per_level") or {}).get(level["name"]) if telemetry.get("available") else None
    if per_level:
        watts = [gpu["power_w"]["mean"] for gpu in per_level.values() if gpu["power_w"]["mean"] is not None]
        power = sum(watts) if watts else None
    total = int(s.get("completed") or 0) + int(s.get("errors") or 0)
    return {
        "name": level["name"],
        "concurrency": level.get("concurrency"),
        "request_rate": level.get("request_rate"),
        "requests": total,
        "completed": s.get("completed"),
        "errors": s.get("errors"),
        "output_tokens_per_s": s.get("output_throughput"),
        "requests_per_s": s.get("request_throughput"),
        "decode_tokens_per_s_per_stream": s.get("decode_tokens_per_s_per_stream"),
        "ttft_p50_ms": stat("ttft_ms", "p50"),
        "ttft_p99_ms": stat("ttft_ms", "p99"),
        "tpot_p50_ms": stat("tpot_ms", "p50"),
        "tpot_p99_ms": stat("tpot_ms", "p99"),
        "itl_p50_ms": stat("itl_ms", "p50"),
        "e2el_p50_ms": stat("e2el_ms", "p50"),
        "e2el_p99_ms": stat("e2el_ms", "p99"),
        "gpu_power_w_mean": power,
    }


def _performance_section(inputs: Inputs) -> dict[str, Any]:
    bench = inputs.bench
    if bench is None:
        return {"available": False, "reason": "no benchmark results in this run"}
    telemetry = bench.get("telemetry") or {}
    levels = [_level_row(level, telemetry) for level in bench.get("levels") or []]
    roof = bench.get("roofline") or {}
    roofline = {
        "available": bool(roof.get("available")),
        "reason": roof.get("reason"),
        "bandwidth_gbs": roof.get("bandwidth_gbs"),
        "bandwidth_source": roof.get("bandwidth_source"),
        "gpu_name": roof.get("gpu_name"),
        "decode_step_bytes": roof.get("decode_step_bytes")
        or (roof.get("model_bytes") or {}).get("decode_step_bytes"),
        "bound_tokens_per_s": roof.get("bound_tokens_per_s"),
        "measured_tokens_per_s": roof.get("measured_tokens_per_s"),
        "percent_of_bound": roof.get("percent_of_bound"),
    }
    return {
        "available": True,
        "workload": (bench.get("workload") or {}).get("description"),
        "started_at": bench.get("started_at"),
        "engine_reported": (bench.get("server") or {}).get("engine"),
        "levels": levels,
        "roofline": roofline,
        "telemetry": {
            "available": bool(telemetry.get("available")),
            "reason": telemetry.get("reason"),
            "devices": telemetry.get("devices"),
            "achieved_hz": telemetry.get("achieved_hz"),
        },
        "warmup": bench.get("warmup"),
    }


def isolation_text(iso: dict[str, Any]) -> str | None:
    """The sandbox's isolation in one phrase; a partial one says so first (issue #17)."""
    if not iso:
        return None
    if "full" not in iso:  # a summary from before bubblewrap: it recorded a mode only
        return f"PARTIAL ISOLATION: {iso.get('mode')} mode, recorded before bubblewrap"
    namespaces = ", ".join(iso.get("namespaces") or []) or "none"
    uid = "a dedicated uid" if iso.get("host_uid") == "dedicated" else "the caller's uid"
    text = f"{iso.get('tool')}, {iso.get('mode')} mode as {uid}, namespaces: {namespaces}"
    if iso.get("full"):
        return text
    return f"PARTIAL ISOLATION (missing {', '.join(iso.get('missing') or [])}): {text}"


def _isolation_metrics(quality: dict[str, Any]) -> dict[str, Any]:
    iso = quality.get("isolation")
    if not iso:
        return {"sandbox_isolation_full": None, "sandbox_isolation_missing": []}
    if "full" not in iso:
        # A summary from before the isolation was recorded in full: flagged in the text, not gated.
        return {"sandbox_isolation_full": None, "sandbox_isolation_missing": []}
    return {
        "sandbox_isolation_full": bool(iso["full"]),
        "sandbox_isolation_missing": list(iso.get("missing") or []),
    }


def _metrics(quality: dict[str, Any], scenarios: dict[str, Any], perf: dict[str, Any]) -> dict[str, Any]:
    m: dict[str, Any] = dict.fromkeys(METRICS)
    m.update(_isolation_metrics(quality))
    for suite in ("humaneval", "mbpp"):
        s = quality.get("suites", {}).get(suite)
        if s:
            m[f"{suite}_pass_at_1"] = s["pass_at_1"]
            m[f"{suite}_stderr"] = s["stderr"]
            m[f"{suite}_problems"] = s["problems"]
    if scenarios.get("available"):
        m["scenarios_percent"] = scenarios["percent"]
    levels = perf.get("levels") or []
    single = next((lv for lv in levels if lv["concurrency"] == 1), None)
    if single:
        m["single_stream_tokens_per_s"] = single["decode_tokens_per_s_per_stream"]
        m["ttft_p50_ms"] = single["ttft_p50_ms"]
        m["ttft_p99_ms"] = single["ttft_p99_ms"]
        m["tpot_p50_ms"] = single["tpot_p50_ms"]
    if levels:
        peak = max(levels, key=lambda lv: lv["output_tokens_per_s"] or 0.0)
        m["peak_output_tokens_per_s"] = peak["output_tokens_per_s"]
        m["peak_level"] = peak["name"]
        requests = sum(lv["requests"] for lv in levels)
        m["error_rate"] = sum(int(lv["errors"] or 0) for lv in levels) / requests if requests else None
        m["bench_requests"] = requests
    roof = perf.get("roofline") or {}
    if roof.get("available"):
        m["roofline_percent"] = roof.get("percent_of_bound")
    m["per_level"] = {lv["name"]: lv for lv in levels}
    return m


def _precision(model: dict[str, Any], refs: dict[str, Any]) -> tuple[str, int | None]:
    name = str(model.get("quantization") or model.get("dtype") or "unknown").lower()
    return name, (refs.get("precision_rank") or {}).get(name)


def _quantization_section(
    meta: dict[str, Any], metrics: dict[str, Any], history: list[dict[str, Any]], refs: dict[str, Any]
) -> dict[str, Any]:
    model = meta.get("model") or {}
    base = model.get("base_model") or model.get("id")
    name, rank = _precision(model, refs)
    section: dict[str, Any] = {
        "base_model": base,
        "precision": name,
        "published": refs.get("quantization") or [],
    }
    candidates = []
    for old in history:
        old_model = (old.get("metadata") or {}).get("model") or {}
        old_name, old_rank = _precision(old_model, refs)
        if (old_model.get("base_model") or old_model.get("id")) != base or old_rank is None or rank is None:
            continue
        if old_rank > rank:
            candidates.append((old.get("generated_at") or "", old, old_name))
    if not candidates:
        section["status"] = "no record"
        section["text"] = (
            f"No record of a higher-precision run of {base} on this host (this run: {name}); "
            "the quantization loss is not measured here."
        )
        return section
    _, record, record_name = max(candidates, key=lambda c: c[0])
    rows = []
    for suite in ("humaneval", "mbpp"):
        now, before = (
            metrics.get(f"{suite}_pass_at_1"),
            (record.get("metrics") or {}).get(f"{suite}_pass_at_1"),
        )
        if now is None or before is None:
            continue
        se_now = metrics.get(f"{suite}_stderr") or 0.0
        se_before = (record.get("metrics") or {}).get(f"{suite}_stderr") or 0.0
        rows.append(
            {
                "suite": suite,
                "higher_precision": before,
                "this_run": now,
                "difference": now - before,
                "stderr_of_difference": math.sqrt(se_now**2 + se_before**2),
            }
        )
    section.update(
        status="record",
        record={
            "generated_at": record.get("generated_at"),
            "precision": record_name,
            "model": (record.get("metadata") or {}).get("model", {}).get("id"),
        },
        rows=rows,
    )
    return section


def _changes(
    metrics: dict[str, Any], meta: dict[str, Any], history: list[dict[str, Any]], tolerance: float
) -> dict[str, Any]:
    if not history:
        return {"previous": None, "rows": [], "text": "No previous run of this host on record."}
    previous = max(history, key=lambda r: r.get("generated_at") or "")
    old = previous.get("metrics") or {}
    rows = []
    for key, spec in METRICS.items():
        now, before = metrics.get(key), old.get(key)
        if now is None or before is None:
            continue
        delta = now - before
        worse = -delta if spec["better"] == "higher" else delta
        # Relative tolerance; pass@1 changes must also exceed twice the standard error of the
        # difference (one HumanEval run cannot resolve small changes), error rate is absolute.
        limit = 0.01 if key == "error_rate" else abs(before) * tolerance / 100.0
        if key.endswith("_pass_at_1"):
            suite = key.removesuffix("_pass_at_1")
            se = math.sqrt(
                (metrics.get(f"{suite}_stderr") or 0.0) ** 2 + (old.get(f"{suite}_stderr") or 0.0) ** 2
            )
            limit = max(limit, 2 * se)
        rows.append(
            {
                "metric": key,
                "label": spec["label"],
                "previous": before,
                "current": now,
                "delta": delta,
                "delta_percent": None if before == 0 else 100.0 * delta / abs(before),
                "regression": worse > limit,
                "improvement": -worse > limit,
                "allowed": limit,
            }
        )
    prev_meta = previous.get("metadata") or {}
    return {
        "previous": {
            "generated_at": previous.get("generated_at"),
            "run_mode": prev_meta.get("run_mode"),
            "fingerprint": prev_meta.get("fingerprint"),
            "same_deployment": prev_meta.get("fingerprint") == meta.get("fingerprint"),
        },
        "rows": rows,
        "regressions": [r["metric"] for r in rows if r["regression"]],
        "tolerance_percent": tolerance,
    }


def _trend(
    metrics: dict[str, Any], meta: dict[str, Any], generated_at: str, history: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    points = [
        {
            "generated_at": r.get("generated_at"),
            "run_mode": (r.get("metadata") or {}).get("run_mode"),
            "fingerprint": (r.get("metadata") or {}).get("fingerprint"),
            "metrics": {k: (r.get("metrics") or {}).get(k) for k in METRICS},
        }
        for r in history
    ]
    points.append(
        {
            "generated_at": generated_at,
            "run_mode": meta.get("run_mode"),
            "fingerprint": meta.get("fingerprint"),
            "metrics": {k: metrics.get(k) for k in METRICS},
        }
    )
    return sorted(points, key=lambda p: p["generated_at"] or "")


# Below this many bytes of weights a model is a test model (the generated tiny model has 0.9 MB).
TEST_MODEL_BYTES = 50_000_000


def _label(meta: dict[str, Any], bench: dict[str, Any] | None) -> dict[str, Any]:
    mode = str(meta.get("mode") or "unknown")
    weights = (((bench or {}).get("roofline") or {}).get("model_bytes") or {}).get("weights_bytes")
    test_model = bool((meta.get("model") or {}).get("test_model")) or (
        weights is not None and weights < TEST_MODEL_BYTES
    )
    banner = None
    if mode == "cpu" or test_model:
        parts = []
        if mode == "cpu":
            parts.append("CPU MODE: served by a CPU engine (transformers serve), not by vLLM on a GPU")
        if test_model:
            size = f" ({weights / 1e6:.1f} MB of weights)" if weights is not None else ""
            parts.append(
                f"TEST MODEL{size}: a tiny test model, not a coding model; its quality scores mean nothing "
                "and its speed says nothing about a real model"
            )
        banner = "; ".join(parts) + ". The numbers below are real measurements of this setup only."
    return {"mode": mode, "test_model": test_model, "weights_bytes": weights, "banner": banner}


def _pct_rec(fraction: float | None, what: str, digits: int = 1) -> dict[str, Any]:
    return rec(None if fraction is None else 100.0 * fraction, "%", digits=digits, measured=what)


def _quality_rows(report: dict[str, Any]) -> list[dict[str, Any]]:
    """HumanEval and MBPP pass@1 beside the published scores, and the practical scenarios."""
    rows: list[dict[str, Any]] = []
    quality = report["quality"]
    for suite in ("humaneval", "mbpp"):
        s = quality.get("suites", {}).get(suite)
        label = {"humaneval": "HumanEval", "mbpp": "MBPP"}[suite]
        if s is None:
            rows.append(
                {
                    "metric": f"{label} pass@1",
                    "measured": rec(None),
                    "note": "not run in this mode",
                    "references": [],
                }
            )
            continue
        what = f"quality/summary.json {suite}, {s['problems']} problems"
        refs = [
            {
                "name": f"{p.get('model')} (published)",
                "value": rec(p.get("score"), "%", source=p.get("source")),
            }
            for p in s["published"]
        ]
        refs += [
            {"name": f["model"], "value": rec(f["percent"], "%", source=f["source"])} for f in s["frontier"]
        ]
        rows.append(
            {
                "metric": f"{label} pass@1",
                "measured": _pct_rec(s["pass_at_1"], what),
                "stderr": rec(
                    None if s["stderr"] is None else 100 * s["stderr"], "pts", measured=f"{what}: binomial SE"
                ),
                "note": "a subset" if s["subset"] else "all problems",
                "problems": rec(s["problems"], "problems", digits=0, measured=what),
                "references": refs,
            }
        )
    sc = report["scenarios"]
    rows.append(
        {
            "metric": "Practical scenarios",
            "measured": rec(
                sc.get("percent") if sc.get("available") else None,
                "%",
                measured="quality/summary.json scenarios",
            ),
            "note": "rubric points" if sc.get("available") else sc.get("reason"),
            "references": [
                {
                    "name": "origin document (hand-scored)",
                    "value": rec(sc.get("origin_percent"), "%", source=sc.get("origin_source")),
                }
            ]
            if sc.get("available")
            else [],
        }
    )
    return rows


def _speed_rows(report: dict[str, Any]) -> list[dict[str, Any]]:
    """Decode speed against the bandwidth bound, peak throughput, TTFT, capacity and errors."""
    rows: list[dict[str, Any]] = []
    m = report["metrics"]
    roof = report["performance"].get("roofline") or {}
    rows.append(
        {
            "metric": "Single-stream decode speed",
            "measured": rec(
                m.get("single_stream_tokens_per_s"),
                "tok/s",
                measured="bench level c1 decode tokens/s per stream",
            ),
            "note": "" if roof.get("available") else f"roofline: {roof.get('reason') or 'not available'}",
            "references": [
                {
                    "name": "memory-bandwidth bound",
                    "value": rec(
                        roof.get("bound_tokens_per_s"),
                        "tok/s",
                        digits=0,
                        measured=f"bench roofline: {roof.get('bandwidth_gbs')} GB/s "
                        f"({roof.get('bandwidth_source')}) / "
                        f"{roof.get('decode_step_bytes')} bytes a decode step",
                    ),
                },
                {
                    "name": "share of the bound",
                    "value": rec(roof.get("percent_of_bound"), "%", digits=0, measured="bench roofline"),
                },
            ]
            if roof.get("available")
            else [],
        }
    )
    rows.append(
        {
            "metric": "Peak output throughput",
            "measured": rec(
                m.get("peak_output_tokens_per_s"), "tok/s", measured=f"bench level {m.get('peak_level')}"
            ),
            "note": f"at level {m.get('peak_level')}" if m.get("peak_level") else "not measured",
            "references": [],
        }
    )
    rows.append(
        {
            "metric": "TTFT p50 / p99 (single stream)",
            "measured": rec(m.get("ttft_p50_ms"), "ms", measured="bench level c1 TTFT p50"),
            "measured_2": rec(m.get("ttft_p99_ms"), "ms", measured="bench level c1 TTFT p99"),
            "note": "",
            "references": [],
        }
    )
    cap = report.get("capacity") or {}
    if cap.get("available"):
        rows.append(
            {
                "metric": "Chat capacity within the SLO",
                "measured": cap["sustained_concurrency"],
                "measured_2": cap.get("developers"),
                "note": ("at least (the highest level measured met it); " if cap.get("lower_bound") else "")
                + "streams / developers at the stated load",
                "references": [],
            }
        )
    rows.append(
        {
            "metric": "Error rate",
            "measured": rec(
                None if m.get("error_rate") is None else 100.0 * m["error_rate"],
                "%",
                measured="bench, all levels",
            ),
            "note": "benchmark requests",
            "requests": rec(m.get("bench_requests"), "requests", digits=0, measured="bench, all levels"),
            "references": [],
        }
    )
    return rows


def _cost_rows(report: dict[str, Any]) -> list[dict[str, Any]]:
    """Electricity per 1M output tokens beside the APIs it breaks even with."""
    rows: list[dict[str, Any]] = []
    cost = report["cost"]
    if cost.get("available"):
        single = cost.get("single_stream") or {}
        rows.append(
            {
                "metric": f"Electricity per 1M output tokens (single stream, {cost['currency']})",
                "measured": rec(
                    single.get("electricity_per_million"),
                    cost["currency"],
                    digits=4,
                    measured=f"cost section ({cost['power']['source']})",
                ),
                "note": "",
                "references": [
                    {
                        "name": f"API: {api['name']}",
                        "value": rec(
                            api["price_per_million"], cost["currency"], digits=2, source=api.get("source")
                        ),
                    }
                    for api in cost.get("break_even") or []
                ],
            }
        )
    else:
        rows.append(
            {
                "metric": "Cost per 1M output tokens",
                "measured": rec(None),
                "note": cost.get("reason"),
                "references": [],
            }
        )
    return rows


def _summary_rows(report: dict[str, Any]) -> list[dict[str, Any]]:
    """The executive summary: each measured value beside its published reference and source."""
    return _quality_rows(report) + _speed_rows(report) + _cost_rows(report)


def _humaneval_table(
    quality: dict[str, Any], meta: dict[str, Any], refs: dict[str, Any]
) -> list[dict[str, Any]]:
    """HumanEval: this host, the deployed model's published score, 7-8B peers, catalog models, frontier."""
    rows = []
    s = (quality.get("suites") or {}).get("humaneval")
    model = meta.get("model") or {}
    if s:
        rows.append(
            {
                "model": f"{model.get('id')} on this host",
                "kind": "measured" + (" (a subset)" if s["subset"] else ""),
                "size": None,
                "score": _pct_rec(
                    s["pass_at_1"], f"quality/summary.json humaneval, {s['problems']} problems"
                ),
                "stderr": rec(
                    None if s["stderr"] is None else 100 * s["stderr"], "pts", measured="binomial SE"
                ),
            }
        )
    for p in _published(meta, "HumanEval"):
        rows.append(
            {
                "model": p.get("model"),
                "kind": "published (the deployed model)",
                "size": None,
                "score": rec(p.get("score"), "%", source=p.get("source")),
            }
        )
    seen = {r["model"] for r in rows}
    for peer in refs.get("peers") or []:
        if peer["model"] in seen or any(str(x).startswith(peer["model"]) for x in seen):
            continue
        rows.append(
            {
                "model": peer["model"],
                "kind": "published (7-8B class)",
                "size": peer.get("size"),
                "score": rec(peer["humaneval"], "%", source=peer["source"]),
            }
        )
    for key, entry in (meta.get("catalog") or {}).items():
        if key == model.get("catalog_key") or entry.get("role", "chat") != "chat":
            continue
        score = next(
            (x for x in entry.get("scores") or [] if str(x.get("benchmark")).lower() == "humaneval"), None
        )
        rows.append(
            {
                "model": f"{entry.get('repo_id') or key} (catalog: {key})",
                "kind": "published (catalog)" if score else "catalog: no HumanEval published",
                "size": None,
                "score": rec(score["score"], "%", source=f"{score.get('model')}: {score.get('source')}")
                if score
                else rec(None),
            }
        )
    for f in (refs.get("frontier") or {}).get("humaneval") or []:
        rows.append(
            {
                "model": f["model"],
                "kind": "frontier (cloud only)",
                "size": None,
                "score": rec(f["percent"], "%", source=f["source"]),
            }
        )
    return rows


def _swe_bench(refs: dict[str, Any]) -> dict[str, Any]:
    return {
        "frontier": [
            {"model": f["model"], "score": rec(f["percent"], "%", source=f["source"])}
            for f in (refs.get("frontier") or {}).get("swe_bench_verified") or []
        ],
        "small": [
            {"model": f["model"], "score": rec(f["percent"], "%", source=f["source"])}
            for f in refs.get("swe_bench_verified_small") or []
        ],
        "note": refs.get("swe_bench_note"),
    }


def build_report(
    inputs: Inputs,
    config: dict[str, Any] | None = None,
    history: list[dict[str, Any]] | None = None,
    generated_at: str | None = None,
) -> dict[str, Any]:
    """The whole report as one JSON-serialisable dict; `history` are earlier report.json documents."""
    config = {**DEFAULT_CONFIG, **(config or {})}
    history = [h for h in (history or []) if h.get("generated_at")]
    refs = references()
    generated_at = generated_at or datetime.now(UTC).isoformat(timespec="seconds")
    meta = inputs.meta
    quality = _quality_section(inputs, refs)
    scenarios = _scenarios_section(inputs, refs)
    perf = _performance_section(inputs)
    metrics = _metrics(quality, scenarios, perf)
    cost = cost_section(meta, perf, config.get("cost") or {})
    if cost.get("available"):
        metrics["electricity_per_million_tokens"] = (cost.get("single_stream") or {}).get(
            "electricity_per_million"
        )
    capacity = capacity_section(inputs.bench, config.get("capacity") or {}, role="chat")
    models = model_sections(meta, inputs.models or {}, config)
    by_role = results_by_role(models)
    grade = assess.grade(quality, scenarios, cost)
    suit = assess.suitability(quality, scenarios, by_role)
    report: dict[str, Any] = {
        "schema_version": SCHEMA_VERSION,
        "tool": {"name": "aimachine-report", "version": __version__},
        "generated_at": generated_at,
        "label": _label(meta, inputs.bench),
        "metadata": meta,
        "grade": grade,
        "quality": quality,
        "humaneval_table": _humaneval_table(quality, meta, refs),
        "swe_bench": _swe_bench(refs),
        "scenarios": scenarios,
        "performance": perf,
        "capacity": capacity,
        "models": models,
        "cohosting": cohosting_section(meta, perf, history),
        "cost": cost,
        "value": value_section(quality, cost, refs),
        "suitability": suit,
        "weaknesses": assess.weaknesses(suit, scenarios),
        "hybrid": assess.hybrid(suit, cost, config.get("cost") or {}),
        "strategies": strategies_section(meta, perf, history, refs, inputs.bench),
        "metrics": metrics,
        "benchmarks": refs.get("benchmarks") or [],
    }
    if inputs.speculation:
        # Measured both ways by llm_verify: shown under the strategies (report/strategies.py).
        measured = speculation_section(meta=meta, bench=inputs.speculation, history=history)
        if measured:
            report["strategies"]["speculation"] = {"available": True, **measured}
    report["personas"] = assess.personas(capacity, grade, cost)
    report["quantization"] = _quantization_section(meta, metrics, history, refs)
    report["gates"] = evaluate_gates(
        config.get("gates") or [], metrics, bool(config.get("allow_partial_isolation"))
    )
    report["changes"] = _changes(
        metrics, meta, history, float(config.get("regression_tolerance_percent", 10.0))
    )
    report["trend"] = _trend(metrics, meta, generated_at, history)
    report["summary"] = _summary_rows(report)
    return report
