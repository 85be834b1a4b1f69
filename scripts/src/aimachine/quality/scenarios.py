"""The origin document's practical scenarios as data files, scored by rules instead of by hand.

A scenario is one YAML file: a prompt, the entry point the answer must define (code scenarios),
and criteria with points. Criterion kinds:

* ``tests``: hidden test snippets; points in proportion to the snippets that pass (an optional
  ``setup`` snippet runs first, not counted). The verdict is decided outside the answer's process,
  as HumanEval's (`Executor.check_snippets`): the snippets' calls are recorded against the
  scenario's ``reference_answer`` (required with such a criterion) in a trusted step, the answer's
  code runs in the sandbox with only those calls' arguments and returns plain values, and the
  snippets are replayed on those values outside it; nothing it prints counts;
* ``type_hints``: every parameter and the return of the entry point are annotated;
* ``docstring``: the entry point has a docstring (``min_words`` optional);
* ``ast``: the entry point contains any of ``any_node``, none of ``no_node`` (ast class names),
  calls none of ``no_calls`` and has at most ``max_statements`` statements besides its docstring;
* ``concepts``: the answer's prose (code removed, so identifiers like ``dp`` do not count) mentions
  each concept (any of its regular expressions, case-insensitive); points in proportion to the
  concepts found.

Adding a scenario is adding a file to the package's ``scenario_data`` or to a directory given with
``--scenarios-dir``.
"""

from __future__ import annotations

import ast
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import yaml

from aimachine.quality.extract import Extraction, extract_code, parse_quietly, prose

if TYPE_CHECKING:
    from aimachine.quality.execution import Executor

BUILTIN_DIR = Path(__file__).with_name("scenario_data")
KINDS = {"tests", "type_hints", "docstring", "ast", "concepts"}
CODE_KINDS = KINDS - {"concepts"}


class ScenarioError(ValueError):
    """A scenario file is malformed; the message names the file and the field."""


@dataclass(frozen=True)
class Criterion:
    id: str
    description: str
    points: float
    kind: str
    spec: dict[str, object]


@dataclass(frozen=True)
class Scenario:
    id: str
    title: str
    prompt: str
    entry_point: str | None
    criteria: tuple[Criterion, ...]
    path: Path
    origin: dict[str, object] = field(default_factory=dict)
    reference_answer: str | None = None
    origin_answer: str | None = None

    @property
    def max_points(self) -> float:
        return sum(c.points for c in self.criteria)


@dataclass
class CriterionScore:
    id: str
    description: str
    points: float
    max_points: float
    evidence: str


@dataclass
class ScenarioScore:
    scenario: str
    title: str
    criteria: list[CriterionScore]
    extraction: Extraction | None

    @property
    def points(self) -> float:
        return round(sum(c.points for c in self.criteria), 2)

    @property
    def max_points(self) -> float:
        return sum(c.max_points for c in self.criteria)

    @property
    def percent(self) -> float:
        return 100.0 * self.points / self.max_points if self.max_points else 0.0

    def as_dict(self) -> dict[str, object]:
        return {
            "scenario": self.scenario,
            "title": self.title,
            "points": self.points,
            "max_points": self.max_points,
            "percent": round(self.percent, 1),
            "criteria": [c.__dict__ for c in self.criteria],
        }

    def table(self) -> str:
        """Markdown table in the style of the origin document's per-test assessment."""
        rows = [f"#### {self.title}: {self.points:g}/{self.max_points:g} ({self.percent:.1f}%)", ""]
        rows += ["| criterion | points | evidence |", "|---|---|---|"]
        for c in self.criteria:
            mark = "✅" if c.points == c.max_points else ("⚠️" if c.points > 0 else "❌")
            rows.append(f"| {mark} {c.description} | {c.points:g}/{c.max_points:g} | {c.evidence} |")
        return "\n".join(rows)


# -- loading ----------------------------------------------------------------------------------------


def _require(data: dict[str, object], key: str, kind: type, where: str) -> object:
    if key not in data:
        raise ScenarioError(f"{where}: missing field {key!r}")
    value = data[key]
    if not isinstance(value, kind):
        raise ScenarioError(f"{where}: field {key!r} must be {kind.__name__}, got {type(value).__name__}")
    return value


def _string_list(spec: dict[str, object], key: str, where: str) -> list[str]:
    value = spec.get(key, [])
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ScenarioError(f"{where}: {key!r} must be a list of strings")
    return value


