"""report.md: the report a person reads, in the origin document's order, every number with its source."""

from __future__ import annotations

from typing import Any

from aimachine.report.build import METRICS


def _n(value: Any, digits: int = 1, suffix: str = "") -> str:
    if value is None:
        return "not measured"
    if isinstance(value, int | float):
        return f"{value:,.{digits}f}{suffix}"
    return str(value)


def _pct(fraction: Any) -> str:
    return "not measured" if fraction is None else f"{100 * fraction:.1f}%"


def _metric(key: str, value: Any, currency: str = "") -> str:
    unit = METRICS[key]["unit"]
    if unit == "fraction":
        return _pct(value)
    if unit == "currency":
        return _n(value, 4, f" {currency}")
    if unit == "%":
        return _n(value, 1, "%")
    return _n(value, 1, f" {unit}")


def _table(header: list[str], rows: list[list[Any]]) -> list[str]:
    out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    out += [
        "| " + " | ".join(str(c).replace("|", "\\|").replace("\n", " ") for c in row) + " |" for row in rows
    ]
    return [*out, ""]


def _header(report: dict[str, Any]) -> list[str]:
    meta = report["metadata"]
    model = meta.get("model") or {}
    engine = meta.get("engine") or {}
    host = meta.get("host") or {}
    lines = [f"# Verification report: {model.get('id', '?')} on {host.get('name', '?')}", ""]
    if report["label"]["banner"]:
        lines += [f"> **{report['label']['banner']}**", ""]
    gpus = meta.get("gpus") or []
    gpu_text = (
        ", ".join(f"{g.get('name')} ({g.get('memory_total_mib', g.get('vram_mib', '?'))} MiB)" for g in gpus)
        or "none"
    )
    lines += _table(
        ["", ""],
        [
            ["Date (UTC)", report["generated_at"]],
            [
                "Host",
                f"{host.get('name')} ({host.get('os', '?')}, {host.get('cpus', '?')} CPUs, "
                f"{host.get('memory_gib', '?')} GiB)",
            ],
            ["Mode", f"{meta.get('mode')} ({meta.get('run_mode', '?')} verification run)"],
            [
                "Model",
                f"{model.get('id')} @ {model.get('revision') or 'no revision'} (served as "
                f"`{model.get('served_name')}`, quantization {model.get('quantization') or 'none'})",
            ],
            ["Engine", f"{engine.get('name')} {engine.get('version') or '(version unknown)'}"],
            ["GPUs", gpu_text],
            ["Deployment fingerprint", f"`{meta.get('fingerprint')}`"],
        ],
    )
    return lines


def _summary(report: dict[str, Any]) -> list[str]:
    rows = []
    for row in report["summary"]:
        # Money needs more digits than speeds and percentages (cents per million tokens).
        digits = 1 if row.get("unit") in ("%", "tok/s", "ms", "") else 4
        measured = _n(row.get("measured"), digits)
        if row.get("measured") is not None and row.get("unit"):
            measured += f" {row['unit']}" if row["unit"] != "%" else "%"
        if row.get("stderr") is not None:
            measured += f" ± {row['stderr']:.1f}"
        if row.get("measured_2") is not None:
            measured += f" / {row['measured_2']:,.1f} {row['unit']}"
        refs = (
            "; ".join(
                f"{r['name']}: {_n(r.get('value'), 1)}"
                + ("%" if r.get("unit") == "%" else " " + str(r.get("unit")))
                for r in row["references"]
            )
            or "-"
        )
        sources = (
            "; ".join(dict.fromkeys(str(r.get("source")) for r in row["references"] if r.get("source")))
            or "-"
        )
        rows.append([row["metric"], measured, row.get("note") or "", refs, sources])
    return ["## Executive summary", "", *_table(["metric", "measured", "note", "reference", "source"], rows)]


