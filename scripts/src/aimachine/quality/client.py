"""A small asynchronous client for OpenAI-compatible chat and completion endpoints (vLLM, transformers)."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

from aimachine import endpoint

RETRY_STATUS = {429, 500, 502, 503, 504}
API_KEY_ENV = endpoint.API_KEY_ENV


class EndpointError(RuntimeError):
    """The endpoint refused or failed a request; the message carries status and the server's words."""


def read_api_key(path: Path | None, env_names: tuple[str, ...] = API_KEY_ENV) -> str | None:
    """The key from a file (first line) or the environment (aimachine.endpoint); never the command line."""
    try:
        return endpoint.read_api_key(path, env_names)
    except endpoint.KeyFileError as error:
        raise EndpointError(str(error)) from error


def api_root(base_url: str) -> str:
    """`http://host:port` or `http://host:port/v1` -> `http://host:port/v1`."""
    root = base_url.rstrip("/")
    if not root.startswith(("http://", "https://")):
        raise EndpointError(f"endpoint URL must start with http:// or https://, got {base_url!r}")
    return root if root.endswith("/v1") else root + "/v1"


@dataclass(frozen=True)
class Completion:
    text: str
    finish_reason: str | None
    prompt_tokens: int | None
    completion_tokens: int | None
    latency_s: float


class Endpoint:
    def __init__(
        self,
        base_url: str,
        model: str | None,
        api_key: str | None,
        timeout_s: float = 600.0,
        retries: int = 2,
    ) -> None:
        self.root = api_root(base_url)
        self.model = model
        self.retries = retries
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._client = httpx.AsyncClient(
            headers=headers,
            timeout=httpx.Timeout(timeout_s, connect=10.0),
            limits=httpx.Limits(max_connections=256),
        )

    async def __aenter__(self) -> Endpoint:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._client.aclose()

    async def _request(
        self, method: str, path: str, payload: dict[str, object] | None = None
    ) -> dict[str, object]:
        url = f"{self.root}{path}"
        last_error = ""
        for attempt in range(self.retries + 1):
            try:
                response = await self._client.request(method, url, json=payload)
            except httpx.TransportError as error:
                last_error = f"{type(error).__name__}: {error}"
            else:
                if response.status_code == 200:
                    try:
                        data = response.json()
                    except ValueError as error:
                        raise EndpointError(f"{url}: answer is not JSON: {response.text[:200]!r}") from error
                    if not isinstance(data, dict):
                        raise EndpointError(f"{url}: answer is not a JSON object")
                    return data
                last_error = f"HTTP {response.status_code}: {response.text[:300]}"
                if response.status_code not in RETRY_STATUS:
                    break
            if attempt < self.retries:
                await asyncio.sleep(1.0 * 2**attempt)
        raise EndpointError(f"{method} {url} failed: {last_error}")

    async def models(self) -> list[str]:
        data = await self._request("GET", "/models")
        entries = data.get("data")
        if not isinstance(entries, list):
            raise EndpointError(f"{self.root}/models: no 'data' list in the answer")
        return [str(entry["id"]) for entry in entries if isinstance(entry, dict) and "id" in entry]

    async def resolve_model(self) -> str:
        if self.model:
            return self.model
        names = await self.models()
        if not names:
            raise EndpointError(f"{self.root}/models lists no model: pass --model")
        self.model = names[0]
        return self.model

    def _payload(
        self,
        max_tokens: int,
        temperature: float,
        top_p: float | None,
        seed: int | None,
        stop: list[str] | None,
    ) -> dict[str, object]:
        payload: dict[str, object] = {
            "model": self.model,
            "max_tokens": max_tokens,
            "temperature": temperature,
        }
        if top_p is not None:
            payload["top_p"] = top_p
        if seed is not None:
            payload["seed"] = seed
        if stop:
            payload["stop"] = stop[:4]  # the OpenAI API accepts at most four
        return payload

    async def _generate(self, path: str, payload: dict[str, object], text_key: str) -> Completion:
        """POST to /`path` and read the first choice: its `text_key` (under "message" for chat)."""
        start = time.monotonic()
        data = await self._request("POST", f"/{path}", payload)
        choices = data.get("choices")
        if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
            raise EndpointError(f"{path}: answer has no choices: {str(data)[:200]}")
        choice = choices[0]
        holder = choice.get("message") if text_key == "content" else choice
        text = holder.get(text_key) if isinstance(holder, dict) else None
        usage = data.get("usage")
        usage = usage if isinstance(usage, dict) else {}
        return Completion(
            text=text if isinstance(text, str) else "",
            finish_reason=choice.get("finish_reason"),  # type: ignore[arg-type]
            prompt_tokens=usage.get("prompt_tokens"),
            completion_tokens=usage.get("completion_tokens"),
            latency_s=time.monotonic() - start,
        )

    async def chat(
        self,
        messages: list[dict[str, str]],
        *,
        max_tokens: int,
        temperature: float = 0.0,
        top_p: float | None = None,
        seed: int | None = None,
        stop: list[str] | None = None,
    ) -> Completion:
        payload = self._payload(max_tokens, temperature, top_p, seed, stop)
        payload["messages"] = messages
        return await self._generate("chat/completions", payload, "content")

    async def complete(
        self,
        prompt: str,
        *,
        max_tokens: int,
        temperature: float = 0.0,
        top_p: float | None = None,
        seed: int | None = None,
        stop: list[str] | None = None,
    ) -> Completion:
        payload = self._payload(max_tokens, temperature, top_p, seed, stop)
        payload["prompt"] = prompt
        return await self._generate("completions", payload, "text")
