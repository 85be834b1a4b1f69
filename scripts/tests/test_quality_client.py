"""The OpenAI-compatible client against a small HTTP server started by the test.

The server answers in the OpenAI response shape and can fail on purpose (503 once, 400), to check
what the client sends (key, stop sequences) and how it retries and reports; the real servers are
exercised in test_quality_e2e.py.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from aimachine.quality.client import Endpoint, EndpointError, api_root, read_api_key


class _Handler(BaseHTTPRequestHandler):
    requests: list[dict[str, object]]
    failures_left: int

    def log_message(self, *args: object) -> None:
        pass

    def _reply(self, status: int, body: dict[str, object]) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        self.server.seen.append({"path": self.path, "auth": self.headers.get("Authorization")})  # type: ignore[attr-defined]
        self._reply(200, {"object": "list", "data": [{"id": "model-a"}, {"id": "model-b"}]})

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self.server.seen.append({"path": self.path, "auth": self.headers.get("Authorization"), "body": body})  # type: ignore[attr-defined]
        if body.get("prompt") == "bad":
            self._reply(400, {"error": {"message": "prompt rejected"}})
        elif self.server.failures_left > 0:  # type: ignore[attr-defined]
            self.server.failures_left -= 1  # type: ignore[attr-defined]
            self._reply(503, {"error": "busy"})
        elif self.path.endswith("/chat/completions"):
            self._reply(200, {"choices": [{"message": {"role": "assistant", "content": "hello"},
                                           "finish_reason": "stop"}],
                              "usage": {"prompt_tokens": 5, "completion_tokens": 1}})  # fmt: skip
        else:
            self._reply(200, {"choices": [{"text": "    return 1\n", "finish_reason": "length"}]})


@pytest.fixture
def server() -> Iterator[ThreadingHTTPServer]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    httpd.seen = []  # type: ignore[attr-defined]
    httpd.failures_left = 0  # type: ignore[attr-defined]
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield httpd
    httpd.shutdown()
    httpd.server_close()


def _url(server: ThreadingHTTPServer) -> str:
    return f"http://127.0.0.1:{server.server_address[1]}"


def test_key_model_and_chat(server: ThreadingHTTPServer) -> None:
    async def go() -> tuple[str, object]:
        async with Endpoint(_url(server), None, "secret-key") as endpoint:
            model = await endpoint.resolve_model()
            reply = await endpoint.chat([{"role": "user", "content": "hi"}], max_tokens=8, seed=3)
            return model, reply

    model, reply = asyncio.run(go())
    assert model == "model-a"
    assert reply.text == "hello" and reply.finish_reason == "stop" and reply.completion_tokens == 1  # type: ignore[attr-defined]
    seen = server.seen  # type: ignore[attr-defined]
    assert [s["auth"] for s in seen] == ["Bearer secret-key"] * 2
    assert seen[1]["body"] == {
        "model": "model-a", "max_tokens": 8, "temperature": 0.0, "seed": 3,
        "messages": [{"role": "user", "content": "hi"}],
    }  # fmt: skip


def test_completion_trims_stop_list_and_retries_busy_server(server: ThreadingHTTPServer) -> None:
    server.failures_left = 1  # type: ignore[attr-defined]

    async def go() -> object:
        async with Endpoint(_url(server) + "/v1/", "m", None) as endpoint:
            return await endpoint.complete(
                "def f():\n", max_tokens=4, stop=["\ndef", "\nclass", "\nif", "\n#", "\nprint"]
            )

    reply = asyncio.run(go())
    assert reply.text == "    return 1\n" and reply.prompt_tokens is None  # type: ignore[attr-defined]
    seen = server.seen  # type: ignore[attr-defined]
    assert len(seen) == 2 and seen[0]["auth"] is None  # one 503, then the retry
    assert seen[1]["body"]["stop"] == ["\ndef", "\nclass", "\nif", "\n#"]


def test_client_errors_are_reported_with_the_servers_words(server: ThreadingHTTPServer) -> None:
    async def go() -> None:
        async with Endpoint(_url(server), "m", None) as endpoint:
            await endpoint.complete("bad", max_tokens=4)

    with pytest.raises(EndpointError, match=r"HTTP 400.*prompt rejected"):
        asyncio.run(go())
    assert len(server.seen) == 1  # type: ignore[attr-defined] # a 400 is not retried


def test_api_key_sources(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AIMACHINE_API_KEY", raising=False)
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    assert read_api_key(None) is None
    monkeypatch.setenv("OPENAI_API_KEY", "from-openai-env")
    assert read_api_key(None) == "from-openai-env"
    monkeypatch.setenv("AIMACHINE_API_KEY", "from-env")
    assert read_api_key(None) == "from-env"
    key_file = tmp_path / "key"
    key_file.write_text("from-file\nsecond line ignored\n")
    assert read_api_key(key_file) == "from-file"
    key_file.write_text("\n")
    with pytest.raises(EndpointError, match="is empty"):
        read_api_key(key_file)
    with pytest.raises(EndpointError, match="cannot read API key file"):
        read_api_key(tmp_path / "missing")


def test_api_root() -> None:
    assert api_root("http://h:8000") == "http://h:8000/v1"
    assert api_root("https://h/v1/") == "https://h/v1"
    with pytest.raises(EndpointError, match="must start with http"):
        api_root("h:8000")
