"""The server's own counters around each level: vLLM's Prometheus `/metrics`, read before and after.

Names and types are vLLM's (the same in 0.26.0, the lent GPU's release, and 0.33.0, the one the
appliance pins: `vllm/v1/metrics/loggers.py`, `vllm/v1/spec_decode/metrics.py`). prometheus_client
exposes a counter `vllm:x` as the sample `vllm:x_total` (plus a `vllm:x_created` gauge, ignored)
and a histogram as `_bucket`, `_sum` and `_count` samples; every sample carries the labels
`model_name` (the served name) and `engine` (data-parallel rank). A level's figure is after minus
before, summed over engines, for the benchmarked model only (a front door may one day proxy one
instance's /metrics for several models).

- spec_decode: `vllm:spec_decode_num_drafts_total`, `..._num_draft_tokens_total`,
  `..._num_accepted_tokens_total`, `..._num_accepted_tokens_per_pos_total{position}`; acceptance
  rate = accepted / draft tokens, mean acceptance length = 1 + accepted / drafts, per position
  accepted / drafts (the figures of vLLM's own "SpecDecoding metrics" log line).
- prefix_cache: `vllm:prefix_cache_queries_total`, `vllm:prefix_cache_hits_total` (tokens); hit
  rate = hits / queries.
- queue_time, ttft: the histograms `vllm:request_queue_time_seconds` (WAITING phase) and
  `vllm:time_to_first_token_seconds`, `_sum` / `_count`: the mean over the level's requests.
- requests_finished: `vllm:request_success_total`, every `finished_reason`.

A group is None where the server exposes none of its samples (no speculative decoding
configured, an engine without these counters); the whole block is None where the server has no
/metrics at all (`transformers serve`).
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import aiohttp

# A scrape answers at once on a live server; a slow one must not hold the run.
SCRAPE_TIMEOUT_S = 30.0
# The classic text format (prometheus_client answers OpenMetrics only when asked for it).
ACCEPT = "text/plain;version=0.0.4;q=1.0, */*;q=0.1"

SPEC_DRAFTS = "vllm:spec_decode_num_drafts_total"
SPEC_DRAFT_TOKENS = "vllm:spec_decode_num_draft_tokens_total"
SPEC_ACCEPTED = "vllm:spec_decode_num_accepted_tokens_total"
SPEC_ACCEPTED_PER_POS = "vllm:spec_decode_num_accepted_tokens_per_pos_total"
PREFIX_QUERIES = "vllm:prefix_cache_queries_total"
PREFIX_HITS = "vllm:prefix_cache_hits_total"
QUEUE_TIME = "vllm:request_queue_time_seconds"
TTFT = "vllm:time_to_first_token_seconds"
REQUEST_SUCCESS = "vllm:request_success_total"


class ExpositionError(ValueError):
    """Text that is not Prometheus's exposition format."""


@dataclass(frozen=True)
class Sample:
    name: str
    labels: tuple[tuple[str, str], ...]
    value: float

    def label(self, key: str) -> str | None:
        return dict(self.labels).get(key)


@dataclass
class Scrape:
    """One read of /metrics: the samples by name, and when (s after the run started)."""

    samples: dict[str, list[Sample]] = field(default_factory=dict)
    t: float = 0.0

    def model_names(self) -> list[str]:
        return sorted({s.label("model_name") for v in self.samples.values() for s in v} - {None})  # type: ignore[arg-type]

    def select(self, name: str, model: str | None) -> list[Sample] | None:
        """The samples of `name` for `model` (all where they carry no model_name); None if none."""
        found = self.samples.get(name)
        if not found:
            return None
        mine = [s for s in found if model is None or s.label("model_name") in (None, model)]
        return mine or None

    def total(self, name: str, model: str | None) -> float | None:
        samples = self.select(name, model)
        return None if samples is None else sum(s.value for s in samples)


