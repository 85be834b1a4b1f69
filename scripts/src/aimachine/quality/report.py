"""Summaries of a run: summary.json, samples.jsonl, a console report and a PNG against published scores."""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from pathlib import Path

from aimachine.quality.infill import latency_summary
from aimachine.quality.passk import pass_at_k, standard_error
from aimachine.quality.references import REFERENCES, references_for
from aimachine.quality.retrieval import retrieval_summary
from aimachine.quality.runner import SuiteRun

SCHEMA_VERSION = 1


def suite_summary(run: SuiteRun, ks: list[int]) -> dict[str, object]:
    per_problem: dict[str, list[bool]] = defaultdict(list)
    for record in run.records:
        per_problem[str(record["id"])].append(record["verdict"] == "passed")
    counts = [(len(v), sum(v)) for v in per_problem.values()]
    n = min(c[0] for c in counts) if counts else 0
    scores = [c / total for total, c in counts]
    summary: dict[str, object] = {
        "problems": len(per_problem),
        "samples_per_problem": n,
        "passed_samples": sum(c for _, c in counts),
        "pass@1": round(sum(scores) / len(scores), 4) if scores else None,
        "pass@1_stderr": round(standard_error(scores), 4) if scores else None,
        "error_kinds": dict(
            Counter(str(r.get("error_kind")) for r in run.records if r["verdict"] != "passed")
        ),
        "wall_time_s": round(run.wall_s, 2),
    }
    extra = {
        str(k): round(sum(pass_at_k(t, c, k) for t, c in counts) / len(counts), 4) for k in ks if 1 < k <= n
    }
    if extra:
        summary["pass@k"] = extra
    exec_times = [
        r["time"]["exec_s"]
        for r in run.records
        if isinstance(r.get("time"), dict) and r["time"].get("exec_s")
    ]  # type: ignore[index,union-attr]
    if exec_times:
        summary["exec_time_s_mean"] = round(sum(exec_times) / len(exec_times), 3)
    tokens = [r["usage"].get("completion_tokens") for r in run.records if isinstance(r.get("usage"), dict)]  # type: ignore[union-attr]
    if tokens and all(isinstance(t, int) for t in tokens):
        summary["completion_tokens"] = sum(tokens)  # type: ignore[arg-type]
    summary["references"] = [ref.__dict__ for ref in references_for(run.suite)]
    return summary


def scenarios_summary(run: SuiteRun) -> dict[str, object]:
    items = []
    for record in run.records:
        item = {
            "id": record["id"],
            "title": record.get("title", record["id"]),
            "points": record.get("points", 0.0),
            "max_points": record.get("max_points"),
            "percent": record.get("percent", 0.0),
            "criteria": record.get("criteria", []),
            "origin_reported_percent": record.get("origin_reported_percent"),
        }
        if "judge" in record:
            item["judge"] = {k: v for k, v in record["judge"].items() if k != "raw"}  # type: ignore[union-attr]
        items.append(item)
    points = sum(float(i["points"] or 0) for i in items)  # type: ignore[arg-type]
    maximum = sum(float(i["max_points"] or 0) for i in items)  # type: ignore[arg-type]
    return {
        "count": len(items),
        "points": round(points, 2),
        "max_points": maximum,
        "percent": round(100 * points / maximum, 1) if maximum else None,
        "items": items,
        "wall_time_s": round(run.wall_s, 2),
    }


def _summary(run: SuiteRun, ks: list[int]) -> dict[str, object]:
    if run.suite == "retrieval":
        return retrieval_summary(run)
    summary = suite_summary(run, ks)
    if run.suite == "infill":
        summary.update(latency_summary(run))
    return summary


def build_summary(
    runs: list[SuiteRun], meta: dict[str, object], ks: list[int], wall_s: float
) -> dict[str, object]:
    suites = {run.suite: _summary(run, ks) for run in runs if run.suite != "scenarios"}
    summary: dict[str, object] = {"schema_version": SCHEMA_VERSION, **meta, "suites": suites}
    scenario_runs = [run for run in runs if run.suite == "scenarios"]
    summary["scenarios"] = scenarios_summary(scenario_runs[0]) if scenario_runs else None
    summary["wall_time_s"] = round(wall_s, 2)
    return summary


