"""The pipeline: ask the model (in parallel), extract the code, run it in the sandbox, keep a record."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

from tqdm import tqdm

from aimachine.quality.client import Completion, Endpoint, EndpointError
from aimachine.quality.datasets import Problem
from aimachine.quality.execution import Executor
from aimachine.quality.extract import Extraction, extract_code, truncate_completion
from aimachine.quality.judge import judge_answer
from aimachine.quality.prompts import chat_messages, completion_prompt, completion_source
from aimachine.quality.scenarios import Scenario, score_answer

SOLUTIONS = ("model", "canonical", "wrong", "origin")
STDERR_TAIL = 1500


def _completion_fields(completion: Completion) -> dict[str, object]:
    """What a per-sample record keeps of the endpoint's answer besides its text."""
    return {
        "finish_reason": completion.finish_reason,
        "usage": {
            "prompt_tokens": completion.prompt_tokens,
            "completion_tokens": completion.completion_tokens,
        },
    }


@dataclass(frozen=True)
class RunSettings:
    solutions: str = "model"
    mode: str = "chat"
    n_samples: int = 1
    temperature: float = 0.0
    top_p: float | None = None
    max_tokens: int = 1024
    seed: int | None = 0
    concurrency: int = 8
    judge: bool = False
    judge_max_tokens: int = 512


@dataclass
class SuiteRun:
    suite: str
    records: list[dict[str, object]]
    wall_s: float


def _wrong_solution(problem: Problem) -> str:
    return f"def {problem.entry_point}(*args, **kwargs):\n    return None\n"