def _labels(text: str, line: str) -> tuple[tuple[str, str], ...]:
    """`a="x",b="y\\"z"` -> (("a", "x"), ("b", 'y"z')): three escapes, trailing comma allowed."""
    labels: list[tuple[str, str]] = []
    i, n = 0, len(text)
    while i < n:
        while i < n and text[i] in " ,":
            i += 1
        if i >= n:
            break
        eq = text.find("=", i)
        if eq < 0 or eq + 1 >= n or text[eq + 1] != '"':
            raise ExpositionError(f"bad labels in {line[:200]!r}")
        key, i = text[i:eq].strip(), eq + 2
        value: list[str] = []
        while True:
            if i >= n:
                raise ExpositionError(f"unterminated label value in {line[:200]!r}")
            ch = text[i]
            if ch == "\\" and i + 1 < n:
                value.append({"n": "\n", "\\": "\\", '"': '"'}.get(text[i + 1], "\\" + text[i + 1]))
                i += 2
            elif ch == '"':
                i += 1
                break
            else:
                value.append(ch)
                i += 1
        labels.append((key, "".join(value)))
    return tuple(labels)


def parse_exposition(text: str) -> dict[str, list[Sample]]:
    """Samples of Prometheus's text format (0.0.4; OpenMetrics' `# EOF` and exemplars tolerated)."""
    samples: dict[str, list[Sample]] = defaultdict(list)
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        line = line.split(" # ", 1)[0]  # an OpenMetrics exemplar
        if "{" in line:
            name, _, rest = line.partition("{")
            close = rest.rfind("}")
            if close < 0:
                raise ExpositionError(f"unclosed labels in {raw[:200]!r}")
            labels = _labels(rest[:close], raw)
            fields = rest[close + 1 :].split()
        else:
            name, *fields = line.split()
            labels = ()
        name = name.strip()
        if not name or not fields:
            raise ExpositionError(f"not a sample line: {raw[:200]!r}")
        try:
            value = float(fields[0])
        except ValueError:
            raise ExpositionError(f"not a number in {raw[:200]!r}") from None
        samples[name].append(Sample(name, labels, value))
    return dict(samples)


class CounterReset(ValueError):
    """A counter went down between two reads: the server restarted in between."""


def _number(value: float) -> int | float:
    return int(value) if float(value).is_integer() else value


def _delta(before: Scrape, after: Scrape, name: str, model: str | None) -> float | None:
    a, b = after.total(name, model), before.total(name, model)
    if a is None or b is None:
        return None
    if a < b:
        raise CounterReset(f"{name} went down from {b:g} to {a:g}: the server restarted during the level")
    return a - b


def _mean_block(before: Scrape, after: Scrape, histogram: str, model: str | None) -> dict[str, Any] | None:
    count = _delta(before, after, histogram + "_count", model)
    total = _delta(before, after, histogram + "_sum", model)
    if count is None or total is None:
        return None
    return {
        "requests": _number(count),
        "sum_s": total,
        "mean_ms": 1000.0 * total / count if count else None,
    }


def _per_position(
    before: Scrape, after: Scrape, model: str | None, drafts: float
) -> list[dict[str, Any]] | None:
    a, b = after.select(SPEC_ACCEPTED_PER_POS, model), before.select(SPEC_ACCEPTED_PER_POS, model)
    if a is None or b is None:
        return None

    def by_position(samples: list[Sample]) -> dict[int, float]:
        out: dict[int, float] = defaultdict(float)
        for s in samples:
            position = s.label("position")
            if position is not None and position.isdigit():
                out[int(position)] += s.value
        return out

    after_pos, before_pos = by_position(a), by_position(b)
    rows = []
    for position in sorted(after_pos):
        accepted = after_pos[position] - before_pos.get(position, 0.0)
        if accepted < 0:
            raise CounterReset(f"{SPEC_ACCEPTED_PER_POS}{{position={position}}} went down")
        rows.append(
            {
                "position": position,
                "accepted_tokens": _number(accepted),
                "acceptance_rate": accepted / drafts if drafts else None,
            }
        )
    return rows


def level_delta(before: Scrape, after: Scrape, model: str | None) -> dict[str, Any]:
    """What the server counted between two reads (raises CounterReset if it restarted in between)."""
    spec: dict[str, Any] | None = None
    drafts = _delta(before, after, SPEC_DRAFTS, model)
    draft_tokens = _delta(before, after, SPEC_DRAFT_TOKENS, model)
    accepted = _delta(before, after, SPEC_ACCEPTED, model)
    if draft_tokens is not None and accepted is not None:
        spec = {
            "drafts": None if drafts is None else _number(drafts),
            "draft_tokens": _number(draft_tokens),
            "accepted_tokens": _number(accepted),
            "acceptance_rate": accepted / draft_tokens if draft_tokens else None,
            "mean_acceptance_length": 1.0 + accepted / drafts if drafts else None,
            "per_position": None if drafts is None else _per_position(before, after, model, drafts),
        }
    prefix: dict[str, Any] | None = None
    queries = _delta(before, after, PREFIX_QUERIES, model)
    hits = _delta(before, after, PREFIX_HITS, model)
    if queries is not None and hits is not None:
        prefix = {
            "queried_tokens": _number(queries),
            "hit_tokens": _number(hits),
            "hit_rate": hits / queries if queries else None,
        }
    finished = _delta(before, after, REQUEST_SUCCESS, model)
    return {
        "interval_s": after.t - before.t,
        "requests_finished": None if finished is None else _number(finished),
        "spec_decode": spec,
        "prefix_cache": prefix,
        "queue_time": _mean_block(before, after, QUEUE_TIME, model),
        "ttft": _mean_block(before, after, TTFT, model),
    }


