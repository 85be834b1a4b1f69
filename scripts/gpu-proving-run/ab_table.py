"""Configs served at once and benchmarked in turn (run7.sh g-rounds): one table, one plot.

Usage:
  python ab_table.py csv VB_DIR OUT.csv      # vllm bench serve result files -> one row a run
  python ab_table.py report OUT.csv [PNG] [BASELINE]   # ratios against BASELINE (defaults), + a plot
  python ab_table.py pooled VB_DIR [PNG] [BASELINE]    # TTFT p50 over all turns' requests, + histograms

Result files are named CONFIG-TURN-cC-INPUTLEN.json (bench_levels.py); rows are in the order the
runs were made. A level's figure for a config is the mean over its turns; the ratio is that mean
over the baseline's mean. Every turn is
a point in the plot, so the spread between turns of one config is in view beside the ratio.
"""

from __future__ import annotations

import csv
import json
import statistics
import sys
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path

FIELDS = ("date", "config", "turn", "streams", "input_len", "prompts", "output_tok_s", "ttft_p50_ms",
          "ttft_mean_ms", "ttft_p99_ms", "tpot_mean_ms")  # fmt: skip


def runs(vb_dir: Path) -> Iterator[tuple[str, str, int, int, dict]]:
    """(config, turn, streams, input length, vLLM's result) of each measured run in vb_dir."""
    for path in sorted(vb_dir.glob("*-*-c*-*.json")):
        config, turn, level, ilen = path.stem.rsplit("-", 3)
        # "warm": run7.sh h-warm's unmeasured pass before the turns.
        if turn and turn != "warm" and level.startswith("c"):
            yield config, turn, int(level[1:]), int(ilen), json.loads(path.read_text())


def level_name(ilen: int, streams: int) -> str:
    return f"{streams}" if ilen == 512 else f"{streams}, {ilen // 1024}k prompts"


def to_csv(vb_dir: Path, out: Path) -> int:
    rows = []
    for config, turn, streams, ilen, r in runs(vb_dir):
        rows.append({
            "date": r.get("date", ""), "config": config, "turn": turn, "streams": streams,
            "input_len": ilen,
            "prompts": r["completed"], "output_tok_s": round(r["output_throughput"], 1),
            "ttft_p50_ms": round(r["median_ttft_ms"], 1), "ttft_mean_ms": round(r["mean_ttft_ms"], 1),
            "ttft_p99_ms": round(r["p99_ttft_ms"], 1), "tpot_mean_ms": round(r["mean_tpot_ms"], 3),
        })  # fmt: skip
    rows.sort(key=lambda row: (row["date"], row["config"], row["streams"]))
    with out.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=FIELDS)
        writer.writeheader()
        writer.writerows(rows)
    return len(rows)


def load(path: Path) -> dict[tuple[int, int], dict[str, list[dict]]]:
    levels: dict[tuple[int, int], dict[str, list[dict]]] = defaultdict(lambda: defaultdict(list))
    with path.open() as f:
        for row in csv.DictReader(f):
            levels[(int(row["input_len"]), int(row["streams"]))][row["config"]].append(row)
    return levels


def _mean(rows: list[dict], key: str) -> float:
    return sum(float(r[key]) for r in rows) / len(rows)


def ratios(levels: dict, baseline: str = "defaults") -> list[dict]:
    out = []
    for (ilen, streams), by_config in sorted(levels.items()):
        base = by_config.get(baseline)
        if not base:
            continue
        for config, rows in sorted(by_config.items()):
            if config == baseline:
                continue
            out.append({
                "level": level_name(ilen, streams),
                "config": config, "turns": len(rows),
                "tok_s": [float(r["output_tok_s"]) for r in rows],
                "base_tok_s": [float(r["output_tok_s"]) for r in base],
                "ttft": [float(r["ttft_p50_ms"]) for r in rows],
                "base_ttft": [float(r["ttft_p50_ms"]) for r in base],
                "tput_ratio": _mean(rows, "output_tok_s") / _mean(base, "output_tok_s"),
                "ttft_ratio": _mean(rows, "ttft_p50_ms") / _mean(base, "ttft_p50_ms"),
                "ttft_mean_ratio": _mean(rows, "ttft_mean_ms") / _mean(base, "ttft_mean_ms"),
            })  # fmt: skip
    return out


def markdown(rows: list[dict], baseline: str = "defaults") -> str:
    def figures(values: list[float]) -> str:
        return ", ".join(f"{v:,.0f}" if v >= 100 else f"{v:.1f}" for v in values)

    head = f"| streams | config | output tok/s, each turn / {baseline} | ratio "
    head += f"| TTFT p50 ms, each turn / {baseline} | ratio | TTFT mean ratio |"
    lines = [head, "|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(
            f"| {r['level']} | {r['config']} | {figures(r['tok_s'])} / {figures(r['base_tok_s'])} | "
            f"{r['tput_ratio']:.3f} | {figures(r['ttft'])} / {figures(r['base_ttft'])} | "
            f"{r['ttft_ratio']:.3f} | {r['ttft_mean_ratio']:.3f} |"
        )
    return "\n".join(lines)