def _criterion(data: object, where: str) -> Criterion:
    if not isinstance(data, dict):
        raise ScenarioError(f"{where}: a criterion must be a mapping")
    cid = str(_require(data, "id", str, where))
    where = f"{where} criterion {cid!r}"
    kind = str(_require(data, "kind", str, where))
    if kind not in KINDS:
        raise ScenarioError(f"{where}: unknown kind {kind!r}; known: {', '.join(sorted(KINDS))}")
    points = data.get("points")
    if not isinstance(points, int | float) or isinstance(points, bool) or points <= 0:
        raise ScenarioError(f"{where}: points must be a positive number")
    spec = {k: v for k, v in data.items() if k not in ("id", "kind", "points", "description")}
    if kind == "tests":
        if not _string_list(spec, "tests", where):
            raise ScenarioError(f"{where}: 'tests' must list at least one test snippet")
        for snippet in [*spec["tests"], spec.get("setup", "")]:  # type: ignore[misc]
            try:
                parse_quietly(str(snippet))
            except SyntaxError as error:
                raise ScenarioError(f"{where}: test code does not parse: {error}") from error
    elif kind == "concepts":
        concepts = spec.get("concepts")
        if not isinstance(concepts, list) or not concepts:
            raise ScenarioError(f"{where}: 'concepts' must be a non-empty list")
        for concept in concepts:
            if not isinstance(concept, dict) or "name" not in concept:
                raise ScenarioError(f"{where}: each concept needs a name and patterns")
            patterns = _string_list(concept, "patterns", where)
            if not patterns:
                raise ScenarioError(f"{where}: concept {concept['name']!r} has no patterns")
            for pattern in patterns:
                try:
                    re.compile(pattern)
                except re.error as error:
                    raise ScenarioError(f"{where}: bad pattern {pattern!r}: {error}") from error
    elif kind == "ast":
        for key in ("any_node", "no_node"):
            for name in _string_list(spec, key, where):
                if not isinstance(getattr(ast, name, None), type):
                    raise ScenarioError(f"{where}: {name!r} is not an ast node class")
        _string_list(spec, "no_calls", where)
        if "max_statements" in spec and not isinstance(spec["max_statements"], int):
            raise ScenarioError(f"{where}: max_statements must be an integer")
    return Criterion(cid, str(data.get("description", cid)), float(points), kind, spec)


def load_scenario(path: Path) -> Scenario:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as error:
        raise ScenarioError(f"{path}: not valid YAML ({error})") from error
    where = str(path)
    if not isinstance(data, dict):
        raise ScenarioError(f"{where}: a scenario file must be a mapping")
    criteria_data = _require(data, "criteria", list, where)
    criteria = tuple(_criterion(c, where) for c in criteria_data)  # type: ignore[union-attr]
    if not criteria:
        raise ScenarioError(f"{where}: no criteria")
    ids = [c.id for c in criteria]
    if len(set(ids)) != len(ids):
        raise ScenarioError(f"{where}: criterion ids repeat")
    entry_point = data.get("entry_point")
    if any(c.kind in CODE_KINDS for c in criteria) and not isinstance(entry_point, str):
        raise ScenarioError(
            f"{where}: code criteria need an 'entry_point' (the function the answer must define)"
        )
    reference = data.get("reference_answer")
    tested = any(c.kind == "tests" for c in criteria)
    if tested and (not isinstance(reference, str) or not _reference_code(reference, str(entry_point))):
        raise ScenarioError(
            f"{where}: a 'tests' criterion needs a 'reference_answer' that defines {entry_point!r}"
            " (the tests' calls are recorded against it)"
        )
    origin = data.get("origin", {})
    return Scenario(
        id=str(_require(data, "id", str, where)),
        title=str(data.get("title", data["id"])),
        prompt=str(_require(data, "prompt", str, where)),
        entry_point=entry_point if isinstance(entry_point, str) else None,
        criteria=criteria,
        path=path,
        origin=origin if isinstance(origin, dict) else {},
        reference_answer=data.get("reference_answer"),
        origin_answer=data.get("origin_answer"),
    )


def load_scenarios(extra_dirs: list[Path] | None = None, include_builtin: bool = True) -> list[Scenario]:
    directories = ([BUILTIN_DIR] if include_builtin else []) + list(extra_dirs or [])
    scenarios: dict[str, Scenario] = {}
    for directory in directories:
        if not directory.is_dir():
            raise ScenarioError(f"scenario directory {directory} does not exist")
        for path in sorted([*directory.glob("*.yaml"), *directory.glob("*.yml")]):
            scenario = load_scenario(path)
            if scenario.id in scenarios:
                raise ScenarioError(
                    f"{path}: scenario id {scenario.id!r} already defined in {scenarios[scenario.id].path}"
                )
            scenarios[scenario.id] = scenario
    return list(scenarios.values())


# -- scoring ----------------------------------------------------------------------------------------


def _reference_code(reference: str, entry_point: str) -> str:
    extraction = extract_code(reference, entry_point)
    return extraction.code if extraction.entry_point_found else ""


def _tests_evidence(failures: list[str | None], note: str) -> tuple[int, str]:
    """Passed snippets and a note: the failing tests' exception types, or why none could pass."""
    passed = sum(f is None for f in failures)
    if note:
        return passed, note
    counts = Counter(f for f in failures if f is not None)
    text = ", ".join(f"{name} x{n}" if n > 1 else name for name, n in counts.items())
    return passed, (f"failed: {text}" if text else "")


