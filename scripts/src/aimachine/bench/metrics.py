"""Per-request and per-level metrics, with the definitions of vLLM's `vllm bench serve` (docs/metrics.md).

- TTFT: arrival of the first event carrying output - send.
- E2EL: arrival of the last event carrying output - send (vLLM >= 0.30: the trailing usage
  chunk carries no token and does not extend the request).
- TPOT: (E2EL - TTFT) / (output tokens - 1), per request, for requests with more than one token.
- ITL: every gap between consecutive output events, pooled over requests (a server that puts
  several tokens in one event makes fewer, longer gaps: compare ITL with TPOT to see it).
- Output tokens: the server's `usage.completion_tokens`; without usage, the served model's
  tokenizer on the text; without a tokenizer, the number of output events (recorded per request).
- Throughput: total output tokens / level wall time; requests/s likewise; goodput: requests/s
  that met every SLO given (vLLM's meaning), and the fraction of the level's requests that did.
- Embeddings (not streamed): E2EL is the request's latency, send to the last byte of the answer;
  inputs/s and prompt tokens/s (`usage.prompt_tokens`) over the level wall time.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from itertools import pairwise
from typing import Any

import numpy as np

from aimachine.bench.client import RequestResult

DEFAULT_PERCENTILES: tuple[float, ...] = (50.0, 90.0, 99.0)
SLO_KEYS = ("ttft", "tpot", "e2el")


@dataclass
class RequestMetrics:
    """One request's numbers (seconds, tokens) and where its token count came from."""

    ok: bool
    error: str | None
    ttft: float | None = None
    e2el: float | None = None
    tpot: float | None = None
    itl: list[float] = field(default_factory=list)
    output_tokens: int = 0
    prompt_tokens: int | None = None
    token_count_source: str | None = None
    output_events: int = 0
    output_times: list[float] = field(default_factory=list)
    finish_reason: str | None = None
    response_end: float | None = None
    inputs: int | None = None  # embeddings: texts in the request
    embedding_dim: int | None = None

    @property
    def decode_time(self) -> float | None:
        return None if self.ttft is None or self.e2el is None else self.e2el - self.ttft


def request_metrics(
    result: RequestResult, count_tokens: Callable[[str], int] | None = None
) -> RequestMetrics:
    """Apply the definitions to one request; `count_tokens` is the fallback when the server sends no usage."""
    stream = result.stream
    if not result.ok:
        return RequestMetrics(ok=False, error=result.failure, response_end=result.end)
    if result.embedding is not None:
        prompt = (result.embedding.usage or {}).get("prompt_tokens")
        return RequestMetrics(
            ok=True,
            error=None,
            e2el=result.end,
            prompt_tokens=prompt if isinstance(prompt, int) else None,
            response_end=result.end,
            inputs=result.embedding.vectors,
            embedding_dim=result.embedding.dimension,
        )
    times = stream.output_times
    usage = stream.usage or {}
    completion = usage.get("completion_tokens")
    if isinstance(completion, int) and completion >= 0:
        tokens, source = completion, "usage"
    elif count_tokens is not None:
        tokens, source = count_tokens(stream.text), "tokenizer"
    else:
        tokens, source = len(times), "events"
    prompt = usage.get("prompt_tokens")
    ttft, e2el = times[0], times[-1]
    tpot = (e2el - ttft) / (tokens - 1) if tokens > 1 else None
    return RequestMetrics(
        ok=True,
        error=None,
        ttft=ttft,
        e2el=e2el,
        tpot=tpot,
        itl=[b - a for a, b in pairwise(times)],
        output_tokens=tokens,
        prompt_tokens=prompt if isinstance(prompt, int) else None,
        token_count_source=source,
        output_events=len(times),
        output_times=list(times),
        finish_reason=stream.finish_reason,
        response_end=result.end,
    )


def distribution(values_s: Sequence[float], percentiles: Sequence[float]) -> dict[str, float | int | None]:
    """Mean, std, min, max and percentiles in milliseconds (numpy's linear interpolation, as vLLM)."""
    stats: dict[str, float | int | None] = {"count": len(values_s)}
    keys = ["mean", "std", "min", "max", *(f"p{p:g}" for p in percentiles)]
    if not values_s:
        return stats | dict.fromkeys(keys)
    ms = np.asarray(values_s, dtype=float) * 1000.0
    stats |= {
        "mean": float(ms.mean()),
        "std": float(ms.std()),
        "min": float(ms.min()),
        "max": float(ms.max()),
    }
    for p, value in zip(percentiles, np.percentile(ms, list(percentiles)), strict=True):
        stats[f"p{p:g}"] = float(value)
    return stats


