"""The infill suite (issue #16.6): an autocomplete model fills a masked span of HumanEval's canonical
solutions through `/v1/completions` with its own fill-in-the-middle markers.

Per problem one span is masked: one to three consecutive lines with code on them, inside the
solution body (never the signature or docstring), chosen by a seed, and one the tests depend on:
a span whose lines replaced by a `raise` still pass (a branch the tests never take) would pass
for any fill, so the next seeded choice is taken (up to SPAN_ATTEMPTS). The model's fill, cut at the
first stop string, goes between the prefix and the suffix; that whole function is scored by the
same sandboxed, trusted path HumanEval's answers take (`Executor.check`). Requests are streamed:
each record keeps its time to first token and its total time, the budget a typing user feels.
"""

from __future__ import annotations

import asyncio
import json
import random
import time
from dataclasses import dataclass, field

import httpx
import numpy as np
from tqdm import tqdm

from aimachine.bench.workloads import FimTokens
from aimachine.quality.client import EndpointError
from aimachine.quality.datasets import Problem
from aimachine.quality.execution import Executor
from aimachine.quality.extract import truncate_completion
from aimachine.quality.runner import SuiteRun

SUITE = "infill"
MAX_SPAN_LINES = 3
SPAN_ATTEMPTS = 8
# A blank line ends a span (masked spans never hold one); the model's own markers end a fill too.
BLANK_LINE = "\n\n"
DEFAULT_MAX_TOKENS = 128
STDERR_TAIL = 1500


@dataclass(frozen=True)
class Span:
    """A function split around its masked lines: prefix + middle + suffix is the canonical code."""

    task_id: str
    prefix: str
    middle: str
    suffix: str
    first_line: int  # 0-based line of the function text where the mask starts
    lines: int
    attempt: int = 0

    def prompt(self, tokens: FimTokens) -> str:
        return tokens.prompt(self.prefix, self.suffix)


def mask_span(problem: Problem, seed: int, attempt: int = 0) -> Span:
    """The masked span of `problem` for `seed` (and `attempt`): whole lines of the body, deterministic."""
    code, start = problem.canonical, len(problem.context)
    if not code.startswith(problem.context) or not problem.context.endswith("\n"):
        raise ValueError(f"{problem.task_id}: the solution does not follow the prompt on a new line")
    lines = code.splitlines(keepends=True)
    offsets = np.cumsum([0, *map(len, lines)]).tolist()
    body = [i for i, line in enumerate(lines) if offsets[i] >= start and line.strip()]
    if not body:
        raise ValueError(f"{problem.task_id}: no code lines in the solution body")
    # String seeds hash with SHA-512 in `random`: the same span on every machine and run.
    rng = random.Random(f"infill:{seed}:{attempt}:{problem.task_id}")
    first = rng.choice(body)
    count = 1
    wanted = rng.randint(1, MAX_SPAN_LINES)
    while count < wanted and first + count < len(lines) and lines[first + count].strip():
        count += 1
    begin, end = offsets[first], offsets[first + count]
    return Span(problem.task_id, code[:begin], code[begin:end], code[end:], first, count, attempt)


def cut_fill(text: str, stops: list[str]) -> str:
    """The fill as an editor inserts it: up to the first stop (servers may not honour `stop`)."""
    return truncate_completion(text, stops)


def assemble(span: Span, fill: str) -> str:
    """prefix + fill + suffix; a fill that ends mid-line (a stop ate its newline) is ended."""
    if span.suffix and fill and not fill.endswith("\n"):
        fill += "\n"
    return span.prefix + fill + span.suffix


def wrong_fill(span: Span) -> str:
    """A deliberately wrong fill for `--solutions wrong`: the span's lines raise."""
    indent = span.middle[: len(span.middle) - len(span.middle.lstrip())]
    return f"{indent}raise RuntimeError('wrong fill')\n"


@dataclass(frozen=True)
class Streamed:
    text: str
    ttft_s: float | None
    total_s: float
    finish_reason: str | None
    completion_tokens: int | None


