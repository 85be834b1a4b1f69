"""The report's PNG plots (matplotlib, no display)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt


def _quality(report: dict[str, Any], path: Path) -> None:
    suites = list(report["quality"].get("suites", {}).values())
    sc = report["scenarios"]
    fig, ax = plt.subplots(figsize=(8, 4.5))
    labels, values, errors = [], [], []
    for s in suites:
        labels.append(s["label"])
        values.append(100 * (s["pass_at_1"] or 0.0))
        errors.append(100 * (s["stderr"] or 0.0))
    if sc.get("available"):
        labels.append("Scenarios")
        values.append(sc["percent"] or 0.0)
        errors.append(0.0)
    x = range(len(labels))
    ax.bar(x, values, yerr=errors, capsize=4, color="#4477aa", label="measured (± 1 SE)")
    for i, s in enumerate(suites):
        for ref in s["published"]:
            ax.plot(i, ref["score"], "k_", markersize=30)
            ax.annotate(
                f"{ref['model']} {ref['score']}",
                (i, ref["score"]),
                fontsize=7,
                xytext=(18, 0),
                textcoords="offset points",
            )
        for ref in s["frontier"]:
            ax.plot(i, ref["percent"], "r.", markersize=6)
    if sc.get("available") and sc.get("origin_percent") is not None:
        ax.plot(len(labels) - 1, sc["origin_percent"], "k_", markersize=30)
        ax.annotate(
            f"origin {sc['origin_percent']}",
            (len(labels) - 1, sc["origin_percent"]),
            fontsize=7,
            xytext=(18, 0),
            textcoords="offset points",
        )
    ax.set_xticks(list(x), labels)
    ax.set_ylim(0, 100)
    ax.set_ylabel("%")
    ax.set_title("Quality: measured vs published (black) and frontier (red)")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def _throughput(report: dict[str, Any], path: Path) -> None:
    levels = report["performance"].get("levels") or []
    fig, ax = plt.subplots(figsize=(8, 4.5))
    names = [lv["name"] for lv in levels]
    ax.plot(names, [lv["output_tokens_per_s"] or 0 for lv in levels], "o-", label="output tok/s")
    ax.plot(
        names,
        [lv["decode_tokens_per_s_per_stream"] or 0 for lv in levels],
        "s--",
        label="decode tok/s per stream",
    )
    roof = report["performance"].get("roofline") or {}
    if roof.get("available") and roof.get("bound_tokens_per_s"):
        ax.axhline(
            roof["bound_tokens_per_s"], color="r", linestyle=":", label="single-stream bandwidth bound"
        )
    ax.set_xlabel("level")
    ax.set_ylabel("tokens/s")
    ax.set_title("Throughput" + (" (CPU mode)" if report["label"]["mode"] == "cpu" else ""))
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def _latency(report: dict[str, Any], path: Path) -> None:
    levels = report["performance"].get("levels") or []
    fig, ax = plt.subplots(figsize=(8, 4.5))
    names = [lv["name"] for lv in levels]
    for key, style in (
        ("ttft_p50_ms", "o-"),
        ("ttft_p99_ms", "o--"),
        ("tpot_p50_ms", "s-"),
        ("e2el_p50_ms", "^-"),
    ):
        ax.plot(names, [lv[key] or 0 for lv in levels], style, label=key.replace("_ms", " (ms)"))
    ax.set_yscale("log")
    ax.set_xlabel("level")
    ax.set_ylabel("ms")
    ax.set_title("Latency")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def _trend(report: dict[str, Any], path: Path) -> None:
    points = report["trend"]
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    when = [p["generated_at"][:16] for p in points]
    for key in ("humaneval_pass_at_1", "mbpp_pass_at_1"):
        values = [p["metrics"].get(key) for p in points]
        axes[0].plot(when, [None if v is None else 100 * v for v in values], "o-", label=key)
    axes[0].plot(when, [p["metrics"].get("scenarios_percent") for p in points], "s-", label="scenarios %")
    axes[0].set_ylabel("%")
    axes[0].legend(fontsize=7)
    for key in ("single_stream_tokens_per_s", "peak_output_tokens_per_s"):
        axes[1].plot(when, [p["metrics"].get(key) for p in points], "o-", label=key)
    axes[1].set_ylabel("tokens/s")
    axes[1].legend(fontsize=7)
    for ax in axes:
        ax.tick_params(axis="x", labelrotation=45, labelsize=7)
    fig.suptitle("Trend over this host's verification runs")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def write_plots(report: dict[str, Any], out: Path) -> list[str]:
    written = []
    if report["quality"].get("available") or report["scenarios"].get("available"):
        _quality(report, out / "quality.png")
        written.append("quality.png")
    if report["performance"].get("available"):
        _throughput(report, out / "throughput.png")
        _latency(report, out / "latency.png")
        written += ["throughput.png", "latency.png"]
    if len(report["trend"]) > 1:
        _trend(report, out / "trend.png")
        written.append("trend.png")
    return written
