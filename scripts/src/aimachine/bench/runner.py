"""Runs the levels of a benchmark: warm-up, then each level as a closed loop or Poisson arrivals,
the server's /metrics read just before and just after each level (outside its timed window)."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import numpy as np
from tqdm import tqdm

from aimachine.bench.client import Endpoint, RequestResult, build_body, embed_request, stream_request
from aimachine.bench.server_metrics import Scrape, Scraper
from aimachine.bench.workloads import Level, Prompt, poisson_arrivals

# /v1/models answers at once on a live server, whatever --timeout allows a generation.
PROBE_TIMEOUT_S = 30.0


class BenchError(RuntimeError):
    """The run cannot go on (server unreachable, model not served, every warm-up request failed)."""


@dataclass
class Sent:
    """A request of the run: what was sent, when (s after its level started), and what came back."""

    prompt: Prompt
    offset: float
    result: RequestResult
    warmup: bool = False


@dataclass
class LevelRun:
    level: Level
    start: float  # s after the run started
    end: float
    sent: list[Sent] = field(default_factory=list)
    client_cpu_s: float = 0.0  # CPU time this process used during the level
    # The server's /metrics just before and just after the level (or why not); None: not asked.
    metrics_before: Scrape | str | None = None
    metrics_after: Scrape | str | None = None

    @property
    def duration(self) -> float:
        return self.end - self.start


@dataclass(frozen=True)
class Sending:
    """How every request of the run is built."""

    endpoint: Endpoint
    max_tokens: int
    ignore_eos: bool
    temperature: float | None = None
    extra_body: dict[str, Any] | None = None
    record_raw: bool = False
    encoding_format: str = "float"  # embeddings

    def body(self, prompt: Prompt) -> dict[str, Any]:
        return build_body(
            self.endpoint,
            prompt.text,
            max_tokens=self.max_tokens,
            ignore_eos=self.ignore_eos,
            temperature=self.temperature,
            extra=self.extra_body,
            inputs=prompt.inputs,
            encoding_format=self.encoding_format,
        )

    async def send(self, client: aiohttp.ClientSession, prompt: Prompt) -> RequestResult:
        body = self.body(prompt)
        if self.endpoint.api == "embeddings":
            return await embed_request(client, self.endpoint, body, self.record_raw)
        return await stream_request(client, self.endpoint, body, self.record_raw)


async def server_models(endpoint: Endpoint) -> dict[str, Any]:
    """GET /v1/models: the served models as the server describes them; a clear error if it cannot answer."""
    url = endpoint.base_url.rstrip("/") + "/v1/models"
    try:
        async with (
            aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(ssl=endpoint.ssl_context()),
                timeout=aiohttp.ClientTimeout(total=PROBE_TIMEOUT_S),
            ) as session,
            session.get(url, headers=endpoint.headers()) as response,
        ):
            status, text = response.status, await response.text(errors="replace")
    except (TimeoutError, aiohttp.ClientError) as error:
        raise BenchError(f"cannot reach {url}: {type(error).__name__}: {error}".rstrip(": ")) from None
    if status == 401:
        raise BenchError(
            f"{url} answered 401: the API key is missing or wrong (see --api-key-env/--api-key-file)"
        )
    if status != 200:
        raise BenchError(f"{url} answered HTTP {status}: {text[:300]}")
    try:
        return json.loads(text)
    except ValueError:
        raise BenchError(f"{url} did not answer JSON: {text[:300]!r}") from None


async def _closed_loop(
    client: aiohttp.ClientSession,
    sending: Sending,
    prompts: Sequence[Prompt],
    *,
    concurrency: int,
    t0: float,
    on_done: Callable[[RequestResult], None],
    warmup: bool = False,
) -> list[Sent]:
    sent: list[Sent | None] = [None] * len(prompts)
    next_index = 0

    async def worker() -> None:
        nonlocal next_index
        while next_index < len(prompts):
            index = next_index
            next_index += 1
            offset = time.perf_counter() - t0
            result = await sending.send(client, prompts[index])
            sent[index] = Sent(prompts[index], offset, result, warmup)
            on_done(result)

    await asyncio.gather(*(worker() for _ in range(min(concurrency, len(prompts)))))
    return [s for s in sent if s is not None]


async def _open_loop(
    client: aiohttp.ClientSession,
    sending: Sending,
    prompts: Sequence[Prompt],
    *,
    arrivals: Sequence[float],
    max_concurrency: int | None,
    t0: float,
    on_done: Callable[[RequestResult], None],
) -> list[Sent]:
    limit = asyncio.Semaphore(max_concurrency) if max_concurrency else None

    async def one(prompt: Prompt) -> Sent:
        if limit is None:
            offset = time.perf_counter() - t0
            result = await sending.send(client, prompt)
        else:
            async with limit:
                offset = time.perf_counter() - t0
                result = await sending.send(client, prompt)
        on_done(result)
        return Sent(prompt, offset, result)

    tasks = []
    for prompt, at in zip(prompts, arrivals, strict=True):
        delay = t0 + at - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(prompt)))
    return list(await asyncio.gather(*tasks))


async def run_levels(
    sending: Sending,
    levels: Sequence[Level],
    *,
    level_prompts: Sequence[Sequence[Prompt]],
    warmup_prompts: Sequence[Prompt],
    timeout_s: float,
    seed: int,
    run_t0: float,
    progress: bool = True,
    scraper: Scraper | None = None,
) -> tuple[list[Sent], list[LevelRun]]:
    """Warm up, then run every level; returns (warm-up requests, levels)."""
    widest = max([lv.concurrency or lv.max_concurrency or 0 for lv in levels] + [len(warmup_prompts), 1])
    open_ended = any(lv.rate is not None and lv.max_concurrency is None for lv in levels)
    # Open-ended arrivals may have any number in flight; otherwise one connection a stream.
    connector = aiohttp.TCPConnector(
        limit=0 if open_ended else widest, limit_per_host=0, ssl=sending.endpoint.ssl_context()
    )
    # --timeout bounds the wait for each read, not the whole (possibly long) generation.
    timeout = aiohttp.ClientTimeout(total=None, sock_connect=min(timeout_s, 30.0), sock_read=timeout_s)
    total = len(warmup_prompts) + sum(len(p) for p in level_prompts)
    rng = np.random.default_rng(seed)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as client:
        with tqdm(total=total, unit="req", disable=not progress, dynamic_ncols=True, leave=True) as bar:
            errors = 0

            def on_done(result: RequestResult) -> None:
                nonlocal errors
                errors += 0 if result.ok else 1
                bar.set_postfix(errors=errors, refresh=False)
                bar.update(1)

            warm: list[Sent] = []
            if warmup_prompts:
                bar.set_description("warm-up")
                first = levels[0].concurrency or levels[0].max_concurrency or 1
                warm = await _closed_loop(
                    client,
                    sending,
                    warmup_prompts,
                    concurrency=min(first, len(warmup_prompts)),
                    t0=time.perf_counter(),
                    on_done=on_done,
                    warmup=True,
                )
                if not any(s.result.ok for s in warm):
                    raise BenchError(f"every warm-up request failed; first error: {warm[0].result.failure}")
            runs: list[LevelRun] = []
            for level, prompts in zip(levels, level_prompts, strict=True):
                bar.set_description(level.name)
                before = await scraper.scrape(client) if scraper else None
                cpu0 = time.process_time()
                t0 = time.perf_counter()
                if level.concurrency is not None:
                    sent = await _closed_loop(
                        client, sending, prompts, concurrency=level.concurrency, t0=t0, on_done=on_done
                    )
                else:
                    assert level.rate is not None
                    arrivals = poisson_arrivals(len(prompts), level.rate, rng)
                    sent = await _open_loop(
                        client,
                        sending,
                        prompts,
                        arrivals=arrivals,
                        max_concurrency=level.max_concurrency,
                        t0=t0,
                        on_done=on_done,
                    )
                end = time.perf_counter()
                cpu = time.process_time() - cpu0
                after = await scraper.scrape(client) if scraper else None
                runs.append(LevelRun(level, t0 - run_t0, end - run_t0, sent, cpu, before, after))
    return warm, runs
