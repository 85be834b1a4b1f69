"""The reason a rollback quotes, from a real journal of an engine that could not start."""

from __future__ import annotations

import importlib.util
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
DATA = Path(__file__).parent / "data"
_spec = importlib.util.spec_from_file_location(
    "llm_journal", REPO / "roles/llm_server/filter_plugins/llm_journal.py"
)
journal = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(journal)

_wait_spec = importlib.util.spec_from_file_location(
    "wait_ready", REPO / "roles/llm_server/files/wait_ready.py"
)
wait_ready = importlib.util.module_from_spec(_wait_spec)
_wait_spec.loader.exec_module(wait_ready)


def test_bad_option_journal_gives_the_engines_complaint_not_its_help_page():
    lines = (DATA / "journal-transformers-bad-option.txt").read_text().splitlines()
    assert len(lines) > 60  # two starts, each with transformers' whole option list
    reason = journal.journal_reason(lines)
    assert "Error: No such option '--max-num-seqs'." in reason
    assert "status=2/INVALIDARGUMENT" in reason
    # Repeated restarts print the same lines: quoted once; no option help in the message.
    assert reason.count("No such option") == 1
    assert "--continuous-batching" not in reason


def test_journal_without_an_error_line_gives_its_last_lines():
    lines = ["loading model", "", "listening on 127.0.0.1:8000", "shutting down"]
    assert journal.journal_reason(lines, count=2) == "listening on 127.0.0.1:8000 | shutting down"


def test_host_side_wait_uses_the_same_pattern():
    assert wait_ready._REASON.pattern == journal.REASON.pattern
