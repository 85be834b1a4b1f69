"""The report's PNG plots (matplotlib, no display).

Every measured value is drawn and written beside its mark (a measured 0 shows as a marker at
zero with its label), every reference is a labelled mark, and legends sit outside the axes so no
line runs under them.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
from matplotlib.patches import Patch

MEASURED = "#2b6cb0"
PUBLISHED = "#8c8c8c"
FRONTIER = "#dd8452"
ORIGIN = "#55a868"


def _fmt(value: float, unit: str = "") -> str:
    digits = 0 if abs(value) >= 100 else 1
    return f"{value:,.{digits}f}{unit}"


def _legend_below(fig: Any, ax: Any, ncol: int = 3) -> None:
    handles, labels = ax.get_legend_handles_labels()
    if handles:
        fig.legend(handles, labels, loc="lower center", ncol=ncol, fontsize=8, frameon=False)


def _save(fig: Any, path: Path) -> None:
    fig.savefig(path, dpi=100)
    plt.close(fig)  # pyplot keeps every open figure until closed


def _quality_rows(report: dict[str, Any]) -> list[tuple[str, str, float, float | None, str]]:
    """(group, label, percent, SE, kind) for every bar of quality.png."""
    rows: list[tuple[str, str, float, float | None, str]] = []
    for s in report["quality"].get("suites", {}).values():
        if s["pass_at_1"] is not None:
            se = None if s["stderr"] is None else 100 * s["stderr"]
            rows.append(
                (
                    s["label"],
                    f"measured here ({s['problems']} problems)",
                    100 * s["pass_at_1"],
                    se,
                    "measured",
                )
            )
        for p in s["published"]:
            rows.append((s["label"], f"{p['model']} (published)", float(p["score"]), None, "published"))
        for f in s["frontier"]:
            rows.append(
                (
                    s["label"],
                    f"{f['model']} (origin document's source)",
                    float(f["percent"]),
                    None,
                    "frontier",
                )
            )
    sc = report["scenarios"]
    if sc.get("available") and sc.get("percent") is not None:
        rows.append(("Scenarios", "measured here (rubric points)", float(sc["percent"]), None, "measured"))
        if sc.get("origin_percent") is not None:
            rows.append(
                ("Scenarios", "origin document (hand-scored)", float(sc["origin_percent"]), None, "origin")
            )
    for m in report.get("models") or []:
        part = m.get(m["role"]) if m["role"] in ("autocomplete", "embed") else None
        res = (part or {}).get("result")
        if res and res.get("score_percent") is not None:
            rows.append(
                (
                    f"{m['model']['name']}",
                    f"measured here: {res['label']}",
                    res["score_percent"],
                    res.get("stderr_percent"),
                    "measured",
                )
            )
    return rows


def _quality(report: dict[str, Any], path: Path) -> None:
    rows = _quality_rows(report)
    colours = {"measured": MEASURED, "published": PUBLISHED, "frontier": FRONTIER, "origin": ORIGIN}
    fig, ax = plt.subplots(figsize=(9, 0.42 * len(rows) + 1.8))
    y = list(range(len(rows)))[::-1]
    for yi, (_group, _label, value, se, kind) in zip(y, rows, strict=True):
        ax.barh(yi, value, color=colours[kind], height=0.7, xerr=se, capsize=3 if se else 0)
        if value == 0:
            ax.plot([0], [yi], marker="D", color=colours[kind], markersize=6, clip_on=False)
        text = _fmt(value, " %") + (f" ± {se:.1f}" if se else "")
        ax.annotate(
            text,
            (value + (se or 0), yi),
            xytext=(8 if value == 0 else 4, 0),
            textcoords="offset points",
            va="center",
            fontsize=8,
        )
    ax.set_yticks(y, [f"{g}: {label}" for g, label, *_ in rows], fontsize=8)
    ax.set_xlim(0, 112)
    ax.set_xlabel("%")
    handles = [
        Patch(color=colours[kind], label=label)
        for kind, label in (
            ("measured", "measured here (± 1 SE; a 0 is a diamond)"),
            ("published", "published, this model"),
            ("frontier", "frontier (origin document)"),
            ("origin", "origin document"),
        )
        if any(r[4] == kind for r in rows)
    ]
    ax.set_title("Quality: every measured value beside its references", fontsize=10)
    ax.grid(True, axis="x", alpha=0.3)
    fig.tight_layout(rect=(0, 0.07, 1, 1))
    fig.legend(handles=handles, loc="lower center", ncol=4, fontsize=8, frameon=False)
    _save(fig, path)


# Label positions by series, so the labels of two close points do not overlap.
SLOTS = ((-6, 5, "right"), (6, 5, "left"), (-6, -11, "right"), (6, -11, "left"))


def _annotate_points(ax: Any, xs: list[Any], ys: list[float | None], colour: str, slot: int = 0) -> None:
    dx, dy, ha = SLOTS[slot % len(SLOTS)]
    ax.margins(x=0.12)  # room for the labels of the first and last points
    for x, v in zip(xs, ys, strict=True):
        if v is None:
            continue
        ax.annotate(
            _fmt(v), (x, v), xytext=(dx, dy), textcoords="offset points", ha=ha, fontsize=7, color=colour
        )


def _throughput(report: dict[str, Any], path: Path) -> None:
    levels = report["performance"].get("levels") or []
    fig, ax = plt.subplots(figsize=(8, 5))
    names = [lv["name"] for lv in levels]
    out = [lv["output_tokens_per_s"] for lv in levels]
    dec = [lv["decode_tokens_per_s_per_stream"] for lv in levels]
    ax.plot(names, [v or 0 for v in out], "o-", color=MEASURED, label="output tok/s (all streams)")
    ax.plot(names, [v or 0 for v in dec], "s--", color=FRONTIER, label="decode tok/s per stream")
    _annotate_points(ax, names, out, MEASURED, 0)
    _annotate_points(ax, names, dec, FRONTIER, 1)
    roof = report["performance"].get("roofline") or {}
    if roof.get("available") and roof.get("bound_tokens_per_s"):
        bound = roof["bound_tokens_per_s"]
        ax.axhline(
            bound, color="r", linestyle=":", label=f"single-stream bandwidth bound {_fmt(bound)} tok/s"
        )
    ax.set_ylim(
        bottom=0, top=max([v or 0 for v in out + dec] + [roof.get("bound_tokens_per_s") or 0]) * 1.15 or 1
    )
    ax.set_xlabel("benchmark level (cN: N concurrent streams)")
    ax.set_ylabel("tokens/s")
    ax.set_title("Throughput" + (" (CPU mode)" if report["label"]["mode"] == "cpu" else ""), fontsize=10)
    ax.grid(True, alpha=0.3)
    fig.tight_layout(rect=(0, 0.07, 1, 1))
    _legend_below(fig, ax)
    _save(fig, path)


def _latency(report: dict[str, Any], path: Path) -> None:
    levels = report["performance"].get("levels") or []
    names = [lv["name"] for lv in levels]
    fig, axes = plt.subplots(1, 2, figsize=(10, 4.6))
    panels = (
        (
            axes[0],
            (
                ("ttft_p50_ms", "o-", "TTFT p50"),
                ("ttft_p99_ms", "o--", "TTFT p99"),
                ("e2el_p50_ms", "^-", "end-to-end p50"),
            ),
            "time to first token and end-to-end (ms)",
        ),
        (
            axes[1],
            (
                ("tpot_p50_ms", "s-", "TPOT p50"),
                ("tpot_p99_ms", "s--", "TPOT p99"),
                ("itl_p50_ms", "d-", "ITL p50"),
            ),
            "per output token (ms)",
        ),
    )
    colours = [MEASURED, FRONTIER, ORIGIN]
    for ax, series, title in panels:
        top = 0.0
        for i, ((key, style, label), colour) in enumerate(zip(series, colours, strict=True)):
            values = [lv[key] for lv in levels]
            ax.plot(names, [v or 0 for v in values], style, color=colour, label=label)
            _annotate_points(ax, names, values, colour, i)
            top = max([top] + [v or 0 for v in values])
        ax.set_ylim(bottom=0, top=top * 1.2 or 1)
        ax.set_title(title, fontsize=9)
        ax.set_xlabel("benchmark level")
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=3, frameon=False)
    fig.suptitle("Latency", fontsize=10)
    fig.tight_layout()
    _save(fig, path)


def _capacity(cap: dict[str, Any], path: Path, title: str) -> None:
    rows = cap["levels"]
    names = [r["level"] for r in rows]
    values = [r["fraction"]["value"] for r in rows]
    fig, ax = plt.subplots(figsize=(8, 4.5))
    colours = [MEASURED if r["sustains"] else "#c0392b" for r in rows]
    ax.bar(names, [v or 0 for v in values], color=colours)
    for name, v in zip(names, values, strict=True):
        if v is not None:
            ax.annotate(
                _fmt(v, " %"), (name, v), xytext=(0, 3), textcoords="offset points", ha="center", fontsize=8
            )
            if v == 0:
                ax.plot([name], [0], marker="D", color="#c0392b", clip_on=False)
    need = cap["min_fraction"]["value"]
    line = ax.axhline(need, color="k", linestyle=":", label=f"required share {_fmt(need, ' %')}")
    handles = [line]
    if any(r["sustains"] for r in rows):
        handles.append(Patch(color=MEASURED, label="level meets the SLO"))
    if not all(r["sustains"] for r in rows):
        handles.append(Patch(color="#c0392b", label="level misses the SLO"))
    ax.set_ylim(0, 112)
    ax.set_ylabel("% of requests within every limit")
    ax.set_xlabel("benchmark level")
    ax.set_title(title, fontsize=10)
    ax.grid(True, axis="y", alpha=0.3)
    fig.tight_layout(rect=(0, 0.07, 1, 1))
    fig.legend(handles=handles, loc="lower center", ncol=3, fontsize=8, frameon=False)
    _save(fig, path)


def _autocomplete(name: str, a: dict[str, Any], path: Path) -> None:
    levels = a["levels"]
    names = [lv["name"] for lv in levels]
    fig, ax = plt.subplots(figsize=(8, 4.5))
    top = 0.0
    for (key, style, label), colour in zip(
        (
            ("ttft_p50_ms", "o-", "TTFT p50"),
            ("ttft_p99_ms", "o--", "TTFT p99"),
            ("total_p50_ms", "^-", "total p50"),
            ("total_p99_ms", "^--", "total p99"),
        ),
        [MEASURED, MEASURED, FRONTIER, FRONTIER],
        strict=True,
    ):
        values = [lv[key]["value"] for lv in levels]
        ax.plot(names, [v or 0 for v in values], style, color=colour, label=label)
        _annotate_points(ax, names, values, colour, len(ax.get_lines()) - 1)
        top = max([top] + [v or 0 for v in values])
    slo = (a.get("capacity") or {}).get("slo", {}).get("ttft_ms")
    if slo:
        ax.axhline(
            slo["value"], color="r", linestyle=":", label=f"TTFT p99 objective {_fmt(slo['value'])} ms"
        )
        top = max(top, slo["value"])
    ax.set_ylim(0, top * 1.2 or 1)
    ax.set_ylabel("ms")
    ax.set_xlabel("benchmark level")
    ax.set_title(f"Autocomplete latency: {name}", fontsize=10)
    ax.grid(True, alpha=0.3)
    fig.tight_layout(rect=(0, 0.07, 1, 1))
    _legend_below(fig, ax, 5)
    _save(fig, path)


def _trend(report: dict[str, Any], path: Path) -> None:
    points = report["trend"]
    fig, axes = plt.subplots(1, 2, figsize=(10, 4.6))
    when = [p["generated_at"][:16] for p in points]
    series0 = [
        ("humaneval_pass_at_1", "HumanEval pass@1 %", 100.0),
        ("mbpp_pass_at_1", "MBPP pass@1 %", 100.0),
        ("scenarios_percent", "scenarios %", 1.0),
    ]
    for key, label, scale in series0:
        values = [p["metrics"].get(key) for p in points]
        if all(v is None for v in values):
            continue
        ys = [None if v is None else scale * v for v in values]
        line = axes[0].plot(when, [float("nan") if v is None else v for v in ys], "o-", label=label)
        _annotate_points(axes[0], when, ys, line[0].get_color(), len(axes[0].get_lines()) - 1)
    axes[0].set_ylim(0, 112)
    axes[0].set_ylabel("%")
    for key, label in (
        ("single_stream_tokens_per_s", "single-stream tok/s"),
        ("peak_output_tokens_per_s", "peak output tok/s"),
    ):
        values = [p["metrics"].get(key) for p in points]
        line = axes[1].plot(when, [float("nan") if v is None else v for v in values], "o-", label=label)
        _annotate_points(axes[1], when, values, line[0].get_color(), len(axes[1].get_lines()) - 1)
    axes[1].set_ylim(bottom=0)
    axes[1].set_ylabel("tokens/s")
    for ax in axes:
        ax.tick_params(axis="x", labelrotation=30, labelsize=7)
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.3), ncol=3, frameon=False)
    fig.suptitle("Trend over this host's verification runs", fontsize=10)
    fig.tight_layout()
    _save(fig, path)


def plot_name(served: str) -> str:
    """A served name as part of a file name."""
    return re.sub(r"[^A-Za-z0-9._-]", "_", served)


def write_plots(report: dict[str, Any], out: Path) -> list[str]:
    written = []
    if _quality_rows(report):
        _quality(report, out / "quality.png")
        written.append("quality.png")
    if report["performance"].get("available") and report["performance"].get("levels"):
        _throughput(report, out / "throughput.png")
        _latency(report, out / "latency.png")
        written += ["throughput.png", "latency.png"]
    cap = report.get("capacity") or {}
    if cap.get("available"):
        _capacity(cap, out / "capacity.png", "Chat: share of requests within the SLO at each level")
        written.append("capacity.png")
    for m in report.get("models") or []:
        a = m.get("autocomplete")
        if a and a.get("levels"):
            name = plot_name(str(m["model"]["name"]))
            _autocomplete(str(m["model"]["name"]), a, out / f"autocomplete-{name}.png")
            written.append(f"autocomplete-{name}.png")
    if len(report["trend"]) > 1:
        _trend(report, out / "trend.png")
        written.append("trend.png")
    return written
