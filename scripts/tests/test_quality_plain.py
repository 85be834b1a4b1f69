"""Plain data across the process boundary: faithful both ways, and nothing else gets through."""

from __future__ import annotations

import math
import shutil
import types

import pytest
from aimachine.quality import plain
from aimachine.quality.execution import Executor, parse_answers
from aimachine.quality.sandbox import GIB, Limits, Sandbox, SandboxError, Settings

plain.allow_big_ints()  # as the harness does
TRICKY = [
    None,
    True,
    0,
    -(10**5000),
    1.0,
    -0.0,
    float("inf"),
    float("-inf"),
    "tab\tnewline\n\u00e9\udc80",
    b"\x00\xff",
    3 - 4j,
    [1, [2.5, (3,)], ()],
    (1, [2], {"a": (None,)}),
    {1: "int key", (1, 2): "tuple key", "s": [], None: {}, 2.5: frozenset({1})},
    {1, "x", (2, 3)},
]


@pytest.mark.parametrize("value", TRICKY, ids=[f"{i}-{type(v).__name__}" for i, v in enumerate(TRICKY)])
def test_round_trip_keeps_types(value: object) -> None:
    back = plain.loads(plain.dumps(value))
    assert back == value and type(back) is type(value)
    if type(value) is not int:  # (repr refuses ints over 4300 digits)
        assert repr(back) == repr(value)  # -0.0 stays -0.0, tuples stay tuples, key order kept


def test_nan_round_trips() -> None:
    assert math.isnan(plain.loads(plain.dumps(float("nan"))))  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "data",
    [
        {"x": "AlwaysEqual"},
        {"t": "not a list"},
        {"d": [[[1], 2]]},  # a list as a key
        {"b": "zz"},
        {"f": "1e999"},
        {"c": ["a", 1]},
        {"a": 1, "b": 2},
        {"unknown": []},
    ],
)
def test_malformed_or_foreign_data_is_not_plain(data: object) -> None:
    with pytest.raises(plain.NotPlain):
        plain.decode(data)


def test_trusted_side_encodes_exact_types_only() -> None:
    class Sly(int):
        pass

    with pytest.raises(plain.NotPlain):
        plain.encode(Sly(1))
    with pytest.raises(plain.NotPlain):
        plain.encode([object()])


def test_answer_lines_that_do_not_parse_are_dropped() -> None:
    deep = b"[" * 100_000 + b"]" * 100_000
    lines = b"\n".join([b'[0, {"value": 1}]', b"garbage", deep, b'[1, "no dict"]', b'[2, {"raise": "X"}'])
    assert parse_answers(lines) == [[0, {"value": 1}]]


# -- end to end: the candidate's writer, the sandbox, the replay -------------------------------------

REFERENCE = """
import collections
def f(n):
    values = {
        1: (1, [2.0], {(1, 2): None}),
        2: float("nan"),
        3: 10**5000,
        4: -0.0,
        5: collections.Counter("abca"),
        6: {frozenset({1}), (2,)},
        7: b"\\x00",
    }
    return values[n]
"""
TESTS = """
import math
r = f(1)
assert r == (1, [2.0], {(1, 2): None}) and type(r) is tuple and type(r[1]) is list
assert math.isnan(f(2))
assert f(3) == 10**5000
assert str(f(4)) == "-0.0"
assert f(5) == {"a": 2, "b": 1, "c": 1}
assert f(6) == {frozenset({1}), (2,)}
assert f(7) == b"\\x00"
"""


@pytest.fixture(scope="module")
def executor() -> Executor:
    if shutil.which("bwrap") is None:
        pytest.skip("bubblewrap (bwrap) is not installed")
    try:
        box = Sandbox.open(Settings(limits=Limits(memory_bytes=1 * GIB), workers=1, uid_base=2_000_500_000))
    except SandboxError as error:
        pytest.skip(f"no sandbox here: {error}")
    pool = Executor(box)
    yield pool  # type: ignore[misc]
    pool.close()
    box.close()


def _problem() -> types.SimpleNamespace:
    return types.SimpleNamespace(
        suite="mbpp", task_id="Plain/1", entry_point="f", context="", test=TESTS, canonical=REFERENCE
    )


def test_tricky_values_pass_the_replay(executor: Executor) -> None:
    verdict, result = executor.check(_problem(), REFERENCE)  # type: ignore[arg-type]
    assert verdict.passed, (verdict, result and result.stderr)


@pytest.mark.parametrize(
    ("wrong", "kind"),
    [
        ("return [1, [2.0], {(1, 2): None}] if n == 1 else REF(n)", "assertion"),  # list, not tuple
        ("return 0.0 if n == 4 else REF(n)", "assertion"),  # the sign of zero
        ("return dict(REF(n)) if n == 5 else REF(n)", None),  # a Counter's data is a dict's
        ("return iter([]) if n == 2 else REF(n)", "not_plain"),
    ],
)
def test_near_misses_fail(executor: Executor, wrong: str, kind: str | None) -> None:
    solution = REFERENCE.replace("def f(n):", "def REF(n):") + f"\ndef f(n):\n    {wrong}\n"
    verdict, _ = executor.check(_problem(), solution)  # type: ignore[arg-type]
    assert verdict.passed is (kind is None) and verdict.error_kind == kind, verdict