def _gates(report: dict[str, Any]) -> list[str]:
    gates = report["gates"]
    lines = ["## Gates", ""]
    if not gates["results"]:
        return [*lines, "No gates configured.", ""]
    verdict = "PASSED" if gates["passed"] else "FAILED"
    lines += [f"Result: **{verdict}** ({len(gates['failed'])} failed, {len(gates['warned'])} warnings).", ""]
    rows = [
        [
            r["name"],
            _n(r["measured"], 4),
            f"{'>=' if r['op'] == 'min' else '<='} {r['threshold']:g}",
            r["severity"],
            r["status"],
        ]
        for r in gates["results"]
    ]
    return lines + _table(["gate", "measured", "threshold", "severity", "status"], rows)


def _quality(report: dict[str, Any]) -> list[str]:
    q = report["quality"]
    lines = ["## Code quality: HumanEval and MBPP", ""]
    if not q["available"]:
        return [*lines, f"Not measured: {q.get('reason')}.", ""]
    rows = []
    for s in q["suites"].values():
        refs = (
            "; ".join(f"{p.get('model')} {p.get('score')}% ({p.get('source')})" for p in s["published"])
            or "none on record"
        )
        frontier = "; ".join(f"{f['model']} {f['percent']}%" for f in s["frontier"]) or "-"
        rows.append(
            [
                s["label"] + (" (subset)" if s["subset"] else ""),
                s["problems"],
                _pct(s["pass_at_1"]),
                _n(None if s["stderr"] is None else 100 * s["stderr"], 1, " pts"),
                refs,
                frontier,
            ]
        )
    lines += _table(["suite", "problems", "pass@1", "± SE", "published (this model)", "frontier"], rows)
    lines += [
        "Standard error: sqrt(p(1-p)/n) over the problems run. Frontier figures are those the origin "
        "document lists, with its stated sources.",
    ]
    if q["not_run"]:
        lines.append(f"Not run in this mode: {', '.join(q['not_run'])}.")
    settings = q.get("settings") or {}
    lines += [
        f"Settings: {settings.get('mode')} prompts, {settings.get('samples')} sample(s), temperature "
        f"{settings.get('temperature')}, max {settings.get('max_tokens')} tokens"
        + (f", first {settings.get('limit')} problems only" if settings.get("limit") else "")
        + f"; sandbox: {q.get('sandbox')}.",
        "",
    ]
    return lines


def _quantization(report: dict[str, Any]) -> list[str]:
    qz = report["quantization"]
    lines = ["## Quantization impact", ""]
    if qz["status"] == "no record":
        lines.append(qz["text"])
    else:
        rec = qz["record"]
        lines.append(
            f"Against this host's {rec['precision']} run of {rec['model']} on {rec['generated_at']}:"
        )
        lines.append("")
        lines += _table(
            ["suite", "higher precision", "this run", "difference", "± SE of difference"],
            [
                [
                    r["suite"],
                    _pct(r["higher_precision"]),
                    _pct(r["this_run"]),
                    f"{100 * r['difference']:+.1f} pts",
                    f"{100 * r['stderr_of_difference']:.1f} pts",
                ]
                for r in qz["rows"]
            ],
        )
    for item in qz["published"]:
        lines.append(f"Published: {item['text']} ({item['source']}).")
    return [*lines, ""]


def _scenarios(report: dict[str, Any]) -> list[str]:
    sc = report["scenarios"]
    lines = ["## Practical scenarios", ""]
    if not sc["available"]:
        return [*lines, f"Not measured: {sc['reason']}.", ""]
    lines += [
        f"Total: {sc['points']:g} / {sc['max_points']:g} points ({sc['percent']}%); "
        "the origin document's hand score: "
        f"{sc['origin_percent']}% ({sc['origin_source']}).",
        "",
    ]
    rows = []
    for item in sc["items"]:
        for c in item["criteria"]:
            rows.append(
                [
                    item["title"],
                    c["description"],
                    f"{c['points']:g} / {c['max_points']:g}",
                    c.get("evidence") or "",
                ]
            )
        rows.append(
            [
                f"**{item['title']}**",
                "**total**",
                f"**{item['points']:g} / {item['max_points']:g}**",
                f"origin document: {item.get('origin_reported_percent')}%",
            ]
        )
    return lines + _table(["scenario", "criterion", "points", "evidence"], rows)


