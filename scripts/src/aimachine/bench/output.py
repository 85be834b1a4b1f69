"""Results on disk: bench.json (versioned, everything), bench.csv (one row a level), PNG plots."""

from __future__ import annotations

import csv
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # files only, no display
import matplotlib.pyplot as plt

LATENCY_METRICS = (("ttft_ms", "TTFT"), ("tpot_ms", "TPOT"), ("itl_ms", "ITL"), ("e2el_ms", "E2E latency"))
CSV_SCALARS = (
    "completed",
    "errors",
    "duration_s",
    "total_prompt_tokens",
    "total_output_tokens",
    "output_throughput",
    "request_throughput",
    "total_token_throughput",
    "decode_tokens_per_s_per_stream",
    "tokens_per_output_event",
)


def csv_rows(levels: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """One flat row a level: its settings, the scalars and every latency statistic."""
    rows = []
    for level in levels:
        summary = level["summary"]
        row: dict[str, Any] = {
            "level": level["name"],
            "concurrency": level["concurrency"],
            "request_rate": level["request_rate"],
            "max_concurrency": level["max_concurrency"],
            "num_requests": level["num_requests"],
        }
        row |= {key: summary.get(key) for key in CSV_SCALARS}
        goodput = summary.get("goodput")
        row["request_goodput"] = goodput["request_goodput"] if goodput else None
        row["goodput_fraction"] = (level.get("goodput") or {}).get("fraction")
        embeddings = summary.get("embeddings") or {}
        row["inputs_per_s"] = embeddings.get("inputs_per_s")
        row["embedding_prompt_tokens_per_s"] = embeddings.get("prompt_tokens_per_s")
        # The server's own counters over the level (None where it has none: transformers serve).
        server = level.get("server_metrics") or {}
        row["server_spec_acceptance_rate"] = (server.get("spec_decode") or {}).get("acceptance_rate")
        row["server_prefix_cache_hit_rate"] = (server.get("prefix_cache") or {}).get("hit_rate")
        row["server_queue_time_mean_ms"] = (server.get("queue_time") or {}).get("mean_ms")
        row["server_ttft_mean_ms"] = (server.get("ttft") or {}).get("mean_ms")
        for key, _ in LATENCY_METRICS:
            for stat, value in summary[key].items():
                if stat != "count":
                    row[f"{key.removesuffix('_ms')}_{stat}_ms"] = value
        rows.append(row)
    return rows


def write_csv(path: Path, levels: Sequence[dict[str, Any]]) -> None:
    rows = csv_rows(levels)
    if not rows:
        return
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        for row in rows:
            writer.writerow(
                {k: "" if v is None else (f"{v:.6g}" if isinstance(v, float) else v) for k, v in row.items()}
            )


def _x_axis(levels: Sequence[dict[str, Any]]) -> tuple[list[float], str, bool]:
    if all(level["concurrency"] is not None for level in levels):
        return [float(level["concurrency"]) for level in levels], "concurrent streams", True
    return [float(level["request_rate"]) for level in levels], "request rate (requests/s, Poisson)", False


def _label_points(axis: Any, x: Sequence[float], ys: Sequence[float | None], colour: str, slot: int) -> None:
    """Write each measured value beside its point; series alternate sides so close labels stay apart."""
    dx, dy, ha = ((-6, 5, "right"), (6, 5, "left"), (-6, -11, "right"), (6, -11, "left"))[slot % 4]
    axis.margins(x=0.1)  # room for the labels of the first and last points
    for xv, yv in zip(x, ys, strict=True):
        if yv is not None:
            digits = 0 if abs(yv) >= 100 else 2 if abs(yv) < 10 else 1
            axis.annotate(
                f"{yv:,.{digits}f}",
                (xv, yv),
                xytext=(dx, dy),
                textcoords="offset points",
                ha=ha,
                fontsize=7,
                color=colour,
            )


def plot_throughput(path: Path, levels: Sequence[dict[str, Any]], title: str) -> None:
    x, label, log2 = _x_axis(levels)
    fig, left = plt.subplots(figsize=(7.5, 5))
    out = [level["summary"]["output_throughput"] for level in levels]
    left.plot(x, out, "o-", color="tab:blue", label="output tokens/s (left axis)")
    _label_points(left, x, out, "tab:blue", 0)
    left.set_xlabel(label)
    left.set_ylabel("output tokens/s", color="tab:blue")
    right = left.twinx()
    req = [level["summary"]["request_throughput"] for level in levels]
    right.plot(x, req, "s--", color="tab:orange", label="requests/s (right axis)")
    _label_points(right, x, req, "tab:orange", 3)
    goodputs = [level.get("goodput") or level["summary"].get("goodput") for level in levels]
    if all(goodputs):
        # contract 4 names it requests_per_s; the summary's own block request_goodput
        good = [g.get("requests_per_s", g.get("request_goodput")) for g in goodputs]
        right.plot(x, good, "^:", color="tab:green", label="goodput (requests/s within SLO, right axis)")
        _label_points(right, x, good, "tab:green", 2)
    right.set_ylabel("requests/s", color="tab:orange")
    if log2:
        left.set_xscale("log", base=2)
        left.set_xticks(x, [f"{v:g}" for v in x])
    # Headroom above the highest point, so the labels stay inside the axes.
    left.set_ylim(0, max([*out, 0]) * 1.18 or 1)
    right.set_ylim(0, max([*req, 0]) * 1.18 or 1)
    handles = left.get_legend_handles_labels()[0] + right.get_legend_handles_labels()[0]
    left.grid(True, alpha=0.3)
    left.set_title(title, fontsize=10)
    fig.tight_layout(rect=(0, 0.08, 1, 1))
    # Below the axes: no line can run under the legend.
    fig.legend(
        handles, [h.get_label() for h in handles], loc="lower center", ncol=3, fontsize=8, frameon=False
    )
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_latency(
    path: Path, levels: Sequence[dict[str, Any]], percentiles: Sequence[float], title: str
) -> None:
    x, label, log2 = _x_axis(levels)
    fig, axes = plt.subplots(2, 2, figsize=(10, 7.5), sharex=True)
    for axis, (key, name) in zip(axes.flat, LATENCY_METRICS, strict=True):
        axis.plot(x, [level["summary"][key]["mean"] for level in levels], "k--", lw=1, label="mean")
        for p in percentiles:
            axis.plot(x, [level["summary"][key][f"p{p:g}"] for level in levels], "o-", ms=3, label=f"p{p:g}")
        top = max(
            [level["summary"][key][f"p{p:g}"] or 0 for level in levels for p in percentiles]
            + [level["summary"][key]["mean"] or 0 for level in levels]
            + [0]
        )
        axis.set_ylim(0, top * 1.1 or 1)
        axis.set_title(f"{name} (ms)", fontsize=10)
        axis.grid(True, alpha=0.3)
        if log2:
            axis.set_xscale("log", base=2)
            axis.set_xticks(x, [f"{v:g}" for v in x])
    for axis in axes[1]:
        axis.set_xlabel(label)
    handles, labels = axes[0][0].get_legend_handles_labels()
    fig.suptitle(title, fontsize=10)
    fig.tight_layout(rect=(0, 0.05, 1, 1))
    fig.legend(handles, labels, loc="lower center", ncol=len(labels), fontsize=8, frameon=False)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_telemetry(
    path: Path, telemetry: dict[str, Any], levels: Sequence[dict[str, Any]], title: str
) -> None:
    panels = (
        ("util_gpu_pct", "GPU utilisation (%)"),
        ("power_w", "power (W)"),
        ("mem_used_mib", "memory used (MiB)"),
        ("sm_clock_mhz", "SM clock (MHz)"),
    )
    fig, axes = plt.subplots(len(panels), 1, figsize=(9, 8), sharex=True)
    gpus = sorted({s["gpu"] for s in telemetry["samples"]})
    for axis, (key, name) in zip(axes, panels, strict=True):
        for gpu in gpus:
            rows = [s for s in telemetry["samples"] if s["gpu"] == gpu and s[key] is not None]
            axis.plot([s["t"] for s in rows], [s[key] for s in rows], lw=1, label=f"GPU {gpu}")
        for i, level in enumerate(levels):
            axis.axvspan(level["start_s"], level["end_s"], color="grey", alpha=0.08 if i % 2 else 0.16, lw=0)
        axis.set_ylabel(name, fontsize=8)
        axis.grid(True, alpha=0.3)
    for level in levels:
        axes[0].annotate(
            level["name"],
            (level["start_s"], 1.0),
            xycoords=("data", "axes fraction"),
            fontsize=7,
            va="bottom",
        )
    axes[-1].set_xlabel("time since start of run (s); shaded: measured levels")
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_all(directory: Path, document: dict[str, Any], percentiles: Sequence[float]) -> list[Path]:
    """Write bench.json, bench.csv and the plots into `directory`; returns the paths written."""
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    json_path = directory / "bench.json"
    json_path.write_text(
        json.dumps(document, indent=1, ensure_ascii=False, allow_nan=False) + "\n", encoding="utf-8"
    )
    written.append(json_path)
    levels = document["levels"]
    if levels:
        csv_path = directory / "bench.csv"
        write_csv(csv_path, levels)
        written.append(csv_path)
        server = document["server"]
        title = f"{server['model']} at {server['base_url']} ({document['workload']['description']})"
        plot_throughput(directory / "throughput.png", levels, title)
        plot_latency(directory / "latency.png", levels, percentiles, title)
        written += [directory / "throughput.png", directory / "latency.png"]
        if document["telemetry"].get("available") and document["telemetry"].get("samples"):
            plot_telemetry(directory / "telemetry.png", document["telemetry"], levels, title)
            written.append(directory / "telemetry.png")
    return written
