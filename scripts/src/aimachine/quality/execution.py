"""Verdicts decided outside the candidate's process, from plain data.

For a benchmark problem (`Executor.check`):

1. a trusted step (``_trusted.py record``, once per problem) runs the reference solution through
   the problem's tests with the entry point wrapped, and keeps the calls the tests made;
2. the candidate's code runs in the sandbox with only those calls' arguments (plain data, on an
   input file) and writes back, per call, the plain value it returned or the name of the
   exception it raised (`plain.CANDIDATE_SOURCE`); neither the tests nor the expected results
   enter its process, and nothing it prints or its exit status counts;
3. a trusted step (``_trusted.py replay``) runs the tests with the entry point replaced by a
   function that answers each call with the candidate's decoded value; that step's result is
   the verdict.

A practical scenario's hidden tests (`Executor.check_snippets`) go the same way, one verdict per
test snippet: the reference answer's calls are recorded per snippet, the candidate answers them
all in one sandboxed run, the snippets are replayed on its answers. Large arguments (a list of a
million items passed in 40,000 calls) are sent once and referred to by identity (`plain.Refs`).

`classify` and the marker are kept for callers that still score by a printed marker; no suite of
this package does.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import queue
import re
import secrets
import subprocess
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from aimachine.quality import plain
from aimachine.quality.sandbox import RunResult, Sandbox, without_capabilities

if TYPE_CHECKING:  # only its attributes are used: this module runs under a bare system Python too
    from aimachine.quality.datasets import Problem

TRUSTED = Path(__file__).with_name("_trusted.py")
# The trusted steps run dataset code only; this bounds a test that loops on a candidate's value.
TRUSTED_TIMEOUT_FACTOR = 3.0

EXCEPTION_LINE = re.compile(r"^(?P<type>[A-Za-z_][\w.]*)(?::\s?(?P<message>.*))?$")
ERROR_KINDS = {
    "AssertionError": "assertion",
    "SyntaxError": "syntax",
    "IndentationError": "syntax",
    "TabError": "syntax",
    "MemoryError": "memory",
    "RecursionError": "recursion",
}


def new_marker() -> str:
    """A per-run token the test program prints last: exiting 0 early (exit(), os._exit) is no pass."""
    return f"AIMACHINE-TESTS-PASSED-{secrets.token_hex(8)}"


@dataclass(frozen=True)
class Verdict:
    passed: bool
    error_kind: str | None  # None when passed
    error_detail: str | None
    duration_s: float

    def as_dict(self) -> dict[str, object]:
        return {
            "verdict": "passed" if self.passed else "failed",
            "error_kind": self.error_kind,
            "error_detail": self.error_detail,
            "exec_time_s": round(self.duration_s, 4),
        }


def _last_exception(stderr: str) -> tuple[str, str] | None:
    lines = [line for line in stderr.strip().splitlines() if line.strip()]
    has_traceback = any(line.startswith("Traceback") for line in lines)
    if not lines or (not has_traceback and not lines[-1].endswith("Error")):
        return None
    match = EXCEPTION_LINE.match(lines[-1].strip())
    if not match:
        return None
    return match.group("type").rsplit(".", 1)[-1], (match.group("message") or "").strip()


def classify(result: RunResult, marker: str) -> Verdict:
    """passed only if the program exited 0 and its last line of output is the marker."""
    duration = result.duration_s
    if result.setup_error:
        return Verdict(False, "sandbox", result.setup_error, duration)
    if result.timed_out:
        return Verdict(False, "timeout", "wall-clock limit reached", duration)
    lines = result.stdout.strip().splitlines()
    if result.returncode == 0 and lines and lines[-1].strip() == marker:
        return Verdict(True, None, None, duration)
    exception = _last_exception(result.stderr)
    if exception:
        kind = ERROR_KINDS.get(exception[0], "exception")
        detail = f"{exception[0]}: {exception[1]}" if exception[1] else exception[0]
        return Verdict(False, kind, detail[:300], duration)
    if result.signal_name:
        # SIGXCPU/SIGKILL after the CPU limit: a busy loop that the wall clock did not catch first.
        kind = "timeout" if result.signal_name in ("SIGXCPU",) else "signal"
        return Verdict(False, kind, result.signal_name, duration)
    if result.returncode == 0:
        return Verdict(False, "exited_early", "exit status 0 before the tests finished", duration)
    return Verdict(False, "exit", f"exit status {result.returncode}", duration)


@dataclass(frozen=True)
class SnippetVerdicts:
    """Per test snippet: None (passed) or the failure's name (an exception type, "timeout" ...)."""

    failures: list[str | None]
    note: str  # why none could pass (no answers, the reference failing), else ""


