"""Run by the pinned vLLM's Python (tests/unit/test_llm_watchdog.py): each watchdog probe is a
request one of vLLM's API routers serves, valid for its own request model, and what the watchdog
reads from a 200 is there in vLLM's own response model (and missing from an empty one).

Usage: python vllm_probe_check.py DIR_WITH_llm_watchdog.py; prints one line a probe, exit 1 on a miss.
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import sys

sys.path.insert(0, sys.argv[1])
import llm_watchdog
import vllm.entrypoints
from pydantic import TypeAdapter, ValidationError
from vllm.entrypoints.openai.completion import protocol as completion
from vllm.entrypoints.pooling.embed import protocol as embed
from vllm.entrypoints.pooling.scoring import protocol as scoring


def answer(kind: str, items: int):
    """What vLLM answers a probe with: the smallest valid instance of its response model, with one
    item (a choice, a vector, a ranking) or none."""
    usage = completion.UsageInfo(prompt_tokens=1, completion_tokens=1, total_tokens=2)
    if kind == "completions":
        choice = completion.CompletionResponseChoice(index=0, text="k", logprobs=None, finish_reason="length")
        return completion.CompletionResponse(model="m", usage=usage, choices=[choice][:items])
    if kind == "embeddings":
        vector = embed.EmbeddingResponseData(index=0, embedding=[0.5])
        return embed.EmbeddingResponse(model="m", usage=usage, data=[vector][:items])
    ranked = scoring.RerankResult(index=0, document=scoring.RerankDocument(text="ok"), relevance_score=0.5)
    usage = scoring.RerankUsage(prompt_tokens=2, total_tokens=2)
    return scoring.RerankResponse(id="r", model="m", usage=usage, results=[ranked][:items])


def post_routes() -> dict[str, list]:
    routes: dict[str, list] = {}
    for info in pkgutil.walk_packages(vllm.entrypoints.__path__, "vllm.entrypoints."):
        if not info.name.endswith(".api_router"):
            continue
        router = getattr(importlib.import_module(info.name), "router", None)
        for route in getattr(router, "routes", []):
            if "POST" in getattr(route, "methods", ()):
                routes.setdefault(route.path, []).append(route.endpoint)
    return routes


def main() -> int:
    routes, missed = post_routes(), 0
    for kind, (path, body, *_) in llm_watchdog.PROBES.items():
        takes = []
        for endpoint in routes.get(path, []):
            annotation = inspect.signature(endpoint).parameters["request"].annotation
            try:
                takes.append(type(TypeAdapter(annotation).validate_python({"model": "m", **body})).__name__)
            except ValidationError as error:
                print(f"{kind}: {path} refuses the probe: {error}", file=sys.stderr)
        read = llm_watchdog.answered(kind, answer(kind, 1).model_dump_json().encode())
        empty = llm_watchdog.answered(kind, answer(kind, 0).model_dump_json().encode())
        ok = bool(takes) and read and not empty
        missed += not ok
        print(f"{kind}: POST {path} -> {', '.join(takes) or 'no vLLM route takes it'}; "
              f"answer read {read}, empty answer read {empty}: {'ok' if ok else 'MISSED'}")  # fmt: skip
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