async def stream_completion(client: httpx.AsyncClient, url: str, payload: dict[str, object]) -> Streamed:
    """One streamed `/v1/completions` request: its text, time to first text and total time."""
    start = time.perf_counter()
    ttft = None
    parts: list[str] = []
    finish = tokens = None
    try:
        # include_usage: vLLM then reports the completion's tokens in a last chunk (the bench asks the same).
        body = {**payload, "stream": True, "stream_options": {"include_usage": True}}
        async with client.stream("POST", url, json=body) as response:
            if response.status_code != 200:
                body = (await response.aread()).decode(errors="replace")
                raise EndpointError(f"POST {url} failed: HTTP {response.status_code}: {body[:300]}")
            async for line in response.aiter_lines():
                if not line.startswith("data:"):
                    continue
                data = line[5:].strip()
                if data == "[DONE]":
                    break
                try:
                    chunk = json.loads(data)
                except ValueError as error:
                    raise EndpointError(f"{url}: stream chunk is not JSON: {data[:200]!r}") from error
                if not isinstance(chunk, dict):
                    continue
                if chunk.get("error"):
                    raise EndpointError(f"{url}: the stream reports an error: {str(chunk['error'])[:300]}")
                usage = chunk.get("usage")
                if isinstance(usage, dict) and isinstance(usage.get("completion_tokens"), int):
                    tokens = usage["completion_tokens"]
                for choice in chunk.get("choices") or []:
                    text = choice.get("text") if isinstance(choice, dict) else None
                    if isinstance(text, str) and text:
                        if ttft is None:
                            ttft = time.perf_counter() - start
                        parts.append(text)
                    if isinstance(choice, dict) and choice.get("finish_reason"):
                        finish = choice["finish_reason"]
    except httpx.HTTPError as error:
        raise EndpointError(f"POST {url} failed: {type(error).__name__}: {error}") from error
    return Streamed("".join(parts), ttft, time.perf_counter() - start, finish, tokens)


@dataclass(frozen=True)
class InfillSettings:
    solutions: str = "model"  # model, canonical (the masked span itself) or wrong
    seed: int = 0
    max_tokens: int = DEFAULT_MAX_TOKENS
    temperature: float = 0.0
    concurrency: int = 1  # one at a time: the latencies of one typing user
    tokens: FimTokens = field(default_factory=FimTokens)
    stop: tuple[str, ...] = ()