def _failure_name(outcome: dict[str, object]) -> str:
    detail = str(outcome.get("detail") or "")
    kind = str(outcome.get("kind") or "exception")
    match = EXCEPTION_LINE.match(detail.split(" ", 1)[0].rstrip(":")) if detail else None
    if kind in ("exception", "assertion", "recursion", "memory") and match:
        return match.group("type")
    return kind


@dataclass(frozen=True)
class Reference:
    """The calls the reference solution's test run made (one JSON line each), or why there are none."""

    calls: tuple[str, ...]
    error: str | None


class TrustedError(RuntimeError):
    """A trusted step failed to run (not a verdict on the candidate)."""


class TrustedWorker:
    """A ``_trusted.py serve`` process: runs trusted steps one at a time, each in a forked child."""

    def __init__(self, timeout_s: float) -> None:
        self._timeout = max(1, int(timeout_s + 0.999))
        self._proc: subprocess.Popen[str] | None = None

    def _start(self) -> subprocess.Popen[str]:
        if self._proc is None or self._proc.poll() is not None:
            self._proc = subprocess.Popen(
                # It reads the candidate's answers: no capability of the harness goes with it.
                without_capabilities([sys.executable, "-I", "-S", str(TRUSTED), "serve", str(self._timeout)]),
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,
                text=True,
                encoding="utf-8",
                env={"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8", "PYTHONHASHSEED": "0"},
                cwd="/",
            )
        return self._proc

    def call(self, job: dict[str, object]) -> dict[str, object]:
        proc = self._start()
        assert proc.stdin is not None and proc.stdout is not None
        try:
            proc.stdin.write(json.dumps(job) + "\n")
            proc.stdin.flush()
            line = proc.stdout.readline()
        except (BrokenPipeError, OSError) as error:
            raise TrustedError(f"trusted worker gone: {error}") from error
        try:
            result = json.loads(line)
        except ValueError:
            raise TrustedError(f"trusted worker wrote {line[:200]!r}") from None
        if not isinstance(result, dict):
            raise TrustedError(f"trusted step {job['op']} wrote {type(result).__name__}, not an object")
        if "crashed" in result:
            raise TrustedError(f"trusted step {job['op']} crashed: {result['crashed']}")
        return result

    def close(self) -> None:
        if self._proc is not None:
            if self._proc.stdin is not None:
                self._proc.stdin.close()
            try:
                self._proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
            if self._proc.stdout is not None:
                self._proc.stdout.close()


def candidate_program(problem: Problem, solution: str) -> str:
    """The program the sandbox runs: the solution (after HumanEval's prompt) and the call loop."""
    parts = [problem.context, solution, plain.CANDIDATE_SOURCE, f"__aim_run({problem.entry_point})"]
    return "\n\n".join(part.rstrip() for part in parts if part) + "\n"


def parse_answers(data: bytes) -> list[list[object]]:
    """(index, answer) pairs from the candidate's answer pipe; malformed lines are dropped."""
    pairs = []
    for line in data.split(b"\n"):
        try:
            item = json.loads(line)
        except (ValueError, RecursionError):  # RecursionError: nesting deeper than json can parse
            continue
        if type(item) is list and len(item) == 2 and type(item[0]) is int and type(item[1]) is dict:
            pairs.append(item)
    return pairs


def _no_answers(result: RunResult) -> Verdict:
    """Why a candidate gave no (or too few) answers, from what its process left."""
    exception = _last_exception(result.stderr)
    if exception:
        kind = ERROR_KINDS.get(exception[0], "exception")
        detail = f"{exception[0]}: {exception[1]}" if exception[1] else exception[0]
        return Verdict(False, kind, detail[:300], result.duration_s)
    if result.signal_name:
        kind = "timeout" if result.signal_name == "SIGXCPU" else "signal"
        return Verdict(False, kind, result.signal_name, result.duration_s)
    if result.returncode == 0:
        return Verdict(False, "exited_early", "exited before answering every call", result.duration_s)
    return Verdict(False, "exit", f"exit status {result.returncode}", result.duration_s)


