"""The scenarios' hidden tests are decided outside the answer's process (issue #17, as HumanEval's).

For every shipped scenario: the reference answer gets every test point, known-wrong answers (a
plausible bug, a slow algorithm where efficiency counts, a forged pass) lose them. Large arguments
(the binary search's million-item list, passed in 40,000 calls) cross once, by identity.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
from aimachine.quality import plain
from aimachine.quality.execution import Executor
from aimachine.quality.sandbox import Limits, Settings
from aimachine.quality.scenarios import Scenario, load_scenarios, score_answer
from conftest import sandbox_executor


def _fenced(code: str) -> str:
    return f"```python\n{code.strip()}\n```\n"


# Old marker format and the answer pipe, printed and written by hand at the first call (code
# outside the function would not survive extraction): neither is a verdict.
FORGED = """
def sum_even_numbers(numbers):
    import json, os, sys
    print("AIMACHINE-TESTS-PASSED-0000000000000000" + json.dumps([None] * 6))
    out = os.fdopen(int(sys.argv[2]), "w")
    for index, _ in enumerate(open(sys.argv[1]).read().splitlines()):
        out.write(json.dumps([index, {"value": 12}]) + "\\n")
    out.close()
    os._exit(0)
"""

ALWAYS_EQUAL = """
class Anything:
    def __eq__(self, other):
        return True
    def __len__(self):
        return 0