def _performance(report: dict[str, Any]) -> list[str]:
    perf = report["performance"]
    lines = ["## Throughput and latency", ""]
    if not perf["available"]:
        return [*lines, f"Not measured: {perf['reason']}.", ""]
    lines += [f"Workload: {perf['workload']}; definitions as vLLM's benchmark client (docs/metrics.md).", ""]
    rows = [
        [
            lv["name"],
            f"{lv['completed']}/{lv['requests']}",
            _n(lv["output_tokens_per_s"]),
            _n(lv["decode_tokens_per_s_per_stream"]),
            _n(lv["ttft_p50_ms"]),
            _n(lv["ttft_p99_ms"]),
            _n(lv["tpot_p50_ms"]),
            _n(lv["itl_p50_ms"]),
            _n(lv["e2el_p50_ms"]),
            _n(lv["gpu_power_w_mean"]),
        ]
        for lv in perf["levels"]
    ]
    lines += _table(
        [
            "level",
            "ok",
            "output tok/s",
            "decode tok/s/stream",
            "TTFT p50 ms",
            "TTFT p99 ms",
            "TPOT p50 ms",
            "ITL p50 ms",
            "E2E p50 ms",
            "GPU W",
        ],
        rows,
    )
    roof = perf["roofline"]
    if roof["available"]:
        lines.append(
            f"Roofline: single-stream decode {_n(roof['measured_tokens_per_s'])} tok/s = "
            f"{_n(roof['percent_of_bound'], 0)}% of the bound {_n(roof['bound_tokens_per_s'], 0)} tok/s "
            f"({roof['bandwidth_gbs']} GB/s from {roof['bandwidth_source']} / "
            f"{roof['decode_step_bytes']:,} bytes a decode step)."
        )
    else:
        lines.append(f"Roofline: not available ({roof['reason']}).")
    tel = perf["telemetry"]
    lines.append(
        "GPU telemetry: "
        + (f"NVML at {tel['achieved_hz']} Hz." if tel["available"] else f"not available ({tel['reason']}).")
    )
    return [*lines, "", "![throughput](throughput.png) ![latency](latency.png)", ""]


def _cost(report: dict[str, Any]) -> list[str]:
    cost = report["cost"]
    lines = ["## Cost", ""]
    if not cost["available"]:
        return [*lines, f"Not computed: {cost['reason']}.", ""]
    cur = cost["currency"]
    hardware = (
        "not configured" if cost["hardware_price"] is None else _n(cost["hardware_price"], 0, " " + cur)
    )
    lines += [
        f"Electricity {cost['electricity_price_per_kwh']:g} {cur}/kWh ({cost['electricity_price_source']}); "
        f"hardware {hardware} "
        f"({cost['hardware_price_source']}); power: {cost['power']['source']}.",
        "",
    ]
    lines += _table(
        [
            "level",
            "output tok/s",
            "power W",
            "kWh per 1M tokens",
            f"electricity per 1M tokens ({cur})",
            "arithmetic",
        ],
        [
            [
                c["level"],
                _n(c["output_tokens_per_s"]),
                _n(c["power_w"]),
                _n(c["kwh_per_million"], 4),
                _n(c["electricity_per_million"], 4),
                c["arithmetic"],
            ]
            for c in cost["per_level"]
        ],
    )
    if cost["break_even"]:
        lines.append(f"Break-even against API prices, on the electricity cost of level {cost['basis']}:")
        lines.append("")
        lines += _table(
            [
                "API",
                f"price per 1M ({cur})",
                "source",
                "break-even (1M tokens)",
                "break-even (months)",
                "arithmetic / note",
            ],
            [
                [
                    b["name"],
                    _n(b["price_per_million"], 2),
                    b["source"],
                    _n(b.get("break_even_million_tokens"), 1),
                    _n(b.get("break_even_months"), 1),
                    b.get("arithmetic") or b.get("note", ""),
                ]
                for b in cost["break_even"]
            ],
        )
    lines.append(
        f"Idle power {cost['idle_watts']:g} W = {cost['idle_cost_per_month']:.2f} {cur} a month "
        f"(730 h); monthly volume {cost['monthly_output_tokens_millions']} M output tokens (configured)."
    )
    return [*lines, ""]


