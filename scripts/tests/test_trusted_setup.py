"""The trusted record step of the scenarios' tests (quality/_trusted.py): a setup snippet may not
call the entry point, since its call would have no answer to replay outside the answer's process."""

from aimachine.quality import _trusted

REFERENCE = "def double(x):\n    return 2 * x\n"


def _record(setup: str) -> dict:
    job = {"canonical": REFERENCE, "entry": "double", "setup": setup, "tests": ["assert double(2) == 4\n"]}
    return _trusted.record_snippets(job)


def test_a_setup_that_calls_the_entry_point_is_refused_with_the_reason():
    done = _record("seed = double(1)\n")
    assert done["ok"] is False
    assert "the setup snippet fails: RuntimeError: it calls double: only the tests may" in done["error"]


def test_a_setup_without_the_call_records_the_tests_calls():
    done = _record("seed = 1\n")
    assert done["ok"] is True and len(done["calls"]) == 1 and len(done["calls"][0]) == 1
