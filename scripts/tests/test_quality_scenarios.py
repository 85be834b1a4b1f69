"""The practical scenarios: data files, deterministic scoring in the sandbox, adding one by adding a file."""

from __future__ import annotations

import json
import textwrap
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from aimachine.quality import cli
from aimachine.quality.execution import Executor
from aimachine.quality.judge import judge_prompt, parse_verdict
from aimachine.quality.sandbox import Settings
from aimachine.quality.scenarios import (
    BUILTIN_DIR,
    ScenarioError,
    load_scenario,
    load_scenarios,
    score_answer,
)
from conftest import sandbox_executor

ORIGIN_IDS = [
    "sum_even_numbers",
    "longest_common_subsequence",
    "binary_search_bug",
    "lru_cache_explanation",
    "refactor_comprehension",
]

NEW_SCENARIO = """\
---
id: celsius
title: Unit conversion
prompt: "Write `to_fahrenheit(celsius: float) -> float`."
entry_point: to_fahrenheit
criteria:
  - id: correct
    description: "Correctness"
    points: 3
    kind: tests
    tests:
      - assert to_fahrenheit(0) == 32
      - assert to_fahrenheit(100) == 212
      - assert abs(to_fahrenheit(-40) + 40) < 1e-9
  - id: hints
    description: "Type hints"
    points: 1
    kind: type_hints
  - id: formula
    description: "Explains the formula"
    points: 1
    kind: concepts
    concepts:
      - name: 9/5 factor
        patterns: ["9\\\\s*/\\\\s*5", "1\\\\.8"]
reference_answer: |
  ```python
  def to_fahrenheit(celsius: float) -> float:
      return celsius * 9 / 5 + 32
  ```
"""


@pytest.fixture(scope="module")
def executor() -> Iterator[Executor]:
    yield from sandbox_executor(
        Settings(workers=2, uid_base=2_000_300_000 + (__import__("os").getpid() % 50_000) * 8)
    )


def test_the_five_origin_scenarios_ship_as_files() -> None:
    scenarios = load_scenarios()
    assert [s.id for s in scenarios] == ORIGIN_IDS
    assert all(s.max_points == 10 for s in scenarios)
    assert all(s.reference_answer and s.origin_answer for s in scenarios)
    assert sorted(p.name for p in BUILTIN_DIR.glob("*.yaml"))[0] == "01_sum_even_numbers.yaml"


def _score_all(executor: Executor, answers: dict[str, str]) -> dict[str, object]:
    scenarios = {s.id: s for s in load_scenarios()}
    with ThreadPoolExecutor(max_workers=len(answers)) as pool:
        futures = {
            sid: pool.submit(score_answer, scenarios[sid], text, executor) for sid, text in answers.items()
        }
        return {sid: future.result() for sid, future in futures.items()}


def test_reference_answers_score_full_points(executor: Executor) -> None:
    answers = {s.id: str(s.reference_answer) for s in load_scenarios()}
    for sid, score in _score_all(executor, answers).items():
        assert score.points == 10, (sid, score.table())  # type: ignore[attr-defined]