def _entry_function(code: str, name: str | None) -> ast.FunctionDef | ast.AsyncFunctionDef | None:
    try:
        tree = parse_quietly(code)
    except SyntaxError:
        return None
    found = None
    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.name == name:
            found = node
    return found


def _body_without_docstring(function: ast.FunctionDef | ast.AsyncFunctionDef) -> list[ast.stmt]:
    body = list(function.body)
    if body and ast.get_docstring(function) is not None:
        body = body[1:]
    return body


def _check_type_hints(function: ast.FunctionDef | ast.AsyncFunctionDef) -> tuple[bool, str]:
    args = function.args
    params = [*args.posonlyargs, *args.args, *args.kwonlyargs]
    params += [a for a in (args.vararg, args.kwarg) if a is not None]
    missing = [a.arg for a in params if a.annotation is None and a.arg not in ("self", "cls")]
    if function.returns is None:
        missing.append("return")
    return (not missing, "all annotated" if not missing else "missing: " + ", ".join(missing))


def _check_ast(function: ast.FunctionDef | ast.AsyncFunctionDef, spec: dict[str, object]) -> tuple[bool, str]:
    nodes = [type(node).__name__ for stmt in function.body for node in ast.walk(stmt)]
    problems = []
    any_node = spec.get("any_node") or []
    if any_node and not any(name in nodes for name in any_node):  # type: ignore[union-attr]
        problems.append("uses none of " + "/".join(any_node))  # type: ignore[arg-type]
    for name in spec.get("no_node") or []:  # type: ignore[union-attr]
        if name in nodes:
            problems.append(f"uses {name}")
    called = set()
    for node in ast.walk(function):
        if isinstance(node, ast.Call):
            target = node.func
            called.add(target.attr if isinstance(target, ast.Attribute) else getattr(target, "id", ""))
    for name in spec.get("no_calls") or []:  # type: ignore[union-attr]
        if name in called:
            problems.append(f"calls {name}()")
    limit = spec.get("max_statements")
    if isinstance(limit, int):
        count = len(_body_without_docstring(function))
        if count > limit:
            problems.append(f"{count} statements (at most {limit})")
    return (not problems, "; ".join(problems) if problems else "as required")


def _check_concepts(answer: str, concepts: list[dict[str, object]]) -> tuple[float, str]:
    found, missing = [], []
    for concept in concepts:
        patterns = concept["patterns"]
        hit = any(re.search(p, answer, re.IGNORECASE | re.DOTALL) for p in patterns)  # type: ignore[union-attr]
        (found if hit else missing).append(str(concept["name"]))
    share = len(found) / len(concepts)
    evidence = []
    if found:
        evidence.append("mentions " + ", ".join(found))
    if missing:
        evidence.append("missing " + ", ".join(missing))
    return share, "; ".join(evidence)


def score_answer(scenario: Scenario, answer: str, executor: Executor) -> ScenarioScore:
    """Score one answer; `executor` decides the hidden tests' verdicts (blocking)."""
    extraction = extract_code(answer, scenario.entry_point) if scenario.entry_point else None
    code = extraction.code if extraction and extraction.entry_point_found else ""
    function = _entry_function(code, scenario.entry_point) if code else None
    text = prose(answer)
    scores = []
    for criterion in scenario.criteria:
        points, evidence = 0.0, ""
        if criterion.kind == "concepts":
            share, evidence = _check_concepts(text, criterion.spec["concepts"])  # type: ignore[arg-type]
            points = criterion.points * share
        elif function is None:
            evidence = f"no function {scenario.entry_point!r} found in the answer"
        elif criterion.kind == "tests":
            tests = [str(t) for t in criterion.spec["tests"]]  # type: ignore[attr-defined]
            reference = _reference_code(str(scenario.reference_answer or ""), str(scenario.entry_point))
            verdicts = executor.check_snippets(
                str(scenario.entry_point), reference, str(criterion.spec.get("setup", "")), tests, code
            )
            passed, error = _tests_evidence(verdicts.failures, verdicts.note)
            points = criterion.points * passed / len(tests)
            evidence = f"{passed}/{len(tests)} hidden tests pass" + (f" ({error})" if error else "")
        elif criterion.kind == "type_hints":
            ok, evidence = _check_type_hints(function)
            points = criterion.points if ok else 0.0
        elif criterion.kind == "docstring":
            doc = ast.get_docstring(function) or ""
            words = len(doc.split())
            minimum = int(criterion.spec.get("min_words", 1))  # type: ignore[call-overload]
            ok = words >= minimum
            points = criterion.points if ok else 0.0
            evidence = f"docstring of {words} words" if doc else "no docstring"
        elif criterion.kind == "ast":
            ok, evidence = _check_ast(function, criterion.spec)
            points = criterion.points if ok else 0.0
        scores.append(
            CriterionScore(criterion.id, criterion.description, round(points, 2), criterion.points, evidence)
        )
    return ScenarioScore(scenario.id, scenario.title, scores, extraction)
