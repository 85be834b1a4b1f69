"""Run test programs on the sandbox's worker slots and turn their outcome into verdicts."""

from __future__ import annotations

import asyncio
import queue
import re
import secrets
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from aimachine.quality.sandbox import RunResult, Sandbox

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


class Executor:
    """A pool of threads, one per sandbox slot; each run takes a free slot for its duration."""

    def __init__(self, sandbox: Sandbox) -> None:
        self.sandbox = sandbox
        self._slots: queue.Queue[int] = queue.Queue()
        for slot in range(sandbox.settings.workers):
            self._slots.put(slot)
        self._pool = ThreadPoolExecutor(max_workers=sandbox.settings.workers, thread_name_prefix="sandbox")

    def run(self, program: str) -> RunResult:
        slot = self._slots.get()
        try:
            return self.sandbox.run(program, slot)
        finally:
            self._slots.put(slot)

    async def run_async(self, program: str) -> RunResult:
        return await asyncio.get_running_loop().run_in_executor(self._pool, self.run, program)

    def map(self, programs: list[str]) -> list[RunResult]:
        return list(self._pool.map(self.run, programs))

    def close(self) -> None:
        self._pool.shutdown(wait=True)