def parse_goodput(items: Iterable[str]) -> dict[str, float]:
    """`ttft:500 tpot:50 e2el:10000` (ms) -> {"ttft": 500.0, ...}; a clear error for anything else."""
    slo: dict[str, float] = {}
    for item in items:
        key, sep, value = item.partition(":")
        if not sep or key not in SLO_KEYS:
            raise ValueError(
                f"goodput objective {item!r}: expected KEY:MILLISECONDS with KEY one of {', '.join(SLO_KEYS)}"
            )
        try:
            number = float(value)
        except ValueError:
            raise ValueError(
                f"goodput objective {item!r}: {value!r} is not a number of milliseconds"
            ) from None
        if number <= 0:
            raise ValueError(f"goodput objective {item!r}: the limit must be positive")
        slo[key] = number
    return slo


def goodput_block(
    requests: Sequence[RequestMetrics], duration_s: float, slo: Mapping[str, float]
) -> dict[str, Any] | None:
    """A level's goodput (contract 4): requests/s that met every objective, and the share of its requests."""
    if not slo:
        return None
    good = sum(1 for r in requests if r.ok and meets_slo(r, slo))
    return {
        "slo": dict(slo),
        "requests_per_s": good / duration_s,
        "fraction": good / len(requests) if requests else None,
        "requests_meeting_slo": good,
        "requests": len(requests),
    }


def meets_slo(metrics: RequestMetrics, slo: Mapping[str, float]) -> bool:
    """Whether a successful request met every objective (vLLM counts TPOT as 0 for one-token answers)."""
    values = {"ttft": metrics.ttft, "tpot": metrics.tpot or 0.0, "e2el": metrics.e2el}
    return all(values[key] is not None and values[key] * 1000.0 <= limit for key, limit in slo.items())


def summarize(
    requests: Sequence[RequestMetrics],
    duration_s: float,
    percentiles: Sequence[float] = DEFAULT_PERCENTILES,
    slo: Mapping[str, float] | None = None,
    target_prompt_tokens: Sequence[int | None] | None = None,
) -> dict[str, Any]:
    """One level's summary; `requests` excludes warm-up requests."""
    if duration_s <= 0:
        raise ValueError(f"duration must be positive, got {duration_s}")
    done = [r for r in requests if r.ok]
    failed = [r for r in requests if not r.ok]
    output_tokens = sum(r.output_tokens for r in done)
    prompt_tokens = sum(r.prompt_tokens or 0 for r in done)
    decode_tokens = sum(r.output_tokens - 1 for r in done if r.output_tokens > 1)
    decode_time = sum(r.decode_time or 0.0 for r in done if r.output_tokens > 1)
    output_events = sum(r.output_events for r in done)
    summary: dict[str, Any] = {
        "completed": len(done),
        "errors": len(failed),
        "error_messages": dict(Counter(r.error or "unknown" for r in failed).most_common(5)),
        "duration_s": duration_s,
        "total_prompt_tokens": prompt_tokens,
        "total_output_tokens": output_tokens,
        "request_throughput": len(done) / duration_s,
        "output_throughput": output_tokens / duration_s,
        "total_token_throughput": (prompt_tokens + output_tokens) / duration_s,
        # Per-stream decode speed: tokens after the first over the time after the first.
        "decode_tokens_per_s_per_stream": decode_tokens / decode_time if decode_time > 0 else None,
        "tokens_per_output_event": output_tokens / output_events if output_events else None,
        "token_count_sources": dict(Counter(r.token_count_source for r in done if r.token_count_source)),
        "finish_reasons": dict(Counter(str(r.finish_reason) for r in done)),
        "ttft_ms": distribution([r.ttft for r in done if r.ttft is not None], percentiles),
        "tpot_ms": distribution([r.tpot for r in done if r.tpot is not None], percentiles),
        "itl_ms": distribution([gap for r in done for gap in r.itl], percentiles),
        "e2el_ms": distribution([r.e2el for r in done if r.e2el is not None], percentiles),
    }
    if slo:
        good = sum(1 for r in done if meets_slo(r, slo))
        summary["goodput"] = {
            "slo_ms": dict(slo),
            "requests_meeting_slo": good,
            "request_goodput": good / duration_s,
            "fraction": good / len(requests) if requests else None,
        }
    embedded = [r for r in done if r.inputs is not None]
    if embedded:
        inputs = sum(r.inputs or 0 for r in embedded)
        counted = [r.prompt_tokens for r in embedded if r.prompt_tokens is not None]
        summary["embeddings"] = {
            "inputs": inputs,
            "inputs_per_s": inputs / duration_s,
            "prompt_tokens": sum(counted) if counted else None,
            "prompt_tokens_per_s": sum(counted) / duration_s if counted else None,
            "requests_without_usage": len(embedded) - len(counted),
            "dimensions": sorted({r.embedding_dim for r in embedded if r.embedding_dim is not None}),
        }
        summary["finish_reasons"] = {}
    if target_prompt_tokens is not None:
        pairs = [
            (target, r.prompt_tokens)
            for target, r in zip(target_prompt_tokens, requests, strict=True)
            if r.ok and target is not None and r.prompt_tokens is not None
        ]
        summary["prompt_tokens_check"] = {
            "checked": len(pairs),
            "exact": sum(1 for target, got in pairs if target == got),
            "mismatches": [{"target": t, "server": g} for t, g in pairs if t != g][:5],
        }
    return summary
