"""A synthetic OpenAI-style SSE server: a LOAD GENERATOR, NOT A MODEL.

It answers /v1/models, /health, /v1/chat/completions and /v1/completions with a stream of
`max_tokens` placeholder tokens, as fast as it can or one event every --interval-ms, K tokens per
event (--tokens-per-event, a coalescing server), with a usage chunk and [DONE] as vLLM sends them;
and /v1/embeddings with one constant vector of --embedding-dim values an input, after
--first-delay-ms, as float lists or base64 float32 (vLLM's two JSON encodings).
It exists to measure the benchmark client itself: how many events a second it can take in
(its ceiling), and whether it times a stream of known pacing correctly. Plain asyncio, HTTP/1.1
keep-alive, chunked transfer encoding; no framework, so the server costs little CPU per event.

    python -m aimachine.bench.loadgen --port 18500            # then point aimachine-bench at it
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import signal
import struct
import sys
import threading
import time
from dataclasses import dataclass
from typing import Any

MODEL = "aimachine-loadgen"
_DRAIN_EVERY = 32  # events between flow-control waits: fast, yet bounded buffering


@dataclass(frozen=True)
class Pacing:
    interval_s: float = 0.0
    tokens_per_event: int = 1
    first_delay_s: float = 0.0
    embedding_dim: int = 1024


def _vector(dim: int, encoding: str) -> str:
    """One embedding as JSON text, built once: floats of a unit vector, or their float32 bytes in base64."""
    values = [1.0 / dim**0.5] * dim
    if encoding == "base64":
        return json.dumps(base64.b64encode(struct.pack(f"<{dim}f", *values)).decode())
    return json.dumps(values)


async def _embeddings(writer: asyncio.StreamWriter, body: dict[str, Any], pacing: Pacing) -> None:
    inputs = body.get("input")
    inputs = [inputs] if isinstance(inputs, str) else inputs
    encoding = body.get("encoding_format", "float")
    if not isinstance(inputs, list) or not inputs or encoding not in ("float", "base64"):
        await _respond_json(
            writer, "400 Bad Request", {"error": "input must be a list; encoding float|base64"}
        )
        return
    if pacing.first_delay_s:
        await asyncio.sleep(pacing.first_delay_s)
    vector = _VECTORS.setdefault((pacing.embedding_dim, encoding), _vector(pacing.embedding_dim, encoding))
    tokens = sum(len(str(text).split()) for text in inputs)
    items = ",".join(f'{{"index":{i},"object":"embedding","embedding":{vector}}}' for i in range(len(inputs)))
    data = (
        f'{{"object":"list","model":"{MODEL}","data":[{items}],'
        f'"usage":{{"prompt_tokens":{tokens},"total_tokens":{tokens}}}}}'
    ).encode()
    writer.write(
        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n" % len(data) + data
    )
    await writer.drain()


_VECTORS: dict[tuple[int, str], str] = {}


def _chunk(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data)


def _event(payload: dict[str, Any] | str) -> bytes:
    text = payload if isinstance(payload, str) else json.dumps(payload, separators=(",", ":"))
    return _chunk(b"data: " + text.encode() + b"\n\n")


def _choice(chat: bool, tokens: int, finish: str | None) -> dict[str, Any]:
    piece = " tok" * tokens
    choice: dict[str, Any] = (
        {"index": 0, "delta": {"content": piece}} if chat else {"index": 0, "text": piece}
    )
    if finish:
        choice["finish_reason"] = finish
    return choice


async def _respond_json(writer: asyncio.StreamWriter, status: str, body: dict[str, Any]) -> None:
    data = json.dumps(body).encode()
    writer.write(
        b"HTTP/1.1 " + status.encode() + b"\r\nContent-Type: application/json\r\n"
        b"Content-Length: %d\r\n\r\n" % len(data) + data
    )
    await writer.drain()


async def _stream(writer: asyncio.StreamWriter, path: str, body: dict[str, Any], pacing: Pacing) -> None:
    tokens = int(body.get("max_tokens") or body.get("max_completion_tokens") or 128)
    chat = path.endswith("/chat/completions")
    rid = f"loadgen-{time.monotonic_ns()}"
    base = {"id": rid, "object": "chat.completion.chunk" if chat else "text_completion", "model": MODEL}
    writer.write(
        b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n"
    )
    if pacing.first_delay_s:
        await asyncio.sleep(pacing.first_delay_s)
    if chat:
        writer.write(
            _event(base | {"choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}}]})
        )
    k = pacing.tokens_per_event
    full, last = divmod(tokens, k)
    # Every event but the last is the same bytes: built once, so the server spends little per event.
    middle = _event(base | {"choices": [_choice(chat, k, None)]})
    count = full if last else full - 1
    next_at = time.perf_counter()
    for index in range(count + 1):
        writer.write(
            middle if index < count else _event(base | {"choices": [_choice(chat, last or k, "length")]})
        )
        if pacing.interval_s:
            await writer.drain()
            next_at += pacing.interval_s
            delay = next_at - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
        elif index % _DRAIN_EVERY == 0:
            await writer.drain()
    prompt_tokens = len(str(body.get("messages") or body.get("prompt") or "").split())
    usage = {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": tokens,
        "total_tokens": prompt_tokens + tokens,
    }
    writer.write(_event(base | {"choices": [], "usage": usage}))
    writer.write(_event("[DONE]"))
    writer.write(b"0\r\n\r\n")
    await writer.drain()


async def _handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, pacing: Pacing) -> None:
    try:
        while True:
            try:
                head = await reader.readuntil(b"\r\n\r\n")
            except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
                return
            lines = head.decode("latin-1").split("\r\n")
            method, path, _ = [*lines[0].split(" "), "", "", ""][:3]
            headers = {k.strip().lower(): v.strip() for k, _, v in (x.partition(":") for x in lines[1:] if x)}
            raw = await reader.readexactly(int(headers.get("content-length", "0") or 0))
            if method == "GET" and path == "/v1/models":
                await _respond_json(
                    writer,
                    "200 OK",
                    {
                        "object": "list",
                        "data": [
                            {
                                "id": MODEL,
                                "object": "model",
                                "owned_by": "aimachine-loadgen (synthetic, not a model)",
                            }
                        ],
                    },
                )
            elif method == "GET" and path == "/health":
                await _respond_json(writer, "200 OK", {"status": "ok"})
            elif method == "POST" and path in ("/v1/chat/completions", "/v1/completions"):
                try:
                    body = json.loads(raw or b"{}")
                except json.JSONDecodeError:
                    await _respond_json(writer, "400 Bad Request", {"error": "body is not JSON"})
                    continue
                await _stream(writer, path, body, pacing)
            elif method == "POST" and path == "/v1/embeddings":
                try:
                    body = json.loads(raw or b"{}")
                except json.JSONDecodeError:
                    await _respond_json(writer, "400 Bad Request", {"error": "body is not JSON"})
                    continue
                await _embeddings(writer, body, pacing)
            else:
                await _respond_json(writer, "404 Not Found", {"error": f"no route {method} {path}"})
    except ConnectionError:
        return
    finally:
        writer.close()


async def serve(
    host: str,
    port: int,
    pacing: Pacing,
    *,
    ready: asyncio.Event | None = None,
    stop: asyncio.Event | None = None,
    reuse_port: bool = False,
) -> None:
    server = await asyncio.start_server(lambda r, w: _handle(r, w, pacing), host, port, reuse_port=reuse_port)
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
    async with server:
        if ready is not None:
            ready.set()
        print(
            f"aimachine loadgen (synthetic SSE, not a model) on http://{host}:{port}",
            file=sys.stderr,
            flush=True,
        )
        await stop.wait()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m aimachine.bench.loadgen", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=18500)
    parser.add_argument(
        "--interval-ms", type=float, default=0.0, help="time between events (0: as fast as possible)"
    )
    parser.add_argument(
        "--first-delay-ms", type=float, default=0.0, help="wait before the first output event"
    )
    parser.add_argument(
        "--tokens-per-event", type=int, default=1, help="tokens in one event (>1: coalescing)"
    )
    parser.add_argument(
        "--reuse-port", action="store_true", help="share the port with more load generators (one a core)"
    )
    parser.add_argument(
        "--embedding-dim", type=int, default=1024, help="values in each /v1/embeddings vector"
    )
    args = parser.parse_args(argv)
    if args.tokens_per_event < 1 or args.interval_ms < 0 or args.first_delay_ms < 0 or args.embedding_dim < 1:
        parser.error("--tokens-per-event and --embedding-dim must be >= 1 and the delays >= 0")
    pacing = Pacing(
        args.interval_ms / 1000.0, args.tokens_per_event, args.first_delay_ms / 1000.0, args.embedding_dim
    )
    asyncio.run(serve(args.host, args.port, pacing, reuse_port=args.reuse_port))
    return 0


if __name__ == "__main__":
    sys.exit(main())
