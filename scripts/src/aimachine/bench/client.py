"""Timed streaming requests to an OpenAI-compatible server (chat and completions), with asyncio and aiohttp.

Every network read is timestamped on arrival; the stream is then interpreted into the moments
that matter (first and last output chunk, usage, finish reason). Times are seconds after the
request was handed to the HTTP client ("send").

aiohttp (the transport of vLLM's own benchmark client) rather than httpx: its C HTTP parser costs
about a third of the CPU time a streamed event costs through httpx, and the client's own time is
what inflates TTFT and ITL when many streams deliver at once (docs/benchmarks.md).
"""

from __future__ import annotations

import json
import ssl
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import aiohttp

from aimachine.bench.sse import SSEDecoder, SSEEvent

Api = Literal["chat", "completions"]
PATHS: dict[str, str] = {"chat": "/v1/chat/completions", "completions": "/v1/completions"}
# Bodies of error answers are kept for the report, cut to this length.
ERROR_TEXT_LIMIT = 500


@dataclass(frozen=True)
class Endpoint:
    """Where and how to send: base URL without /v1, API flavour, served model name, key (never logged)."""

    base_url: str
    api: Api
    model: str
    api_key: str | None = field(default=None, repr=False)
    # PEM file of the CA to trust for https (the front door's generated CA); None: the system store.
    ca_cert: str | None = None

    @property
    def url(self) -> str:
        return self.base_url.rstrip("/") + PATHS[self.api]

    def ssl_context(self) -> ssl.SSLContext | bool:
        """TLS trust for aiohttp: the given CA only, or True for the system store (always verified)."""
        return ssl.create_default_context(cafile=self.ca_cert) if self.ca_cert else True

    def headers(self) -> dict[str, str]:
        headers = {"Accept": "text/event-stream"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        return headers


def build_body(
    endpoint: Endpoint,
    prompt: str,
    *,
    max_tokens: int,
    ignore_eos: bool,
    temperature: float | None = None,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Request body; `ignore_eos` is a vLLM extension, sent only when asked (other servers reject it)."""
    body: dict[str, Any] = {
        "model": endpoint.model,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    if endpoint.api == "chat":
        body["messages"] = [{"role": "user", "content": prompt}]
    else:
        body["prompt"] = prompt
    body["max_tokens"] = max_tokens
    if ignore_eos:
        body["ignore_eos"] = True
    if temperature is not None:
        body["temperature"] = temperature
    if extra:
        body.update(extra)
    return body


@dataclass
class StreamResult:
    """What a stream said, with times in seconds after send.

    `output_times` holds the arrival time of every event that carried generated output (the
    events vLLM's client counts as tokens); with a coalescing server one event carries several
    tokens, so len(output_times) may be less than the token count.
    """

    output_times: list[float] = field(default_factory=list)
    text: str = ""
    usage: dict[str, Any] | None = None
    finish_reason: str | None = None
    error: str | None = None
    events: int = 0
    done_seen: bool = False


def _chat_output(choice: dict[str, Any]) -> str | None:
    """The generated text of a chat delta, "" for an empty token, None for a metadata-only delta."""
    delta = choice.get("delta")
    if not isinstance(delta, dict):
        return None
    for key in ("content", "reasoning_content", "reasoning"):
        value = delta.get(key)
        if value:
            return value if key == "content" else ""
    if delta.get("tool_calls") or delta.get("function_call"):
        return ""
    # A token may decode to "" (a special token); that delta has "content" and no role, unlike
    # the opening role chunk and the closing finish chunk (as vLLM's own client decides).
    if delta.get("content") == "" and "role" not in delta and choice.get("finish_reason") is None:
        return ""
    return None


def _completion_output(choice: dict[str, Any]) -> str | None:
    text = choice.get("text")
    if text:
        return text
    if text == "" and choice.get("finish_reason") is None:
        return ""
    return None


def interpret_events(events: Sequence[SSEEvent], api: Api) -> StreamResult:
    """Turn the events of one response into a StreamResult (pure: used on live and recorded streams)."""
    result = StreamResult()
    pieces: list[str] = []
    output_of = _chat_output if api == "chat" else _completion_output
    for event in events:
        result.events += 1
        data = event.data.strip()
        if data == "[DONE]":
            result.done_seen = True
            continue
        try:
            payload = json.loads(data)
        except json.JSONDecodeError:
            result.error = f"malformed event data: {data[:ERROR_TEXT_LIMIT]!r}"
            continue
        if not isinstance(payload, dict):
            result.error = f"unexpected event data: {data[:ERROR_TEXT_LIMIT]!r}"
            continue
        if payload.get("error"):
            error = payload["error"]
            message = error.get("message", error) if isinstance(error, dict) else error
            result.error = f"server error in stream: {str(message)[:ERROR_TEXT_LIMIT]}"
            continue
        if isinstance(payload.get("usage"), dict):
            result.usage = payload["usage"]
        for choice in payload.get("choices") or []:
            if not isinstance(choice, dict) or choice.get("index", 0) != 0:
                continue
            output = output_of(choice)
            if output is not None:
                result.output_times.append(event.t)
                pieces.append(output)
            if choice.get("finish_reason"):
                result.finish_reason = choice["finish_reason"]
    result.text = "".join(pieces)
    return result


@dataclass
class RequestResult:
    """One request as the client saw it. `send_perf` is time.perf_counter() at send."""

    send_perf: float
    status: int | None = None
    error: str | None = None
    stream: StreamResult = field(default_factory=StreamResult)
    end: float | None = None
    reads: int = 0
    raw: list[tuple[float, bytes]] | None = None

    @property
    def ok(self) -> bool:
        return self.error is None and self.stream.error is None and bool(self.stream.output_times)

    @property
    def failure(self) -> str | None:
        if self.error:
            return self.error
        if self.stream.error:
            return self.stream.error
        if not self.stream.output_times:
            return "the stream ended without any generated output"
        return None


async def stream_request(
    session: aiohttp.ClientSession,
    endpoint: Endpoint,
    body: dict[str, Any],
    record_raw: bool = False,
) -> RequestResult:
    """POST `body` with streaming and timestamp every read; never raises for HTTP or network errors."""
    clock = time.perf_counter
    send = clock()
    result = RequestResult(send_perf=send, raw=[] if record_raw else None)
    decoder = SSEDecoder()
    events: list[SSEEvent] = []
    try:
        async with session.post(endpoint.url, json=body, headers=endpoint.headers()) as response:
            result.status = response.status
            if response.status != 200:
                text = (await response.read()).decode("utf-8", errors="replace")
                result.error = f"HTTP {response.status}: {text[:ERROR_TEXT_LIMIT]}"
                result.end = clock() - send
                return result
            async for chunk in response.content.iter_any():
                t = clock() - send
                result.reads += 1
                if result.raw is not None:
                    result.raw.append((t, chunk))
                events.extend(decoder.feed(chunk, t))
            result.end = clock() - send
            events.extend(decoder.close(result.end))
    except (TimeoutError, aiohttp.ClientError) as error:
        # aiohttp's timeouts carry no message: the type name says what happened.
        result.error = f"{type(error).__name__}: {error}".rstrip(": ")[:ERROR_TEXT_LIMIT]
        result.end = clock() - send
    result.stream = interpret_events(events, endpoint.api)
    return result


def replay(reads: Sequence[tuple[float, bytes]], api: Api) -> StreamResult:
    """Interpret recorded reads (arrival time, bytes) exactly as a live stream is interpreted."""
    decoder = SSEDecoder()
    events: list[SSEEvent] = []
    for t, chunk in reads:
        events.extend(decoder.feed(chunk, t))
    events.extend(decoder.close(reads[-1][0] if reads else 0.0))
    return interpret_events(events, api)