class InfillRunner:
    def __init__(
        self,
        settings: InfillSettings,
        executor: Executor,
        *,
        root: str | None = None,
        model: str | None = None,
        api_key: str | None = None,
        timeout_s: float = 600.0,
        progress: bool = False,
    ) -> None:
        self.settings = settings
        self.executor = executor
        self.root = root
        self.model = model
        self.progress = progress
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._client = httpx.AsyncClient(headers=headers, timeout=httpx.Timeout(timeout_s, connect=10.0))

    @staticmethod
    def stops_for(settings: InfillSettings) -> list[str]:
        # The blank line first: OpenAI-style servers may keep only the first four.
        return list(dict.fromkeys([BLANK_LINE, *settings.stop]))

    @property
    def stops(self) -> list[str]:
        return self.stops_for(self.settings)

    async def aclose(self) -> None:
        await self._client.aclose()

    def _payload(self, prompt: str) -> dict[str, object]:
        s = self.settings
        return {
            "model": self.model,
            "prompt": prompt,
            "max_tokens": s.max_tokens,
            "temperature": s.temperature,
            "seed": s.seed,
            "stop": self.stops,
        }

    async def tested_span(self, problem: Problem) -> tuple[Span, bool]:
        """The first seeded span the tests depend on (its `wrong_fill` fails), and whether one was found."""
        for attempt in range(SPAN_ATTEMPTS):
            span = mask_span(problem, self.settings.seed, attempt)
            verdict, _ = await self.executor.check_async(problem, assemble(span, wrong_fill(span)))
            if not verdict.passed:
                return span, True
        return mask_span(problem, self.settings.seed), False

    async def _one(self, problem: Problem, gate: asyncio.Semaphore) -> dict[str, object]:
        s = self.settings
        span, tested = await self.tested_span(problem)
        prompt = span.prompt(s.tokens)
        record: dict[str, object] = {
            "suite": SUITE,
            "id": problem.task_id,
            "sample": 0,
            "prompt": prompt,
            "masked_span": span.middle,
            "span_lines": [span.first_line, span.lines],
            "span_attempt": span.attempt,
            "span_tested": tested,
        }
        streamed = None
        if s.solutions == "model":
            try:
                async with gate:
                    url = f"{self.root}/completions"
                    streamed = await stream_completion(self._client, url, self._payload(prompt))
            except EndpointError as error:
                record.update(
                    completion=None,
                    fill=None,
                    extracted_code=None,
                    verdict="failed",
                    error_kind="request",
                    error_detail=str(error)[:500],
                    time={"ttft_s": None, "request_s": None, "exec_s": None},
                )
                return record
            raw = streamed.text
        else:
            raw = span.middle if s.solutions == "canonical" else wrong_fill(span)
        fill = cut_fill(raw, self.stops)
        candidate = assemble(span, fill)
        verdict, result = await self.executor.check_async(problem, candidate)
        record.update(
            completion=raw,
            fill=fill,
            exact_match=fill.strip() == span.middle.strip(),
            extracted_code=candidate,
            verdict="passed" if verdict.passed else "failed",
            error_kind=verdict.error_kind,
            error_detail=verdict.error_detail,
            time={
                "ttft_s": None if streamed is None or streamed.ttft_s is None else round(streamed.ttft_s, 4),
                "request_s": None if streamed is None else round(streamed.total_s, 4),
                "exec_s": round(verdict.duration_s, 3),
            },
        )
        if streamed is not None:
            record.update(
                finish_reason=streamed.finish_reason,
                usage={"prompt_tokens": None, "completion_tokens": streamed.completion_tokens},
            )
        if result is not None and not verdict.passed:
            record["stderr_tail"] = result.stderr[-STDERR_TAIL:]
        return record

    async def run(self, problems: list[Problem]) -> SuiteRun:
        start = time.monotonic()
        gate = asyncio.Semaphore(self.settings.concurrency)
        tasks = [asyncio.ensure_future(self._one(p, gate)) for p in problems]
        records = []
        with tqdm(total=len(tasks), desc=SUITE, unit="span", disable=not self.progress, leave=True) as bar:
            for future in asyncio.as_completed(tasks):
                records.append(await future)
                bar.update(1)
        order = {p.task_id: k for k, p in enumerate(problems)}
        records.sort(key=lambda r: order[str(r["id"])])
        return SuiteRun(SUITE, records, time.monotonic() - start)


def _percentiles(values: list[float]) -> dict[str, float | int] | None:
    if not values:
        return None
    ms = np.asarray(values) * 1000.0
    return {
        "count": len(values),
        "mean": round(float(ms.mean()), 2),
        "p50": round(float(np.percentile(ms, 50)), 2),
        "p90": round(float(np.percentile(ms, 90)), 2),
        "p99": round(float(np.percentile(ms, 99)), 2),
        "max": round(float(ms.max()), 2),
    }


def latency_summary(run: SuiteRun) -> dict[str, object]:
    """What the infill summary adds to pass@1: per-request latencies (ms) and exact matches."""
    times = [r["time"] for r in run.records if isinstance(r.get("time"), dict)]
    ttft = [t["ttft_s"] for t in times if isinstance(t.get("ttft_s"), int | float)]
    total = [t["request_s"] for t in times if isinstance(t.get("request_s"), int | float)]
    matched = [bool(r["exact_match"]) for r in run.records if "exact_match" in r]
    return {
        "ttft_ms": _percentiles(ttft),
        "total_ms": _percentiles(total),
        "exact_match": round(sum(matched) / len(matched), 4) if matched else None,
        # Spans no test reaches (every seeded draw passed with a raising fill): any fill passes them.
        "untested_spans": sum(1 for r in run.records if r.get("span_tested") is False),
        "span_lines_mean": round(
            sum(int(r["span_lines"][1]) for r in run.records) / len(run.records),
            2,  # type: ignore[index]
        )
        if run.records
        else None,
    }
