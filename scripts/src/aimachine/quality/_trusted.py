"""The trusted side of a verdict: record the reference's calls, replay the candidate's answers.

The harness runs ``python -I -S _trusted.py serve TIMEOUT`` (one JSON job per line on stdin, one
result line per job on stdout, each job in a forked child) or ``python -I -S _trusted.py`` with
one job on stdin. Only dataset code
(the reference solution, the tests, HumanEval's prompt) runs here; the candidate's code never does.

* ``record``: runs the reference solution through the problem's tests with the entry point
  wrapped, and writes the calls the tests made (positional and keyword arguments, as plain data)
  and whether the reference passed.
* ``replay``: runs the tests again with the entry point replaced by a function that answers each
  call with what the candidate's process returned for those arguments (decoded as plain data);
  an unrecorded call, a missing answer or a value that is not plain data fails the sample, even
  if the tests catch the exception that reports it.

* ``record_snippets`` / ``replay_snippets``: the same for a practical scenario's tests, one
  verdict per test snippet (a setup snippet first, all in one namespace); large arguments go by
  identity (`plain.Refs`): encoded once, in an objects line, ``{"r": n}`` in the calls.

`random` is seeded the same way in both steps, so tests that draw random inputs (HumanEval/38,
/50 ...) make the same calls; the reference's own use of `random` does not shift the tests' draws.
"""

from __future__ import annotations

import builtins
import json
import os
import random
import signal
import sys
from collections.abc import Callable

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import plain

SEED = 1234
GLOBALS_NAME = "__main__"


class ReplayFailure(BaseException):
    """The candidate gave no usable answer for a call the tests made."""

    def __init__(self, kind: str, detail: str) -> None:
        super().__init__(detail)
        self.kind = kind
        self.detail = detail


def _run_tests(job: dict, namespace: dict, entry_value: object) -> None:
    random.seed(SEED)
    # Tests call the entry point by name too (MBPP's asserts, HumanEval/33's comparison).
    namespace[job["entry"]] = entry_value
    exec(compile(job["test"], "<tests>", "exec"), namespace)
    if job["suite"] == "humaneval":
        namespace["check"](entry_value)


def record(job: dict) -> dict:
    namespace: dict = {"__name__": GLOBALS_NAME}
    exec(compile(job["canonical"], "<reference>", "exec"), namespace)
    reference = namespace[job["entry"]]
    calls: list[str] = []
    depth = [0]

    def recorder(*args: object, **kwargs: object) -> object:
        if depth[0]:
            return reference(*args, **kwargs)  # the reference calling itself by name
        calls.append(plain.dumps([args, kwargs]))
        depth[0] += 1
        state = random.getstate()
        try:
            return reference(*args, **kwargs)
        finally:
            depth[0] -= 1
            random.setstate(state)

    try:
        _run_tests(job, namespace, recorder)
    except plain.NotPlain as error:
        return {
            "ok": False,
            "error": f"the tests pass arguments that are not plain data: {error}",
            "calls": [],
        }
    except BaseException as error:
        return {
            "ok": False,
            "error": f"reference fails its tests: {type(error).__name__}: {error}"[:300],
            "calls": calls,
        }
    if not calls:
        return {"ok": False, "error": "the tests never call the entry point", "calls": []}
    return {"ok": True, "error": None, "calls": calls}


def _exception_type(name: str) -> type[BaseException] | None:
    value = getattr(builtins, str(name), None)
    if isinstance(value, type) and issubclass(value, Exception):
        return value
    return None


def _apply_args_after(args: tuple, after: object) -> None:
    # A function that changes its list/dict/set arguments in place: the tests may look at them.
    if type(after) is not list or len(after) != len(args):
        raise ReplayFailure("not_plain", "malformed arguments after the call")
    for old, new in zip(args, after, strict=True):
        if type(old) is list and type(new) is list:
            old[:] = new
        elif type(old) in (dict, set) and type(new) is type(old):
            old.clear()
            old.update(new)