@pytest.mark.e2e  # the origin's LCS runs until it exhausts 2 GiB or 10 s
def test_origin_document_answers_score_as_documented(executor: Executor) -> None:
    """The outputs printed in the origin document, scored by the rubric (docs/quality.md lists why)."""
    answers = {s.id: str(s.origin_answer) for s in load_scenarios()}
    scores = _score_all(executor, answers)
    points = {sid: {c.id: c.points for c in score.criteria} for sid, score in scores.items()}  # type: ignore[attr-defined]
    assert points["sum_even_numbers"] == {"correctness": 0, "type_hints": 2, "docstring": 0, "idiom": 1}
    assert points["longest_common_subsequence"] == {
        "correctness": 4, "efficiency": 0, "approach": 0, "complexity": 0, "type_hints": 1, "docstring": 0
    }  # fmt: skip
    assert points["binary_search_bug"] == {"fix": 4, "bug_located": 2, "consequence": 0, "logarithmic": 2}
    assert points["lru_cache_explanation"] == {
        "memoization": 2, "exponential": 0, "linear": 0, "unbounded": 1, "base_case": 1
    }  # fmt: skip
    assert points["refactor_comprehension"] == {
        "behaviour": 4, "comprehension": 3, "concise": 1, "type_hints": 0, "explanation": 1
    }  # fmt: skip
    evidence = {c.id: c.evidence for c in scores["sum_even_numbers"].criteria}  # type: ignore[attr-defined]
    assert "NameError: name 'List' is not defined" in evidence["correctness"]
    table = scores["binary_search_bug"].table()  # type: ignore[attr-defined]
    assert "#### Bug detection (binary search): 8/10 (80.0%)" in table
    assert (
        "| ❌ Explanation: reading arr[len(arr)] raises IndexError | 0/2 | missing out-of-range access |"
        in table
    )


def test_partial_credit_and_empty_answers(executor: Executor) -> None:
    scenario = next(s for s in load_scenarios() if s.id == "sum_even_numbers")
    # Wrong for negative numbers (abs) and no docstring: 5 of 6 tests, type hints, idiom.
    answer = (
        "```python\ndef sum_even_numbers(numbers: list[int]) -> int:\n"
        "    return sum(abs(n) for n in numbers if n % 2 == 0)\n```"
    )
    score = score_answer(scenario, answer, executor)
    assert {c.id: c.points for c in score.criteria} == {
        "correctness": 4.17,
        "type_hints": 2,
        "docstring": 0,
        "idiom": 1,
    }
    assert score.criteria[0].evidence == "5/6 hidden tests pass (failed: AssertionError)"
    empty = score_answer(scenario, "", executor)
    assert empty.points == 0
    assert all("no function 'sum_even_numbers'" in c.evidence for c in empty.criteria)


def test_concepts_count_prose_not_identifiers(executor: Executor) -> None:
    scenario = next(s for s in load_scenarios() if s.id == "longest_common_subsequence")
    code_only = (
        "```python\ndef longest_common_subsequence(a: str, b: str) -> str:\n"
        "    dp = 'linear O(m*n)'\n    return ''\n```"
    )
    score = score_answer(scenario, code_only, executor)
    by_id = {c.id: c.points for c in score.criteria}
    assert by_id["approach"] == 0 and by_id["complexity"] == 0


def test_adding_a_scenario_is_adding_a_file(tmp_path: Path, executor: Executor) -> None:
    (tmp_path / "celsius.yaml").write_text(NEW_SCENARIO)
    scenarios = load_scenarios([tmp_path])
    assert [s.id for s in scenarios] == [*ORIGIN_IDS, "celsius"]
    answer = (
        "Multiply by 9/5 and add 32.\n\n"
        "```python\ndef to_fahrenheit(celsius: float) -> float:\n    return celsius * 9 / 5 + 32\n```"
    )
    score = score_answer(scenarios[-1], answer, executor)
    assert score.points == 5 and score.max_points == 5