class Runner:
    def __init__(
        self,
        settings: RunSettings,
        executor: Executor,
        endpoint: Endpoint | None = None,
        judge_endpoint: Endpoint | None = None,
        progress: bool = True,
    ) -> None:
        if settings.solutions not in SOLUTIONS:
            raise ValueError(f"solutions must be one of {SOLUTIONS}")
        if settings.solutions == "model" and endpoint is None:
            raise ValueError("model solutions need an endpoint")
        self.settings = settings
        self.executor = executor
        self.endpoint = endpoint
        self.judge_endpoint = judge_endpoint
        self.progress = progress
        self._semaphore = asyncio.Semaphore(settings.concurrency)

    def _seed(self, sample: int) -> int | None:
        return None if self.settings.seed is None else self.settings.seed + sample

    async def _ask(self, prompt: object, sample: int, stop: list[str] | None = None) -> Completion:
        assert self.endpoint is not None
        s = self.settings
        async with self._semaphore:
            if isinstance(prompt, str):
                return await self.endpoint.complete(
                    prompt,
                    max_tokens=s.max_tokens,
                    temperature=s.temperature,
                    top_p=s.top_p,
                    seed=self._seed(sample),
                    stop=stop,
                )
            return await self.endpoint.chat(
                prompt,
                max_tokens=s.max_tokens,
                temperature=s.temperature,
                top_p=s.top_p,  # type: ignore[arg-type]
                seed=self._seed(sample),
            )

    async def _answer(
        self, problem: Problem, sample: int
    ) -> tuple[object, Completion | None, str, Extraction]:
        """(prompt shown, completion, raw answer text, extraction) for one sample."""
        s = self.settings
        if s.solutions in ("canonical", "wrong"):
            text = problem.canonical if s.solutions == "canonical" else _wrong_solution(problem)
            return None, None, text, extract_code(text, problem.entry_point)
        if s.mode == "completion":
            prompt, stops = completion_prompt(problem)
            completion = await self._ask(prompt, sample, stops)
            text = truncate_completion(completion.text, stops)
            return (
                prompt,
                completion,
                completion.text,
                extract_code(completion_source(problem, text), problem.entry_point),
            )
        messages = chat_messages(problem)
        completion = await self._ask(messages, sample)
        context = problem.text if problem.suite == "humaneval" else None
        return (
            messages,
            completion,
            completion.text,
            extract_code(completion.text, problem.entry_point, context),
        )

    async def _sample(self, problem: Problem, sample: int) -> dict[str, object]:
        start = time.monotonic()
        record: dict[str, object] = {"suite": problem.suite, "id": problem.task_id, "sample": sample}
        try:
            prompt, completion, text, extraction = await self._answer(problem, sample)
        except EndpointError as error:
            record.update(
                prompt=None,
                completion=None,
                extracted_code=None,
                verdict="failed",
                error_kind="request",
                error_detail=str(error)[:500],
                time={"request_s": None, "exec_s": None, "total_s": round(time.monotonic() - start, 3)},
            )
            return record
        record.update(
            prompt=prompt if prompt is not None else problem.text,
            completion=text,
            extracted_code=extraction.code,
            extraction=extraction.as_dict(),
        )
        if completion is not None:
            record.update(_completion_fields(completion))
        exec_s = None
        if not extraction.code.strip():
            record.update(verdict="failed", error_kind="no_code", error_detail="; ".join(extraction.notes))
        else:
            verdict, result = await self.executor.check_async(problem, extraction.code)
            exec_s = round(verdict.duration_s, 3)
            record.update(
                verdict="passed" if verdict.passed else "failed",
                error_kind=verdict.error_kind,
                error_detail=verdict.error_detail,
            )
            if result is not None and not verdict.passed:
                record["stderr_tail"] = result.stderr[-STDERR_TAIL:]
            if result is not None and result.leftover_pids:
                record["sandbox_leftovers"] = result.leftover_pids
        record["time"] = {
            "request_s": round(completion.latency_s, 3) if completion else None,
            "exec_s": exec_s,
            "total_s": round(time.monotonic() - start, 3),
        }
        return record

    async def run_problems(self, suite: str, problems: list[Problem]) -> SuiteRun:
        n = self.settings.n_samples if self.settings.solutions == "model" else 1
        start = time.monotonic()
        tasks = [asyncio.ensure_future(self._sample(p, i)) for p in problems for i in range(n)]
        records = []
        with tqdm(total=len(tasks), desc=suite, unit="sample", disable=not self.progress, leave=True) as bar:
            for future in asyncio.as_completed(tasks):
                record = await future
                records.append(record)
                bar.update(1)
                bar.set_postfix(passed=sum(r["verdict"] == "passed" for r in records), refresh=False)
        order = {(p.task_id, i): k for k, (p, i) in enumerate((p, i) for p in problems for i in range(n))}
        records.sort(key=lambda r: order[(str(r["id"]), int(r["sample"]))])  # type: ignore[call-overload]
        return SuiteRun(suite, records, time.monotonic() - start)

    async def _scenario(self, scenario: Scenario) -> dict[str, object]:
        s = self.settings
        start = time.monotonic()
        messages = [{"role": "user", "content": scenario.prompt}]
        record: dict[str, object] = {
            "suite": "scenarios",
            "id": scenario.id,
            "sample": 0,
            "prompt": messages,
            "origin_reported_percent": scenario.origin.get("reported_percent"),
        }
        completion = None
        if s.solutions == "model":
            try:
                completion = await self._ask(messages, 0)
            except EndpointError as error:
                record.update(
                    completion=None,
                    extracted_code=None,
                    verdict="failed",
                    error_kind="request",
                    error_detail=str(error)[:500],
                    points=0.0,
                    max_points=scenario.max_points,
                )
                return record
            answer = completion.text
        elif s.solutions == "canonical":
            answer = scenario.reference_answer or ""
        elif s.solutions == "origin":
            answer = scenario.origin_answer or ""
        else:
            answer = ""
        score = await asyncio.to_thread(score_answer, scenario, answer, self.executor)
        record.update(
            completion=answer,
            extracted_code=score.extraction.code if score.extraction else None,
            extraction=score.extraction.as_dict() if score.extraction else None,
            verdict="scored",
            error_kind=None,
            **score.as_dict(),
            table=score.table(),
        )
        if completion is not None:
            record.update(_completion_fields(completion))
        if s.judge and self.judge_endpoint is not None:
            verdict = await judge_answer(self.judge_endpoint, scenario, answer, s.judge_max_tokens)
            record["judge"] = verdict.as_dict()
        record["time"] = {
            "request_s": round(completion.latency_s, 3) if completion else None,
            "total_s": round(time.monotonic() - start, 3),
        }
        return record

    async def run_scenarios(self, scenarios: list[Scenario]) -> SuiteRun:
        start = time.monotonic()
        tasks = [asyncio.ensure_future(self._scenario(s)) for s in scenarios]
        records = []
        with tqdm(total=len(tasks), desc="scenarios", unit="scenario", disable=not self.progress) as bar:
            for future in asyncio.as_completed(tasks):
                records.append(await future)
                bar.update(1)
        order = {s.id: k for k, s in enumerate(scenarios)}
        records.sort(key=lambda r: order[str(r["id"])])
        return SuiteRun("scenarios", records, time.monotonic() - start)