"""

# Per scenario: answers that must lose test points, and the tests criteria's points each may keep.
WRONG: dict[str, dict[str, tuple[str, dict[str, float]]]] = {
    "sum_even_numbers": {
        "odd numbers": (
            "def sum_even_numbers(numbers: list[int]) -> int:\n    return sum(n for n in numbers if n % 2)",
            {"correctness": 5 * 1 / 6},  # only [] sums to 0 either way
        ),
        "forged": (FORGED, {"correctness": 5 / 6}),  # 12 for every call: right for the first only
        "always equal": (
            ALWAYS_EQUAL + "def sum_even_numbers(numbers):\n    return Anything()",
            {"correctness": 0},
        ),
    },
    "longest_common_subsequence": {
        "empty string": (
            "def longest_common_subsequence(a: str, b: str) -> str:\n    return ''",
            {"correctness": 4 * 2 / 6, "efficiency": 0},  # right only where the LCS is empty
        ),
        "exponential": (
            "def longest_common_subsequence(a, b):\n"
            "    if not a or not b:\n        return ''\n"
            "    if a[-1] == b[-1]:\n        return longest_common_subsequence(a[:-1], b[:-1]) + a[-1]\n"
            "    x, y = longest_common_subsequence(a[:-1], b), longest_common_subsequence(a, b[:-1])\n"
            "    return x if len(x) >= len(y) else y",
            {"correctness": 4, "efficiency": 0},  # right, but far too slow (and deep) for 2000 chars
        ),
    },
    "binary_search_bug": {
        "the original bug": (
            "def binary_search(arr, target):\n"
            "    left, right = 0, len(arr)\n"
            "    while left <= right:\n"
            "        mid = (left + right) // 2\n"
            "        if arr[mid] == target:\n            return mid\n"
            "        elif arr[mid] < target:\n            left = mid + 1\n"
            "        else:\n            right = mid - 1\n"
            "    return -1",
            {"fix": 4 * 3 / 6, "logarithmic": 2},  # IndexError past the end (the fast test never goes there)
        ),
        "linear scan": (
            "def binary_search(arr, target):\n"
            "    for i, x in enumerate(arr):\n        if x == target:\n            return i\n"
            "    return -1",
            {"fix": 4, "logarithmic": 0},  # right, but 40,000 scans of a million items time out
        ),
    },
    "refactor_comprehension": {
        "keeps zero": (
            "def process_data(data: list[float]) -> list[float]:\n    return [x * 2 for x in data if x >= 0]",
            {"behaviour": 4 * 5 / 6},  # [0, -1, -5] gives [0]
        ),
        "a generator": (
            "def process_data(data):\n    return (x * 2 for x in data if x > 0)",
            {"behaviour": 0},  # not plain data: no generator crosses
        ),
    },
}

WRONG_PROSE = {
    # The only scenario without tests: an explanation that misses what the rubric asks.
    "lru_cache_explanation": "It prints Fibonacci numbers. The decorator makes it look nicer.",
}


@pytest.fixture(scope="module")
def executor() -> Iterator[Executor]:
    yield from sandbox_executor(
        Settings(limits=Limits(timeout_s=10), workers=2, uid_base=2_000_400_000 + (os.getpid() % 50_000) * 8)
    )


@pytest.fixture(scope="module")
def scenarios() -> dict[str, Scenario]:
    return {s.id: s for s in load_scenarios()}


def _test_points(scenario: Scenario, answer: str, executor: Executor) -> dict[str, float]:
    score = score_answer(scenario, answer, executor)
    kinds = {c.id: c.kind for c in scenario.criteria}
    return {c.id: c.points for c in score.criteria if kinds[c.id] == "tests"}


def test_every_scenario_has_wrong_answers_here(scenarios: dict[str, Scenario]) -> None:
    tested = {sid for sid, s in scenarios.items() if any(c.kind == "tests" for c in s.criteria)}
    assert set(WRONG) == tested and set(WRONG) | set(WRONG_PROSE) == set(scenarios)


@pytest.mark.parametrize("sid", ["sum_even_numbers", "longest_common_subsequence", "binary_search_bug",
                                 "lru_cache_explanation", "refactor_comprehension"])  # fmt: skip
def test_reference_passes_and_known_wrong_answers_fail(
    sid: str, scenarios: dict[str, Scenario], executor: Executor
) -> None:
    scenario = scenarios[sid]
    reference = score_answer(scenario, str(scenario.reference_answer), executor)
    assert reference.points == scenario.max_points, reference.table()
    for criterion in reference.criteria:
        assert "hidden tests pass" not in criterion.evidence or "(" not in criterion.evidence, criterion
    if sid in WRONG_PROSE:
        wrong = score_answer(scenario, WRONG_PROSE[sid], executor)
        assert wrong.points <= 2, wrong.table()
        return
    for name, (code, expected) in WRONG[sid].items():
        points = _test_points(scenario, _fenced(code), executor)
        assert points == pytest.approx({k: round(v, 2) for k, v in expected.items()}, abs=0.01), (
            name,
            points,
        )


def test_forged_pass_says_why(scenarios: dict[str, Scenario], executor: Executor) -> None:
    scenario = scenarios["sum_even_numbers"]
    score = score_answer(scenario, _fenced(FORGED), executor)
    correctness = next(c for c in score.criteria if c.id == "correctness")
    # Its hand-written answers are data (12 for every call), checked by the replayed asserts; the
    # printed marker counts for nothing.
    assert correctness.evidence == "1/6 hidden tests pass (failed: AssertionError x5)", correctness


def test_large_arguments_cross_once_by_identity(scenarios: dict[str, Scenario], executor: Executor) -> None:
    scenario = scenarios["binary_search_bug"]
    criterion = next(c for c in scenario.criteria if c.id == "logarithmic")
    reference = str(scenario.reference_answer).split("```python\n", 1)[1].split("```", 1)[0]
    recorded = executor._snippet_reference(
        {
            "entry": "binary_search",
            "canonical": reference,
            "setup": "",
            "tests": list(criterion.spec["tests"]),
        }  # type: ignore[call-overload]
    )
    assert recorded["ok"], recorded
    (calls,) = recorded["calls"]  # type: ignore[misc]
    assert len(calls) == 40_000
    (big,) = recorded["objects"]  # type: ignore[misc]
    assert plain.loads(big) == list(range(0, 2_000_000, 2))
    assert all(
        call.startswith('[{"t":[{"r":0},') and len(call) < 40 for call in calls
    )  # a reference, no copy


def test_refs_refuse_a_changed_or_different_argument() -> None:
    big = list(range(2000))
    refs = plain.Refs()
    assert plain.encode([(big, 1)], refs=refs) == [{"t": [{"r": 0}, 1]}]
    assert plain.encode((big,), refs=refs) == {"t": [{"r": 0}]}  # the same object: the same reference
    big[0] = -1
    assert refs.changed() == [0]  # changed in place: the record step refuses such tests
    big.append(1)
    with pytest.raises(plain.NotPlain, match="changed between calls"):
        plain.encode(big, refs=refs)
    replay = plain.Refs(expected=[plain.dumps(list(range(2000)))])
    with pytest.raises(plain.NotPlain, match="differs from the recorded one"):
        plain.encode(list(range(1, 2001)), refs=replay)
    assert plain.decode({"r": 0}, refs=[big]) is big
    with pytest.raises(plain.NotPlain, match="malformed reference"):
        plain.decode({"r": 0})  # no references where none are expected (HumanEval's answers)