def _refusal(status: int, url: str, text: str) -> str:
    if status == 401:
        return f"{url} answered 401: the API key is not accepted there"
    if status == 403:
        return (
            f"{url} answered 403: not allowed from this address (the front door serves /metrics only to "
            "llm_frontdoor_metrics_allowed, loopback by default): run the bench on the server's host, "
            "or point --metrics-url at the engine's loopback port"
        )
    if status == 404:
        return f"{url} answered 404: no Prometheus /metrics there (transformers serve has none)"
    return f"{url} answered HTTP {status}: {text[:200]}"


class Scraper:
    """Reads /metrics with the run's key and TLS trust; after a refusal it stops asking."""

    def __init__(self, url: str, headers: Mapping[str, str], run_t0: float) -> None:
        self.url = url
        self.headers = {k: v for k, v in headers.items() if k.lower() == "authorization"} | {"Accept": ACCEPT}
        self.run_t0 = run_t0
        self.unavailable: str | None = None
        self.errors: dict[str, str] = {}
        self.model_names: set[str] = set()
        self.scrapes = 0

    async def scrape(self, session: aiohttp.ClientSession) -> Scrape | str:
        """A Scrape, or why there is none (a refusal also marks the server unavailable)."""
        if self.unavailable:
            return self.unavailable
        try:
            async with session.get(
                self.url, headers=self.headers, timeout=aiohttp.ClientTimeout(total=SCRAPE_TIMEOUT_S)
            ) as response:
                status, text = response.status, await response.text(errors="replace")
        except (TimeoutError, aiohttp.ClientError) as error:
            reason = f"cannot read {self.url}: {type(error).__name__}: {error}".rstrip(": ")
            if not self.scrapes:
                self.unavailable = reason
            return reason
        t = time.perf_counter() - self.run_t0
        if status != 200:
            reason = _refusal(status, self.url, text)
            if status in (401, 403, 404) or not self.scrapes:
                self.unavailable = reason
            return reason
        try:
            samples = parse_exposition(text)
        except ExpositionError as error:
            self.unavailable = f"{self.url} did not answer Prometheus text: {error}"
            return self.unavailable
        if not samples:
            self.unavailable = f"{self.url} answered no samples"
            return self.unavailable
        self.scrapes += 1
        scrape = Scrape(samples, t)
        self.model_names.update(scrape.model_names())
        return scrape

    def level(
        self, name: str, before: Scrape | str | None, after: Scrape | str | None, model: str
    ) -> dict[str, Any] | None:
        """The level's block, or None (why kept in `errors`, unless the server has no /metrics at all)."""
        for read in (before, after):
            if not isinstance(read, Scrape):
                if read is not None and read != self.unavailable:
                    self.errors[name] = read
                return None
        assert isinstance(before, Scrape) and isinstance(after, Scrape)
        try:
            return level_delta(before, after, model)
        except CounterReset as error:
            self.errors[name] = str(error)
            return None

    def describe(self, model: str) -> dict[str, Any]:
        seen = sorted(self.model_names)
        note = None
        if seen and model not in seen:
            note = f"the counters name {', '.join(seen)}, not {model}: none were counted for this model"
        return {
            "url": self.url,
            "available": self.unavailable is None,
            "reason": self.unavailable,
            "model_names_seen": seen,
            "note": note,
            "errors": dict(self.errors),
        }


def not_read(url: str | None, reason: str) -> dict[str, Any]:
    return {
        "url": url,
        "available": False,
        "reason": reason,
        "model_names_seen": [],
        "note": None,
        "errors": {},
    }