def _changes(report: dict[str, Any]) -> list[str]:
    ch = report["changes"]
    cur = report["cost"].get("currency", "")
    lines = ["## Changes since the previous run", ""]
    if ch["previous"] is None:
        return [*lines, ch["text"], ""]
    prev = ch["previous"]
    lines += [
        f"Previous run: {prev['generated_at']} ({prev['run_mode']} mode, "
        f"{'same deployment' if prev['same_deployment'] else 'a different deployment'}). Regressions are "
        f"changes for the worse beyond {ch['tolerance_percent']:g}% (pass@1: also beyond 2 standard errors; "
        "error rate: 1 point).",
        "",
    ]
    rows = [
        [
            r["label"],
            _metric(r["metric"], r["previous"], cur),
            _metric(r["metric"], r["current"], cur),
            "-" if r["delta_percent"] is None else f"{r['delta_percent']:+.1f}%",
            "**REGRESSION**" if r["regression"] else ("improved" if r["improvement"] else "within tolerance"),
        ]
        for r in ch["rows"]
    ]
    return lines + _table(["metric", "previous", "this run", "change", ""], rows)


def _trend(report: dict[str, Any]) -> list[str]:
    points = report["trend"]
    lines = ["## Trend over this host's runs", ""]
    keys = [
        "humaneval_pass_at_1",
        "scenarios_percent",
        "single_stream_tokens_per_s",
        "peak_output_tokens_per_s",
        "ttft_p99_ms",
        "error_rate",
    ]
    rows = [
        [p["generated_at"], p["run_mode"], str(p["fingerprint"])[:12]]
        + [_metric(k, p["metrics"].get(k)) for k in keys]
        for p in points
    ]
    lines += _table(["run", "mode", "deployment"] + [METRICS[k]["label"] for k in keys], rows)
    if len(points) > 1:
        lines += ["![trend](trend.png)", ""]
    return lines


def _clients(report: dict[str, Any]) -> list[str]:
    clients = report.get("clients") or {}
    lines = ["## Client configuration", ""]
    if not clients.get("files"):
        return [*lines, "None written.", ""]
    lines += [
        f"Endpoint `{clients['base_url']}` (via {clients.get('via')}), model `{clients['model']}`. "
        "The key is referenced, never written: "
        f"environment variable `{clients['key_env']}`"
        + (f", read from `{clients['key_file']}`" if clients.get("key_file") else "")
        + ".",
        "",
    ]
    lines += [f"- `clients/{name}`: {what}" for name, what in clients["files"].items()]
    return [*lines, ""]


def render_markdown(report: dict[str, Any]) -> str:
    lines: list[str] = []
    for part in (
        _header,
        _summary,
        _gates,
        _quality,
        _quantization,
        _scenarios,
        _performance,
        _cost,
        _changes,
        _trend,
        _clients,
    ):
        lines += part(report)
    lines += [
        "---",
        f"Written by aimachine-report {report['tool']['version']}; the data is in report.json (schema "
        f"{report['schema_version']}), the raw results under bench/ and quality/. "
        "What each section means: docs/report.md.",
    ]
    return "\n".join(lines) + "\n"