def test_cli_picks_up_a_new_scenario_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "scenarios").mkdir()
    (tmp_path / "scenarios" / "celsius.yaml").write_text(NEW_SCENARIO)
    out = tmp_path / "out"
    code = cli.main(
        ["--solutions", "wrong", "--suites", "scenarios", "--scenarios-dir", str(tmp_path / "scenarios"),
         "--output", str(out), "--no-plot", "--quiet", "--workers", "1"]
    )  # fmt: skip
    assert code == 0
    summary = json.loads((out / "summary.json").read_text())
    assert [i["id"] for i in summary["scenarios"]["items"]] == [*ORIGIN_IDS, "celsius"]
    assert summary["scenarios"]["points"] == 0 and summary["scenarios"]["max_points"] == 55
    assert "#### Unit conversion: 0/5 (0.0%)" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (("kind: type_hints", "kind: vibes"), "unknown kind 'vibes'"),
        (("entry_point: to_fahrenheit\n", ""), "code criteria need an 'entry_point'"),
        (("points: 3", "points: 0"), "points must be a positive number"),
        (("- assert to_fahrenheit(0) == 32", "- assert (("), "test code does not parse"),
        (('["9\\\\s*/\\\\s*5", "1\\\\.8"]', '["(unclosed"]'), "bad pattern"),
        (("id: hints", "id: correct"), "criterion ids repeat"),
        (('prompt: "Write', 'promptx: "Write'), "missing field 'prompt'"),
    ],
)
def test_malformed_scenarios_are_refused(tmp_path: Path, change: tuple[str, str], message: str) -> None:
    old, new = change
    assert old in NEW_SCENARIO
    path = tmp_path / "bad.yaml"
    path.write_text(NEW_SCENARIO.replace(old, new, 1))
    with pytest.raises(ScenarioError, match=message) as error:
        load_scenario(path)
    assert str(path) in str(error.value)


def test_duplicate_scenario_ids_are_refused(tmp_path: Path) -> None:
    (tmp_path / "again.yaml").write_text((BUILTIN_DIR / "01_sum_even_numbers.yaml").read_text())
    with pytest.raises(ScenarioError, match="already defined"):
        load_scenarios([tmp_path])


def test_ast_criterion_names_must_be_ast_classes(tmp_path: Path) -> None:
    text = NEW_SCENARIO.replace("kind: type_hints", "kind: ast\n    any_node: [ListComprehension]")
    (tmp_path / "x.yaml").write_text(text)
    with pytest.raises(ScenarioError, match="'ListComprehension' is not an ast node class"):
        load_scenario(tmp_path / "x.yaml")


# -- the judge's reply parser (the live judge is exercised in test_quality_e2e.py) ----------------


def _scenario():
    return next(s for s in load_scenarios() if s.id == "refactor_comprehension")


def test_judge_prompt_carries_task_answer_and_rubric() -> None:
    prompt = judge_prompt(_scenario(), "my answer")
    assert "def process_data(data):" in prompt and "my answer" in prompt
    assert (
        "- comprehension (0 to 3 points): Pythonic: a list comprehension instead of loop and append" in prompt
    )
    assert '"scores": {"behaviour": <number>' in prompt


def test_judge_reply_with_prose_and_fences_is_parsed_and_clamped() -> None:
    reply = textwrap.dedent("""\
        Here is my assessment:
        ```json
        {"scores": {"behaviour": 4, "comprehension": "2.5", "concise": 7, "type_hints": -1, "explanation": 1,
                    "style": 3},
         "comment": "Good refactor."}
        ```""")
    verdict = parse_verdict(reply, _scenario())
    assert verdict.error is None
    assert verdict.scores == {
        "behaviour": 4,
        "comprehension": 2.5,
        "concise": 1,
        "type_hints": 0,
        "explanation": 1,
    }
    assert verdict.points == 8.5 and verdict.max_points == 10
    assert verdict.unknown_keys == ["style"] and verdict.comment == "Good refactor."


@pytest.mark.parametrize(
    ("reply", "error"),
    [
        ("The answer is good, 9/10.", "no JSON object in the reply"),
        ('{"scores": {"behaviour": 4}}',
         "no usable score for comprehension, concise, type_hints, explanation"),
        ('{"scores": {"behaviour": true, "comprehension": 3, "concise": 1, "type_hints": 1,'
         ' "explanation": 1}}', "no usable score for behaviour"),
        ("{broken json", "no JSON object in the reply"),
    ],
)  # fmt: skip
def test_unusable_judge_replies_are_recorded_not_raised(reply: str, error: str) -> None:
    verdict = parse_verdict(reply, _scenario())
    assert verdict.error == error
    assert verdict.points is None
    assert verdict.as_dict()["raw"] == reply
