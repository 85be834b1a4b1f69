"""Timed requests to an OpenAI-compatible server (streamed chat and completions, embeddings), with aiohttp.

Every network read is timestamped on arrival; the stream is then interpreted into the moments
that matter (first and last output chunk, usage, finish reason). Times are seconds after the
request was handed to the HTTP client ("send").

aiohttp (the transport of vLLM's own benchmark client) rather than httpx: its C HTTP parser costs
about a third of the CPU time a streamed event costs through httpx, and the client's own time is
what inflates TTFT and ITL when many streams deliver at once (docs/benchmarks.md).
"""

from __future__ import annotations

import base64
import binascii
import json
import ssl
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import aiohttp
import numpy as np

from aimachine.bench.sse import SSEDecoder, SSEEvent

Api = Literal["chat", "completions", "embeddings"]
PATHS: dict[str, str] = {
    "chat": "/v1/chat/completions",
    "completions": "/v1/completions",
    "embeddings": "/v1/embeddings",
}
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
        headers = {"Accept": "application/json" if self.api == "embeddings" else "text/event-stream"}
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
    inputs: Sequence[str] | None = None,
    encoding_format: str = "float",
) -> dict[str, Any]:
    """Request body; `ignore_eos` is a vLLM extension, sent only when asked (other servers reject it)."""
    if endpoint.api == "embeddings":
        return {
            "model": endpoint.model,
            "input": list(inputs) if inputs else [prompt],
            "encoding_format": encoding_format,
        } | (extra or {})
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
class EmbeddingResult:
    """What an /v1/embeddings answer held, checked (one finite vector an input, one dimension); not kept."""

    vectors: int = 0
    dimension: int | None = None
    usage: dict[str, Any] | None = None
    error: str | None = None


def _vector_length(value: Any, encoding_format: str) -> int:
    """Dimension of one embedding as sent (a list of numbers, or base64 of little-endian float32)."""
    if encoding_format == "base64":
        if not isinstance(value, str):
            raise ValueError(f"expected a base64 string, got {type(value).__name__}")
        try:
            raw = base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError):
            raise ValueError("not valid base64") from None
        if len(raw) % 4:
            raise ValueError(f"{len(raw)} bytes is not a whole number of float32 values")
        vector = np.frombuffer(raw, dtype="<f4")
    else:
        # numpy converts and checks the whole list in C; only the first item's type is checked here.
        if not isinstance(value, list) or (value and not isinstance(value[0], int | float)):
            raise ValueError("expected a list of numbers")
        try:
            vector = np.asarray(value, dtype=float)
        except (TypeError, ValueError):
            raise ValueError("expected a list of numbers") from None
        if vector.ndim != 1:
            raise ValueError("expected a flat list of numbers")
    if not vector.size or not np.isfinite(vector).all():
        raise ValueError("empty, or not finite numbers")
    return int(vector.size)


def interpret_embeddings(payload: Any, inputs: int, encoding_format: str) -> EmbeddingResult:
    """Check an embeddings answer against what was asked (pure: used on live and recorded bodies)."""
    result = EmbeddingResult()
    if not isinstance(payload, dict) or not isinstance(payload.get("data"), list):
        result.error = f"not an embeddings answer: {str(payload)[:ERROR_TEXT_LIMIT]}"
        return result
    if isinstance(payload.get("usage"), dict):
        result.usage = payload["usage"]
    data = payload["data"]
    if len(data) != inputs:
        result.error = f"{len(data)} embeddings for {inputs} inputs"
        return result
    dimensions = set()
    indexes = set()
    for position, item in enumerate(data):
        try:
            if not isinstance(item, dict):
                raise ValueError("not an object")
            indexes.add(item.get("index", position))
            dimensions.add(_vector_length(item.get("embedding"), encoding_format))
        except ValueError as error:
            result.error = f"embedding {position} ({encoding_format}): {error}"
            return result
    if indexes != set(range(inputs)):
        result.error = f"embedding indexes {sorted(indexes)[:10]} are not 0..{inputs - 1}"
    elif len(dimensions) != 1:
        result.error = f"embeddings of different dimensions {sorted(dimensions)}"
    else:
        result.vectors, result.dimension = inputs, dimensions.pop()
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
    embedding: EmbeddingResult | None = None  # set for /v1/embeddings (not streamed)

    @property
    def ok(self) -> bool:
        if self.embedding is not None:
            return self.error is None and self.embedding.error is None
        return self.error is None and self.stream.error is None and bool(self.stream.output_times)

    @property
    def failure(self) -> str | None:
        if self.error:
            return self.error
        if self.embedding is not None:
            return self.embedding.error
        if self.stream.error:
            return self.stream.error
        if not self.stream.output_times:
            return "the stream ended without any generated output"
        return None


def _begin(record_raw: bool) -> RequestResult:
    """A request's result, sent now (time.perf_counter())."""
    return RequestResult(send_perf=time.perf_counter(), raw=[] if record_raw else None)


def _http_error(status: int, data: bytes) -> str:
    return f"HTTP {status}: {data.decode('utf-8', errors='replace')[:ERROR_TEXT_LIMIT]}"


def _network_error(error: Exception) -> str:
    # aiohttp's timeouts carry no message: the type name says what happened.
    return f"{type(error).__name__}: {error}".rstrip(": ")[:ERROR_TEXT_LIMIT]


async def stream_request(
    session: aiohttp.ClientSession, endpoint: Endpoint, body: dict[str, Any], record_raw: bool = False
) -> RequestResult:
    """POST `body` with streaming and timestamp every read; never raises for HTTP or network errors."""
    clock = time.perf_counter
    result = _begin(record_raw)
    send = result.send_perf
    decoder = SSEDecoder()
    events: list[SSEEvent] = []
    try:
        async with session.post(endpoint.url, json=body, headers=endpoint.headers()) as response:
            result.status = response.status
            if response.status != 200:
                result.error = _http_error(response.status, await response.read())
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
        result.error = _network_error(error)
        result.end = clock() - send
    result.stream = interpret_events(events, endpoint.api)
    return result


async def embed_request(
    session: aiohttp.ClientSession, endpoint: Endpoint, body: dict[str, Any], record_raw: bool = False
) -> RequestResult:
    """POST an embeddings body; the latency ends with the last byte of the answer (checked after)."""
    result = _begin(record_raw)
    try:
        async with session.post(endpoint.url, json=body, headers=endpoint.headers()) as response:
            result.status = response.status
            data = await response.read()
            result.end = time.perf_counter() - result.send_perf
    except (TimeoutError, aiohttp.ClientError) as error:
        result.error = _network_error(error)
        result.end = time.perf_counter() - result.send_perf
        return result
    result.reads = 1
    if result.raw is not None:
        result.raw.append((result.end, data))
    if result.status != 200:
        result.error = _http_error(result.status, data)
        return result
    try:
        payload = json.loads(data)
    except ValueError:
        result.error = f"the answer is not JSON: {data[:ERROR_TEXT_LIMIT]!r}"
        return result
    result.embedding = interpret_embeddings(
        payload, len(body.get("input") or []), str(body.get("encoding_format", "float"))
    )
    return result


def replay(reads: Sequence[tuple[float, bytes]], api: Api) -> StreamResult:
    """Interpret recorded reads (arrival time, bytes) exactly as a live stream is interpreted."""
    decoder = SSEDecoder()
    events: list[SSEEvent] = []
    for t, chunk in reads:
        events.extend(decoder.feed(chunk, t))
    events.extend(decoder.close(reads[-1][0] if reads else 0.0))
    return interpret_events(events, api)