def write_samples(path: Path, runs: list[SuiteRun]) -> None:
    with path.open("w", encoding="utf-8") as handle:
        for run in runs:
            for record in run.records:
                handle.write(json.dumps(record, ensure_ascii=False) + "\n")


def render_text(summary: dict[str, object], runs: list[SuiteRun]) -> str:
    lines = [f"model: {summary.get('model')}  endpoint: {summary.get('endpoint')}"]
    lines[0] += f"  solutions: {summary.get('solutions')}"
    every: dict[str, dict[str, object]] = summary["suites"]  # type: ignore[assignment]
    suites = {name: s for name, s in every.items() if "pass@1" in s}
    if suites:
        lines += ["", "| suite | problems | pass@1 | ± SE | other | wall s |", "|---|---|---|---|---|---|"]
        for name, s in suites.items():
            p1, se = s["pass@1"], s["pass@1_stderr"]
            at_k: dict[str, float] = s.get("pass@k") or {}  # type: ignore[assignment]
            other = ", ".join(f"pass@{k} {100 * v:.1f}%" for k, v in at_k.items()) or "-"
            cells = [name, s["problems"], f"{100 * p1:.1f}%", f"{100 * se:.1f}", other, s["wall_time_s"]]  # type: ignore[operator]
            lines.append("| " + " | ".join(map(str, cells)) + " |")
        for name, s in suites.items():
            refs = "; ".join(f"{r['model']} {r['percent']}% ({r['source']})" for r in s["references"])  # type: ignore[union-attr]
            if refs:
                lines.append(f"published {name}: {refs}")
        for name, s in suites.items():
            if s.get("ttft_ms"):
                ttft, total = s["ttft_ms"], s["total_ms"] or {}  # type: ignore[assignment]
                lines.append(
                    f"{name} latency (streamed): TTFT p50 {ttft['p50']} ms, p99 {ttft['p99']} ms; "  # type: ignore[index]
                    f"total p50 {total.get('p50')} ms, p99 {total.get('p99')} ms"  # type: ignore[union-attr]
                )
    r = every.get("retrieval")
    if r:
        e = r.get("embeddings") or {}
        chance = r["chance"]
        lines += [
            "",
            f"retrieval: {r['queries']} queries, recall@1 {100 * r['recall@1']:.1f}% "  # type: ignore[operator]
            f"(chance {100 * chance['recall@1']:.1f}%), recall@5 {100 * r['recall@5']:.1f}%, "  # type: ignore[index,operator]
            f"MRR {r['mrr']:.3f} (chance {chance['mrr']:.3f}); sanity {r['sanity']['rule']}: "  # type: ignore[index]
            f"{'passed' if r['sanity']['passed'] else 'FAILED'}; {e.get('texts_per_s')} texts/s",  # type: ignore[index,union-attr]
        ]
    for run in runs:
        if run.suite != "scenarios":
            continue
        sc: dict[str, object] = summary["scenarios"]  # type: ignore[assignment]
        lines += [
            "",
            f"### Practical scenarios: {sc['points']:g}/{sc['max_points']:g} ({sc['percent']}%)",
            "",
        ]
        for record in run.records:
            if "table" in record:
                lines += [str(record["table"]), ""]
            else:
                lines += [f"#### {record['id']}: {record.get('error_kind')} {record.get('error_detail')}", ""]
            judge = record.get("judge")
            if isinstance(judge, dict):
                if judge.get("error"):
                    lines += [f"judge: unusable reply ({judge['error']})", ""]
                else:
                    lines += [
                        f"judge: {judge['points']:g}/{judge['max_points']:g}: {judge.get('comment') or ''}",
                        "",
                    ]
    lines.append(f"wall time: {summary['wall_time_s']} s")
    return "\n".join(lines)