class Executor:
    """A pool of threads, one per sandbox slot; each run takes a free slot for its duration."""

    def __init__(self, sandbox: Sandbox) -> None:
        self.sandbox = sandbox
        self._slots: queue.Queue[int] = queue.Queue()
        for slot in range(sandbox.settings.workers):
            self._slots.put(slot)
        self._pool = ThreadPoolExecutor(max_workers=sandbox.settings.workers, thread_name_prefix="sandbox")
        self._references: dict[tuple[str, str], Reference] = {}
        self._snippet_references: dict[tuple[str, str], dict[str, object]] = {}
        self._locks: dict[tuple[str, str], threading.Lock] = {}
        self._guard = threading.Lock()
        self._trusted_timeout = sandbox.settings.limits.timeout_s * TRUSTED_TIMEOUT_FACTOR
        plain.allow_big_ints()  # answers and recorded calls may hold big ints (bounded)
        self._trusted: queue.Queue[TrustedWorker] = queue.Queue()
        self._all_trusted = [TrustedWorker(self._trusted_timeout) for _ in range(sandbox.settings.workers)]
        for worker in self._all_trusted:
            self._trusted.put(worker)

    def _run_trusted(self, job: dict[str, object]) -> dict[str, object]:
        worker = self._trusted.get()
        try:
            return worker.call(job)
        finally:
            self._trusted.put(worker)

    def run(self, program: str, inputs: str = "") -> RunResult:
        slot = self._slots.get()
        try:
            return self.sandbox.run(program, slot, inputs)
        finally:
            self._slots.put(slot)

    async def run_async(self, program: str) -> RunResult:
        return await asyncio.get_running_loop().run_in_executor(self._pool, self.run, program)

    def reference(self, problem: Problem) -> Reference:
        """The reference's calls for `problem`, recorded once per run."""
        key = (problem.suite, problem.task_id)
        with self._guard:
            lock = self._locks.setdefault(key, threading.Lock())
        with lock:
            if key not in self._references:
                job = {
                    "op": "record",
                    "suite": problem.suite,
                    "entry": problem.entry_point,
                    "canonical": problem.canonical,
                    "test": problem.test,
                }
                # The reference may be slow (Mbpp/123): it gets the trusted steps' longer limit.
                try:
                    result = self._run_trusted(job)
                except TrustedError as error:
                    result = {"ok": False, "error": str(error)}
                if result.get("timeout"):
                    reference = Reference((), "the reference solution ran past the trusted step's time limit")
                else:
                    calls = tuple(str(c) for c in result.get("calls", []))  # type: ignore[attr-defined]
                    reference = Reference(calls, None if result.get("ok") else str(result.get("error")))
                self._references[key] = reference
            return self._references[key]

    def check(self, problem: Problem, solution: str) -> tuple[Verdict, RunResult | None]:
        """The verdict on `solution` for `problem` (see the module's docstring)."""
        reference = self.reference(problem)
        if reference.error:
            return Verdict(False, "reference", reference.error[:300], 0.0), None
        result = self.run(candidate_program(problem, solution), "\n".join(reference.calls) + "\n")
        duration = result.duration_s
        answers = parse_answers(result.answers)
        if result.setup_error:
            return Verdict(False, "sandbox", result.setup_error, duration), result
        if result.timed_out:
            return Verdict(False, "timeout", "wall-clock limit reached", duration), result
        if not answers:
            # The program never answered: say why from its own output (a crash is no verdict input).
            return _no_answers(result), result
        try:
            replay = self._trusted_replay(problem, reference, answers)
        except TrustedError as error:
            # The replay's child died (e.g. out of memory on huge answers): the sample fails, the run goes on.
            return Verdict(False, "trusted", str(error)[:300], duration), result
        if replay.get("timeout"):
            return Verdict(
                False, "timeout", "the tests ran past the trusted step's time limit", duration
            ), result
        if replay.get("passed") is True:
            return Verdict(True, None, None, duration), result
        kind = str(replay.get("kind") or "exception")
        if kind == "no_result":
            crash = _no_answers(result)
            if crash.error_kind not in ("exited_early", "exit"):
                return crash, result
        return Verdict(False, kind, str(replay.get("detail") or "")[:300], duration), result

    def _trusted_replay(
        self, problem: Problem, reference: Reference, answers: list[list[object]]
    ) -> dict[str, object]:
        return self._run_trusted(
            {
                "op": "replay",
                "suite": problem.suite,
                "entry": problem.entry_point,
                "context": problem.context,
                "test": problem.test,
                "calls": list(reference.calls),
                "answers": answers,
            }
        )

    def _snippet_reference(self, job: dict[str, object]) -> dict[str, object]:
        key = ("snippets", hashlib.sha256(json.dumps(job, sort_keys=True).encode()).hexdigest())
        with self._guard:
            lock = self._locks.setdefault(key, threading.Lock())
        with lock:
            if key not in self._snippet_references:
                try:
                    result = self._run_trusted({"op": "record_snippets", **job})
                except TrustedError as error:
                    result = {"ok": False, "error": str(error)}
                if result.get("timeout"):
                    result = {"ok": False, "error": "the reference ran past the trusted step's time limit"}
                self._snippet_references[key] = result
            return self._snippet_references[key]

    def check_snippets(
        self, entry: str, reference: str, setup: str, tests: list[str], code: str
    ) -> SnippetVerdicts:
        """Verdicts on `code`'s `entry` for each test snippet, decided outside its process.

        `reference` is the scenario's reference code: the snippets' calls are recorded against it
        (once per run), `code` answers them in the sandbox, the snippets are replayed on its answers.
        """
        count = len(tests)
        recorded = self._snippet_reference(
            {"entry": entry, "canonical": reference, "setup": setup, "tests": tests}
        )
        if not recorded.get("ok"):
            return SnippetVerdicts(["reference"] * count, f"reference: {recorded.get('error')}"[:300])
        calls: list[list[str]] = recorded["calls"]  # type: ignore[assignment]
        objects: list[str] = recorded["objects"]  # type: ignore[assignment]
        lines = (['{"o":[' + ",".join(objects) + "]}"] if objects else []) + [c for per in calls for c in per]
        program = "\n\n".join([code.rstrip(), plain.CANDIDATE_SOURCE, f"__aim_run({entry})"]) + "\n"
        result = self.run(program, "\n".join(lines) + "\n")
        answers = parse_answers(result.answers)
        if result.setup_error:
            return SnippetVerdicts(["sandbox"] * count, f"sandbox: {result.setup_error}")
        if not answers and any(calls):
            crash = _no_answers(result)
            note = "timed out" if result.timed_out else (crash.error_detail or crash.error_kind or "")
            return SnippetVerdicts([crash.error_kind or "exit"] * count, note[:160])
        job = {"op": "replay_snippets", "entry": entry, "setup": setup, "tests": tests}
        try:
            replay = self._run_trusted({**job, "calls": calls, "objects": objects, "answers": answers})
        except TrustedError as error:
            return SnippetVerdicts(["trusted"] * count, str(error)[:160])
        if replay.get("timeout"):
            return SnippetVerdicts(["timeout"] * count, "the tests ran past the trusted step's time limit")
        outcomes = replay.get("results")
        if not isinstance(outcomes, list) or len(outcomes) != count:
            return SnippetVerdicts(["trusted"] * count, "the replay gave no verdict per test")
        failures = [None if o is None else _failure_name(o) for o in outcomes]
        if result.timed_out and any(failures):
            failures = [None if f is None else ("timeout" if f == "no_result" else f) for f in failures]
        return SnippetVerdicts(failures, "")

    async def check_async(self, problem: Problem, solution: str) -> tuple[Verdict, RunResult | None]:
        return await asyncio.get_running_loop().run_in_executor(self._pool, self.check, problem, solution)

    def map(self, programs: list[str]) -> list[RunResult]:
        return list(self._pool.map(self.run, programs))

    def close(self) -> None:
        self._pool.shutdown(wait=True)
        for worker in self._all_trusted:
            worker.close()