def _answer(
    key: str,
    args: tuple,
    *,
    table: dict[str, list[int]],
    used: dict[str, int],
    answers: dict[int, object],
    fail: Callable[[str, str], ReplayFailure],
    refs: list[object] | None = None,
) -> object:
    """The candidate's recorded answer to the call `key` (the n-th such call: its n-th answer)."""
    indexes = table.get(key)
    if not indexes:
        raise fail("unrecorded_call", f"the tests made a call the reference did not: {key[:120]}")
    position = min(used.get(key, 0), len(indexes) - 1)
    used[key] = position + 1
    answer = answers.get(indexes[position])
    if not isinstance(answer, dict):
        raise fail("no_result", f"no answer from the candidate for call {indexes[position]}")
    if "raise" in answer:
        name = str(answer["raise"])[:80]
        kind = _exception_type(name)
        if kind is None:
            raise RuntimeError(f"the candidate raised {name}")
        raise kind(f"raised by the candidate ({name})")
    try:
        value = plain.decode(answer.get("value"))
        if "args_after" in answer:
            _apply_args_after(args, plain.decode(answer["args_after"], refs=refs))
    except plain.NotPlain as error:
        raise fail("not_plain", f"the candidate returned {error}") from None
    return value


def replay(job: dict) -> dict:
    answers = {int(index): answer for index, answer in job["answers"]}
    table: dict[str, list[int]] = {}
    for index, key in enumerate(job["calls"]):
        table.setdefault(key, []).append(index)
    used: dict[str, int] = {}
    failures: list[ReplayFailure] = []

    def fail(kind: str, detail: str) -> ReplayFailure:
        failure = ReplayFailure(kind, detail)
        failures.append(failure)
        return failure

    def replayed(*args: object, **kwargs: object) -> object:
        try:
            key = plain.dumps([args, kwargs])
        except plain.NotPlain as error:
            raise fail("unrecorded_call", f"call with arguments that are not plain data: {error}") from None
        return _answer(key, args, table=table, used=used, answers=answers, fail=fail)

    namespace: dict = {"__name__": GLOBALS_NAME}
    if job["context"]:
        exec(compile(job["context"], "<prompt>", "exec"), namespace)
    try:
        _run_tests(job, namespace, replayed)
    except ReplayFailure as failure:
        return {"passed": False, "kind": failure.kind, "detail": failure.detail}
    except AssertionError as error:
        return {"passed": False, "kind": "assertion", "detail": f"AssertionError: {error}"[:300].rstrip(": ")}
    except BaseException as error:
        detail = f"{type(error).__name__}: {error}"[:300]
        kind = {"RecursionError": "recursion", "MemoryError": "memory"}.get(type(error).__name__, "exception")
        return {"passed": False, "kind": kind, "detail": detail}
    if failures:
        first = failures[0]
        return {"passed": False, "kind": first.kind, "detail": first.detail}
    return {"passed": True, "kind": None, "detail": None}


def _dumps(value: object, refs: plain.Refs) -> str:
    return plain.dumps(value, refs)


def record_snippets(job: dict) -> dict:
    namespace: dict = {"__name__": GLOBALS_NAME}
    exec(compile(job["canonical"], "<reference>", "exec"), namespace)
    reference = namespace[job["entry"]]
    refs = plain.Refs()
    calls: list[list[str]] = []
    depth = [0]

    def recorder(*args: object, **kwargs: object) -> object:
        if depth[0]:
            return reference(*args, **kwargs)
        if not calls:
            # Replayed outside the answer, a setup's call would have no answer to replay.
            raise RuntimeError(f"it calls {job['entry']}: only the tests may (move the call into a test)")
        calls[-1].append(_dumps([args, kwargs], refs))
        depth[0] += 1
        state = random.getstate()
        try:
            return reference(*args, **kwargs)
        finally:
            depth[0] -= 1
            random.setstate(state)

    namespace[job["entry"]] = recorder
    random.seed(SEED)
    try:
        exec(compile(job.get("setup") or "", "<setup>", "exec"), namespace)
    except BaseException as error:
        return {"ok": False, "error": f"the setup snippet fails: {type(error).__name__}: {error}"[:300]}
    for number, source in enumerate(job["tests"], 1):
        calls.append([])
        try:
            exec(compile(source, "<test>", "exec"), namespace)
        except plain.NotPlain as error:
            return {"ok": False, "error": f"test {number} passes arguments that are not plain data: {error}"}
        except BaseException as error:
            return {
                "ok": False,
                "error": f"reference fails test {number}: {type(error).__name__}: {error}"[:300],
            }
        if refs.changed():
            return {
                "ok": False,
                "error": f"test {number} changes an argument passed by identity: pass a copy",
            }
    return {"ok": True, "error": None, "calls": calls, "objects": refs.encoded}


