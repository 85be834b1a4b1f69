"""The isolation in force reaches the report and its gates (issue #17, point 3).

The inputs are the recorded report fixtures with the quality summary's `settings.sandbox` replaced
by what this machine's sandbox records (full) and by a recorded-shape partial one (no bwrap).
"""

from __future__ import annotations

import copy
import json
import shutil
from pathlib import Path

import pytest
from aimachine.quality.sandbox import GIB, Limits, Sandbox, SandboxError, Settings
from aimachine.report.build import Inputs, build_report, isolation_text
from aimachine.report.gates import evaluate_gates
from aimachine.report.render import render_markdown

DATA = Path(__file__).parent / "data" / "report"


def _inputs(sandbox: dict[str, object]) -> Inputs:
    quality = json.loads((DATA / "run1" / "quality" / "summary.json").read_text(encoding="utf-8"))
    quality = copy.deepcopy(quality)
    quality["settings"]["sandbox"] = sandbox
    return Inputs(
        meta=json.loads((DATA / "meta.json").read_text(encoding="utf-8")),
        bench=json.loads((DATA / "run1" / "bench" / "bench.json").read_text(encoding="utf-8")),
        quality=quality,
    )


def _recorded(bwrap: str | None) -> dict[str, object]:
    settings = Settings(limits=Limits(memory_bytes=1 * GIB), workers=1, uid_base=2_000_400_000, bwrap=bwrap)
    try:
        box = Sandbox.open(settings)
    except SandboxError as error:
        pytest.skip(f"no sandbox here: {error}")
    try:
        return json.loads(json.dumps(box.isolation.as_dict()))  # as summary.json holds it
    finally:
        box.close()


def test_full_isolation_passes_its_gate_and_is_stated() -> None:
    if shutil.which("bwrap") is None:
        pytest.skip("bubblewrap (bwrap) is not installed")
    iso = _recorded(None)
    if not iso["full"]:
        pytest.skip(f"this machine gives partial isolation only: {iso['missing']}")
    report = build_report(_inputs(iso))
    assert report["quality"]["sandbox"].startswith("bubblewrap ")
    assert "namespaces: user, mnt, ipc, pid, net, uts, cgroup" in report["quality"]["sandbox"]
    gate = report["gates"]["results"][0]
    assert gate["name"] == "sandbox isolation" and gate["status"] == "pass"
    assert "sandbox: bubblewrap" in render_markdown(report)


def test_partial_isolation_is_flagged_and_fails_the_gate_unless_allowed() -> None:
    iso = _recorded("/nonexistent/bwrap")  # root mode without bubblewrap: the run goes on, partial
    assert iso["full"] is False and "bubblewrap" in iso["missing"]
    report = build_report(_inputs(iso))
    text = report["quality"]["sandbox"]
    assert text.startswith("PARTIAL ISOLATION (missing bubblewrap, user namespace")
    assert "PARTIAL ISOLATION" in render_markdown(report)
    assert not report["gates"]["passed"]
    assert report["gates"]["failed"][0].startswith("sandbox isolation: partial (missing bubblewrap")
    allowed = build_report(_inputs(iso), config={"allow_partial_isolation": True})
    assert allowed["gates"]["passed"]
    assert "allowed: llm_verify_allow_partial_isolation" in allowed["gates"]["warned"][0]


def test_gate_reads_the_metrics_only_when_quality_ran() -> None:
    assert evaluate_gates([], {})["results"] == []  # nothing executed: nothing to gate
    partial = {"sandbox_isolation_full": False, "sandbox_isolation_missing": ["ipc namespace"]}
    assert evaluate_gates([], partial)["failed"] == [
        "sandbox isolation: partial (missing ipc namespace), required full: fail"
    ]
    assert isolation_text({"mode": "root", "net": True}).startswith("PARTIAL ISOLATION")  # pre-bwrap summary
