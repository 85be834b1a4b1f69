"""Speculative decoding, measured both ways on the owner's card: which is faster, and by how much.

llm_verify's speculation step (roles/llm_verify/tasks/speculation.yml) runs aimachine-bench's
coding workload with natural stops at one stream and at the team's concurrency, once with
speculation off and once per method, restarting the engine in between. ``bench`` maps each
configuration to its bench.json (1.1): ``{"off": {...}, "ngram": {...}, ...}``. Each level's
``server_metrics.spec_decode`` holds vLLM's own counters (drafts, draft and accepted tokens).

The decision, from recorded numbers only:
- a method is compared level by level (same concurrency) with ``off`` on output throughput (the
  tokens users receive per second) and TPOT p50 (how fast one answer streams);
- it is *faster* when its throughput is at least ``MARGIN`` above off's at every level measured,
  *slower* when at least ``MARGIN`` below at every level, otherwise *no clear difference*;
- a method whose levels carry no spec_decode counters did not speculate (its engine started
  without it): it is reported and never chosen;
- the choice is the faster method with the largest worst-level gain, else ``off`` (the simpler
  engine; also the choice when it is a draw);
- a run on random weights (``meta["speculation"]["random_weights"]`` or the model's
  ``random_weights``) makes no choice: random text accepts almost nothing, so its figures are the
  overhead of proposing, never a speedup.

``report_section(meta=, bench=, history=)`` returns ``{}`` when speculation was not measured both
ways (a plain bench.json, or no baseline), else ``{"text", "rows", "levels", "decision"}``: rows
are the report's records (label + value, unit, digits, measured: report/strategies.py shows them
in "Improvement strategies"), levels one dict per method and level with every figure.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from aimachine.report.records import rec

# Below this relative difference in output throughput two runs are taken as equal: the
# level-to-level spread of repeated runs on the lent H200 was 1-3 % (docs/benchmarks.md).
MARGIN = 0.03
BASELINE = "off"


def _levels(doc: Mapping[str, Any] | None) -> dict[int, Mapping[str, Any]]:
    out: dict[int, Mapping[str, Any]] = {}
    for level in (doc or {}).get("levels") or []:
        concurrency = level.get("concurrency") or level.get("max_concurrency")
        if concurrency is not None:
            out[int(concurrency)] = level
    return out


def _summary(level: Mapping[str, Any]) -> tuple[float | None, float | None]:
    summary = level.get("summary") or {}
    tput = summary.get("output_throughput")
    tpot = (summary.get("tpot_ms") or {}).get("p50")
    return (None if tput is None else float(tput)), (None if tpot is None else float(tpot))


def _workload_key(doc: Mapping[str, Any] | None) -> tuple:
    w = (doc or {}).get("workload") or {}
    return (w.get("name"), w.get("dataset"), w.get("stop"), w.get("output_len"), w.get("temperature"))


def _random_weights(meta: Mapping[str, Any]) -> bool:
    spec = meta.get("speculation") or {}
    model = meta.get("model") or {}
    return bool(spec.get("random_weights") or model.get("random_weights"))


def _verdict(ratios: list[float]) -> str:
    if ratios and all(r >= 1 + MARGIN for r in ratios):
        return "faster"
    if ratios and all(r <= 1 - MARGIN for r in ratios):
        return "slower"
    return "no clear difference"


def _pct(ratio: float) -> str:
    return f"{(ratio - 1) * 100:+.1f} %"


def report_section(
    *,
    meta: Mapping[str, Any] | None = None,
    bench: Mapping[str, Mapping[str, Any]] | None = None,
    history: list[Mapping[str, Any]] | None = None,
) -> dict[str, Any]:
    meta = meta or {}
    bench = bench or {}
    random = _random_weights(meta)
    base = bench.get(BASELINE)
    methods = [m for m in bench if m != BASELINE and isinstance(bench[m], Mapping) and "levels" in bench[m]]
    if not isinstance(base, Mapping) or not methods:
        return {}
    base_levels = _levels(base)
    rows: list[dict[str, Any]] = []
    verdicts: dict[str, dict[str, Any]] = {}
    for method in methods:
        doc = bench[method]
        if _workload_key(doc) != _workload_key(base):
            verdicts[method] = {"verdict": "not comparable", "reason": "different workloads"}
            continue
        ratios: list[float] = []
        speculated = False
        for concurrency, level in sorted(_levels(doc).items()):
            if concurrency not in base_levels:
                continue
            tput, tpot = _summary(level)
            base_tput, base_tpot = _summary(base_levels[concurrency])
            spec = (level.get("server_metrics") or {}).get("spec_decode")
            speculated = speculated or bool(spec and spec.get("draft_tokens"))
            ratio = tput / base_tput if tput and base_tput else None
            if ratio is not None:
                ratios.append(ratio)
            rows.append(
                {
                    "method": method,
                    "concurrency": concurrency,
                    "output_tok_s": tput,
                    "output_tok_s_off": base_tput,
                    "throughput_ratio": ratio,
                    "tpot_p50_ms": tpot,
                    "tpot_p50_ms_off": base_tpot,
                    "acceptance_rate": (spec or {}).get("acceptance_rate"),
                    "mean_acceptance_length": (spec or {}).get("mean_acceptance_length"),
                    "draft_tokens": (spec or {}).get("draft_tokens"),
                    "accepted_tokens": (spec or {}).get("accepted_tokens"),
                    "source": f"bench.json levels c{concurrency}: {method} and {BASELINE} "
                    "(summary.output_throughput, tpot_ms.p50, server_metrics.spec_decode)",
                }
            )
        if not ratios:
            verdicts[method] = {"verdict": "not comparable", "reason": "no level measured both ways"}
        elif not speculated:
            verdicts[method] = {
                "verdict": "did not speculate",
                "reason": "no spec_decode counters",
                "ratios": ratios,
            }
        else:
            verdicts[method] = {
                "verdict": _verdict(ratios),
                "ratios": ratios,
                "worst": min(ratios),
                "best": max(ratios),
            }

    lines = []
    for method, v in verdicts.items():
        if "ratios" in v and v["verdict"] not in ("did not speculate",):
            lines.append(
                f"{method} against off: {v['verdict']} (output throughput {_pct(v['worst'])} to "
                f"{_pct(v['best'])} over the levels measured)."
            )
        else:
            lines.append(f"{method}: {v['verdict']} ({v.get('reason', '')}).")
    if random:
        decision = {
            "choice": None,
            "reason": "random weights: acceptance on random text says nothing about real text; "
            "the figures are the overhead of proposing only",
        }
        lines.append("No choice is made from random weights; the figures above are speculation's overhead.")
    else:
        faster = {m: v for m, v in verdicts.items() if v["verdict"] == "faster"}
        if faster:
            choice = max(faster, key=lambda m: faster[m]["worst"])
            decision = {
                "choice": choice,
                "speedup": faster[choice]["worst"],
                "reason": f"{choice} is faster at every level measured, "
                f"by at least {_pct(faster[choice]['worst'])}",
            }
            lines.append(f"Faster here: {choice}, by {_pct(faster[choice]['worst'])} at its worst level.")
        else:
            decision = {
                "choice": BASELINE,
                "reason": "no method is faster at every level by more than "
                f"{MARGIN * 100:.0f} %: off is the simpler engine",
            }
            lines.append(f"Faster here: none by more than {MARGIN * 100:.0f} % at every level; off stays.")
    previous = next(
        (
            h["speculation"]["decision"].get("choice")
            for h in reversed(history or [])
            if isinstance(h.get("speculation"), Mapping) and h["speculation"].get("decision")
        ),
        None,
    )
    if previous is not None and previous != decision.get("choice"):
        lines.append(f"The previous report chose {previous}.")
    decision["verdicts"] = verdicts
    records = []
    for row in rows:
        where = f"{row['method']} and {BASELINE} at {row['concurrency']} streams"
        measured = f"aimachine-bench, {row['source']}"
        records.append(
            {
                "label": f"{where}: output throughput, {row['method']}",
                **rec(row["output_tok_s"], "tok/s", digits=0, measured=measured),
            }
        )
        records.append(
            {
                "label": f"{where}: output throughput, {BASELINE}",
                **rec(row["output_tok_s_off"], "tok/s", digits=0, measured=measured),
            }
        )
        if row["acceptance_rate"] is not None:
            records.append(
                {
                    "label": f"{where}: draft tokens accepted (vLLM's counters)",
                    **rec(100 * row["acceptance_rate"], "%", digits=1, measured=measured),
                }
            )
    return {"text": " ".join(lines), "rows": records, "levels": rows, "decision": decision}


def main(argv: list[str] | None = None) -> int:
    """`python -m aimachine.report.speculation DIR`: DIR/<off | method>/bench.json -> the decision as
    one JSON line (llm_verify's speculation step reads it); random weights with --random-weights."""
    import argparse  # noqa: PLC0415
    import json  # noqa: PLC0415
    from pathlib import Path  # noqa: PLC0415

    cli = argparse.ArgumentParser(description=main.__doc__)
    cli.add_argument("dir", type=Path)
    cli.add_argument("--random-weights", action="store_true")
    args = cli.parse_args(argv)
    bench = {
        d.name: json.loads((d / "bench.json").read_text(encoding="utf-8"))
        for d in sorted(args.dir.iterdir())
        if (d / "bench.json").is_file()
    }
    meta = {"speculation": {"random_weights": args.random_weights}}
    section = report_section(meta=meta, bench=bench)
    decision = section.get("decision") or {"choice": None, "reason": "not measured both ways"}
    print(
        json.dumps(
            {"choice": decision.get("choice"), "reason": decision.get("reason"), "text": section.get("text")}
        )
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