def plot(summary: dict[str, object], path: Path) -> None:
    """Bars: our pass@1 per suite (±1 SE) with published scores as markers; scenario points per scenario."""
    import matplotlib  # noqa: PLC0415 - only needed when a plot is written

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    every: dict[str, dict[str, object]] = summary["suites"]  # type: ignore[assignment]
    suites = {name: s for name, s in every.items() if "pass@1" in s}
    scenarios = summary.get("scenarios")
    panels = (1 if suites else 0) + (1 if scenarios else 0)
    if panels == 0:
        return
    fig, axes = plt.subplots(1, panels, figsize=(6.2 * panels, 5.2), squeeze=False)
    axis_iter = iter(axes[0])
    sources: list[str] = []
    if suites:
        ax = next(axis_iter)
        names = list(suites)
        values = [100 * float(suites[n]["pass@1"] or 0) for n in names]  # type: ignore[arg-type]
        errors = [100 * float(suites[n]["pass@1_stderr"] or 0) for n in names]  # type: ignore[arg-type]
        ax.bar(names, values, width=0.5, yerr=errors, capsize=6, color="#4c72b0", label="this run")
        for x, value in enumerate(values):
            ax.text(x, value / 2, f"{value:.1f}%", ha="center", color="white", fontsize=9)
        styles = dict(
            zip(
                [r.model for r in REFERENCES],
                zip("o^sD", ["#dd8452", "#c44e52", "#8172b3", "#937860"], strict=False),
                strict=False,
            )
        )
        for x, name in enumerate(names):
            for ref in references_for(name):
                marker, color = styles.get(ref.model, ("o", "#dd8452"))
                ax.plot(
                    x + 0.33,
                    ref.percent,
                    marker=marker,
                    color=color,
                    linestyle="none",
                    label=f"{ref.model} (published)",
                )
                if ref.source not in sources:
                    sources.append(ref.source)
        handles, labels = ax.get_legend_handles_labels()
        unique = dict(zip(labels, handles, strict=True))
        ax.legend(unique.values(), unique.keys(), fontsize=7, loc="lower left")
        ax.set_xlim(-0.6, len(names) - 0.4)
        ax.set_ylim(0, 100)
        ax.set_ylabel("pass@1 (%), error bar: ±1 standard error")
        ax.set_title("Benchmarks")
    if scenarios:
        ax = next(axis_iter)
        items = scenarios["items"]  # type: ignore[index]
        labels = [str(i["id"]).replace("_", "\n") for i in items]
        ax.bar(
            labels,
            [float(i["percent"] or 0) for i in items],
            width=0.6,
            color="#55a868",
            label="this run (rubric)",
        )
        origin = [(k, i.get("origin_reported_percent")) for k, i in enumerate(items)]
        shown = [(k, v) for k, v in origin if isinstance(v, int | float)]
        if shown:
            ax.plot(
                [k for k, _ in shown],
                [v for _, v in shown],
                "k_",
                markersize=18,
                mew=2,
                label="origin document (hand-scored)",
            )
            sources.append("scenarios: origin document's hand scores, not comparable point for point")
        ax.legend(fontsize=7, loc="upper right")
        ax.set_ylim(0, 105)
        ax.set_ylabel("rubric points (%)")
        ax.set_title(f"Practical scenarios: {scenarios['percent']}% overall")  # type: ignore[index]
        ax.tick_params(axis="x", labelsize=7)
    fig.suptitle(f"aimachine-quality: {summary.get('model')} ({summary.get('solutions')})", fontsize=10)
    footer = "\n".join(f"Sources: {s}" for s in sources)
    fig.text(0.01, 0.01, footer, fontsize=6, va="bottom")
    fig.tight_layout(rect=(0, 0.04 + 0.025 * len(sources), 1, 0.97))
    fig.savefig(path, dpi=110)
    plt.close(fig)
