"""Command-line checks: bad arguments and missing data give a clear message, not a traceback."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from aimachine.quality import cli


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--samples", "5"], "--samples > 1 needs sampling: set --temperature"),
        (
            ["--solutions", "origin", "--suites", "humaneval"],
            "--solutions origin exists for --suites scenarios only",
        ),
        (["--judge", "--suites", "humaneval"], "--judge scores scenarios"),
    ],
)
def test_inconsistent_options_are_refused(args: list[str], message: str) -> None:
    with pytest.raises(SystemExit, match=message):
        cli.main(args)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--suites", "humaneval,swebench"], "unknown suite(s) ['swebench']"),
        (["--k", "0"], "--k values must be >= 1"),
        (["--workers", "0"], "must be >= 1"),
        (["--timeout", "-1"], "must be > 0"),
        (["--api-key", "sk-123"], "unrecognized arguments: --api-key"),  # keys never on the command line
    ],
)
def test_bad_arguments_exit_2(args: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        cli.main(args)
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err


def test_missing_mbpp_copy_is_a_clear_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = cli.main(
        ["--solutions", "canonical", "--suites", "mbpp", "--mbpp-path", str(tmp_path / "nope"), "--quiet"]
    )
    assert code == 1
    assert f"MBPP path {tmp_path / 'nope'} does not exist" in capsys.readouterr().err


def test_no_problem_selected_is_a_clear_error(capsys: pytest.CaptureFixture[str]) -> None:
    code = cli.main(
        ["--solutions", "canonical", "--suites", "humaneval", "--task-ids", "HumanEval/999", "--quiet"]
    )
    assert code == 1
    assert "no humaneval problems selected" in capsys.readouterr().err


@pytest.mark.e2e  # the scenarios' efficiency tests take seconds
def test_small_canonical_run_writes_every_output(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = cli.main(
        ["--solutions", "canonical", "--suites", "humaneval,scenarios",
         "--task-ids", "HumanEval/0,HumanEval/10", "--output", str(tmp_path), "--quiet", "--workers", "2"]
    )  # fmt: skip
    assert code == 0
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["suites"]["humaneval"]["passed_samples"] == 2
    assert summary["scenarios"]["percent"] == 100.0
    assert summary["settings"]["limits"]["timeout_s"] == 10.0
    samples = [json.loads(line) for line in (tmp_path / "samples.jsonl").read_text().splitlines()]
    assert [s["id"] for s in samples] == [
        "HumanEval/0",
        "HumanEval/10",
        *[i["id"] for i in summary["scenarios"]["items"]],
    ]
    assert (tmp_path / "quality.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    out = capsys.readouterr().out
    assert "| humaneval | 2 | 100.0% | 0.0 | - |" in out and "wall time:" in out


def test_sandbox_user_from_the_environment(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The verify unit names the sandbox account in AIMACHINE_SANDBOX_USER; a missing one is refused."""
    monkeypatch.setenv("AIMACHINE_SANDBOX_USER", "aimachine-no-such-sandbox-user")
    code = cli.main(
        ["--solutions", "canonical", "--suites", "humaneval", "--task-ids", "HumanEval/0", "--quiet"]
    )
    assert code == 1
    assert "sandbox user 'aimachine-no-such-sandbox-user' does not exist" in capsys.readouterr().err