def plot(levels: dict, png: Path, baseline: str = "defaults") -> None:
    import matplotlib  # noqa: PLC0415

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    keys = sorted(levels)
    configs = sorted({c for by_config in levels.values() for c in by_config})
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for ax, key, label in (
        (axes[0], "output_tok_s", "output tok/s"),
        (axes[1], "ttft_p50_ms", "TTFT p50 (ms)"),
    ):
        for n, config in enumerate(configs):
            for x, level in enumerate(keys):
                rows = levels[level].get(config, [])
                ys = [float(r[key]) / _mean(levels[level][baseline], key) for r in rows]
                ax.scatter([x + (n - 1) * 0.18] * len(ys), ys, s=18, label=config if x == 0 else None,
                           color=f"C{n}")  # fmt: skip
        ax.axhline(1.0, color="grey", lw=0.8)
        ax.axhline(0.97 if key == "output_tok_s" else 1.05, color="red", lw=0.8, ls="--")
        ax.set_xticks(range(len(keys)), [f"{s}" if i == 512 else f"{s}\n{i // 1024}k in" for i, s in keys])
        ax.set_xlabel("streams")
        ax.set_ylabel(f"{label}, each turn / {baseline}' mean")
    axes[0].legend()
    fig.suptitle("Configs served at once, benchmarked in turn (dashed: the issue's bound)")
    fig.tight_layout()
    fig.savefig(png, dpi=110)


def pooled(vb_dir: Path) -> dict[tuple[int, int], dict[str, list[float]]]:
    """Every request's TTFT in ms (bench_levels.py keeps them), by level and config, all turns but
    the warm-up pooled: a median of 256 requests split by a prefill step moves with one request,
    the pooled one over all turns much less."""
    levels: dict[tuple[int, int], dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    for config, _turn, streams, ilen, r in runs(vb_dir):
        if r.get("ttfts"):  # runs before bench_levels.py kept them have none
            levels[(ilen, streams)][config] += [t * 1000 for t in r["ttfts"]]
    return levels


def pooled_markdown(levels: dict, baseline: str = "defaults") -> str:
    head = f"| streams | config | requests | TTFT p50 ms, all turns / {baseline} | ratio | p90 / {baseline} |"
    lines = [head, "|---|---|---|---|---|---|"]
    for (ilen, streams), by_config in sorted(levels.items()):
        base = sorted(by_config.get(baseline, []))
        for config, unsorted in sorted(by_config.items()):
            if config == baseline or not base:
                continue
            values = sorted(unsorted)
            p50, b50 = statistics.median(values), statistics.median(base)
            p90, b90 = values[int(0.9 * (len(values) - 1))], base[int(0.9 * (len(base) - 1))]
            level = level_name(ilen, streams)
            lines.append(f"| {level} | {config} | {len(values)} / {len(base)} | {p50:.1f} / {b50:.1f} | "
                         f"{p50 / b50:.3f} | {p90:.1f} / {b90:.1f} |")  # fmt: skip
    return "\n".join(lines)


def pooled_plot(levels: dict, png: Path) -> None:
    import matplotlib  # noqa: PLC0415

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    keys = sorted(levels)
    fig, axes = plt.subplots(1, len(keys), figsize=(3.2 * len(keys), 3.4), squeeze=False)
    for ax, (ilen, streams) in zip(axes[0], keys, strict=True):
        for n, (config, values) in enumerate(sorted(levels[(ilen, streams)].items())):
            ax.hist(values, bins=40, histtype="step", color=f"C{n}", label=config)
            ax.axvline(statistics.median(values), color=f"C{n}", lw=0.8, ls="--")
        ax.set_title(f"{streams} streams" + ("" if ilen == 512 else f", {ilen // 1024}k in"))
        ax.set_xlabel("TTFT (ms)")
    axes[0][0].set_ylabel("requests")
    axes[0][0].legend(fontsize=7)
    fig.suptitle("Every request's time to first token, all turns (dashed: the pooled median)")
    fig.tight_layout()
    fig.savefig(png, dpi=110)


def main() -> None:
    if sys.argv[1] == "pooled":
        levels = pooled(Path(sys.argv[2]))
        print(pooled_markdown(levels, sys.argv[4] if len(sys.argv) > 4 else "defaults"))
        if len(sys.argv) > 3:
            pooled_plot(levels, Path(sys.argv[3]))
        return
    if sys.argv[1] == "csv":
        print(f"{to_csv(Path(sys.argv[2]), Path(sys.argv[3]))} runs -> {sys.argv[3]}")
        return
    levels = load(Path(sys.argv[2]))
    baseline = sys.argv[4] if len(sys.argv) > 4 else "defaults"
    print(markdown(ratios(levels, baseline), baseline))
    if len(sys.argv) > 3:
        plot(levels, Path(sys.argv[3]), baseline)


if __name__ == "__main__":
    main()