def replay_snippets(job: dict) -> dict:
    answers = {int(index): answer for index, answer in job["answers"]}
    refs = plain.Refs(expected=job["objects"])
    state: dict = {}
    failures: list[ReplayFailure] = []

    def fail(kind: str, detail: str) -> ReplayFailure:
        failure = ReplayFailure(kind, detail)
        failures.append(failure)
        return failure

    def replayed(*args: object, **kwargs: object) -> object:
        try:
            key = _dumps([args, kwargs], refs)
        except plain.NotPlain as error:
            raise fail("unrecorded_call", f"call the reference did not make: {error}") from None
        return _answer(
            key, args, table=state["table"], used=state["used"], answers=answers, fail=fail, refs=refs.objects
        )

    namespace: dict = {"__name__": GLOBALS_NAME, job["entry"]: replayed}
    random.seed(SEED)
    exec(compile(job.get("setup") or "", "<setup>", "exec"), namespace)
    results: list[dict | None] = []
    offset = 0
    for source, calls in zip(job["tests"], job["calls"], strict=True):
        state["table"], state["used"] = {}, {}
        for index, key in enumerate(calls, offset):
            state["table"].setdefault(key, []).append(index)
        offset += len(calls)
        failures.clear()
        try:
            exec(compile(source, "<test>", "exec"), namespace)
        except ReplayFailure as failure:
            results.append({"kind": failure.kind, "detail": failure.detail})
            continue
        except BaseException as error:
            results.append({"kind": "exception", "detail": f"{type(error).__name__}: {error}"[:300]})
            continue
        first = failures[0] if failures else None
        results.append({"kind": first.kind, "detail": first.detail} if first else None)
    return {"results": results}


OPS = {
    "record": record,
    "replay": replay,
    "record_snippets": record_snippets,
    "replay_snippets": replay_snippets,
}


def _serve(timeout_s: int) -> None:
    """One job per line on stdin, each in a fresh forked child; one result line each on stdout.

    The fork keeps every job's state apart (the tests' globals, random, imports, recursion limit)
    at a fraction of an interpreter's start; SIGALRM ends a job that runs past `timeout_s`.
    """
    out = os.fdopen(os.dup(1), "w", encoding="utf-8")
    os.dup2(os.open(os.devnull, os.O_WRONLY), 1)
    for line in sys.stdin:
        if not line.strip():
            continue
        read_end, write_end = os.pipe()
        child = os.fork()
        if child == 0:
            os.close(read_end)
            signal.alarm(timeout_s)
            try:
                job = json.loads(line)
                result = OPS[job["op"]](job)
                data = json.dumps(result).encode("utf-8")
            except BaseException as error:
                data = json.dumps({"crashed": f"{type(error).__name__}: {error}"[:300]}).encode("utf-8")
            with os.fdopen(write_end, "wb") as pipe:
                pipe.write(data)
            os._exit(0)
        os.close(write_end)
        with os.fdopen(read_end, "rb") as pipe:
            data = pipe.read()
        _, status = os.waitpid(child, 0)
        if not data:
            killed = os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGALRM
            data = json.dumps({"timeout": True} if killed else {"crashed": f"status {status}"}).encode()
        out.write(data.decode("utf-8") + "\n")
        out.flush()


def main() -> None:
    plain.allow_big_ints()
    if len(sys.argv) > 2 and sys.argv[1] == "serve":
        _serve(int(sys.argv[2]))
        return
    # The result goes to the original stdout; what the dataset code prints, nowhere.
    out = os.fdopen(os.dup(1), "w", encoding="utf-8")
    os.dup2(os.open(os.devnull, os.O_WRONLY), 1)
    job = json.loads(sys.stdin.buffer.read())
    result = OPS[job["op"]](job)
    out.write(json.dumps(result))
    out.close()
    sys.stdout.flush()
    os._exit(0)  # tests may leave threads behind


if __name__ == "__main__":
    main()
