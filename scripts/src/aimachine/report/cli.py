"""aimachine-report: render the verification report from result directories.

The on-host orchestration (`aimachine-verify`) is `aimachine.report.verify`.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
from pathlib import Path
from typing import Any

from aimachine.report.build import Inputs, build_report
from aimachine.report.clients import write_clients
from aimachine.report.gates import GateError
from aimachine.report.plots import write_plots
from aimachine.report.render import render_html, render_markdown


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None


def load_history(directory: Path | None, exclude: Path | None = None) -> list[dict[str, Any]]:
    """Every earlier report.json under directory/*/ (unreadable ones are skipped, not fatal)."""
    if directory is None or not directory.is_dir():
        return []
    out = []
    for path in sorted(directory.glob("*/report.json")):
        if exclude is not None and path.parent.resolve() == exclude.resolve():
            continue
        with contextlib.suppress(OSError, json.JSONDecodeError):
            out.append(json.loads(path.read_text(encoding="utf-8")))
    return out


def _read_jsonl(path: Path) -> list[dict[str, Any]] | None:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    out = []
    for line in text.splitlines():
        with contextlib.suppress(json.JSONDecodeError):
            out.append(json.loads(line))
    return out


def read_models(models_dir: Path | None) -> dict[str, dict[str, Any]]:
    """models/<served-name>/bench/bench.json and quality/summary.json of the other served models."""
    out: dict[str, dict[str, Any]] = {}
    if models_dir is None or not models_dir.is_dir():
        return out
    for sub in sorted(p for p in models_dir.iterdir() if p.is_dir()):
        out[sub.name] = {
            "bench": _read_json(sub / "bench" / "bench.json"),
            "quality": _read_json(sub / "quality" / "summary.json"),
        }
    return out


def _read_speculation(bench_dir: Path | None) -> dict[str, Any] | None:
    """llm_verify's speculation step: <bench dir>/../speculation/<off | method>/bench.json."""
    if bench_dir is None or not (bench_dir.parent / "speculation").is_dir():
        return None
    found = {
        d.name: _read_json(d / "bench.json")
        for d in sorted((bench_dir.parent / "speculation").iterdir())
        if (d / "bench.json").is_file()
    }
    return found or None


def render(
    output: Path,
    meta: dict[str, Any],
    bench_dir: Path | None,
    quality_dir: Path | None,
    *,
    config: dict[str, Any],
    history: list[dict[str, Any]],
    generated_at: str | None = None,
    models_dir: Path | None = None,
) -> dict[str, Any]:
    """Write report.json, report.md, report.html, the plots and clients/ into output; return the report."""
    inputs = Inputs(
        meta=meta,
        bench=_read_json(bench_dir / "bench.json") if bench_dir else None,
        quality=_read_json(quality_dir / "summary.json") if quality_dir else None,
        samples=_read_jsonl(quality_dir / "samples.jsonl") if quality_dir else None,
        models=read_models(models_dir),
        speculation=_read_speculation(bench_dir),
    )
    report = build_report(inputs, config, history, generated_at)
    output.mkdir(parents=True, exist_ok=True)
    if meta.get("clients"):
        # Every served model (the published fact's `models`, in meta), each with its role.
        clients = {"models": meta.get("models") or [], **meta["clients"]}
        report["clients"] = write_clients(output / "clients", clients)
    report["plots"] = write_plots(report, output)
    (output / "report.json").write_text(json.dumps(report, indent=2, default=str) + "\n", encoding="utf-8")
    (output / "report.md").write_text(render_markdown(report), encoding="utf-8")
    (output / "report.html").write_text(render_html(report, output), encoding="utf-8")
    return report


def render_main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="aimachine-report", description="Render the verification report from result directories."
    )
    parser.add_argument("--meta", type=Path, required=True, help="host/model/engine metadata JSON")
    parser.add_argument("--bench", type=Path, help="aimachine-bench --output directory")
    parser.add_argument("--quality", type=Path, help="aimachine-quality --output directory")
    parser.add_argument(
        "--models", type=Path, help="directory of <served-name>/bench|quality of the other models"
    )
    parser.add_argument("--config", type=Path, help="gates, cost and tolerance (JSON)")
    parser.add_argument("--history", type=Path, help="directory of earlier runs (*/report.json)")
    parser.add_argument("--generated-at", help="timestamp to record (default: now, UTC)")
    parser.add_argument("--output", type=Path, required=True)
    args = parser.parse_args(argv)
    meta = _read_json(args.meta)
    if meta is None:
        parser.error(f"--meta {args.meta} not found")
    config = (_read_json(args.config) if args.config else None) or {}
    try:
        report = render(
            args.output,
            meta,
            args.bench,
            args.quality,
            config=config,
            history=load_history(args.history, args.output),
            generated_at=args.generated_at,
            models_dir=args.models,
        )
    except GateError as error:
        print(f"aimachine-report: {error}", file=sys.stderr)
        return 2
    print(f"wrote {args.output}/report.md, report.html, report.json, {', '.join(report['plots'])}")
    for message in report["gates"]["failed"] + report["gates"]["warned"]:
        print(f"gate: {message}", file=sys.stderr)
    return 0


def verify_main(argv: list[str] | None = None) -> int:
    """The old entry point of aimachine-verify, kept for venvs installed before the move."""
    from aimachine.report.verify import main  # noqa: PLC0415 - verify imports this module

    return main(argv)


if __name__ == "__main__":
    sys.exit(render_main())
