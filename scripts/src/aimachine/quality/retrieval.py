"""The retrieval suite (issue #16.6): a small, deterministic code-search sanity check for an
embeddings model on `/v1/embeddings`.

Queries are HumanEval's docstrings (what a user asks for), documents the canonical functions with
that docstring removed (signature and body: the code that answers). Every query is ranked against
every document by cosine similarity; recall@1, recall@5 and MRR are reported next to what chance
gives, with the embedding throughput of the run (texts/s). Ties rank the right document last, so a
model that answers one vector for everything scores worst (every right document at rank n), never
as perfect. With few queries (`--limit`) the sanity bar, 10x chance, asks for more: with 10 or
fewer, every query right.
"""

from __future__ import annotations

import ast
import base64
import time
from dataclasses import dataclass, field

import httpx
import numpy as np

from aimachine.quality.client import EndpointError
from aimachine.quality.datasets import Problem
from aimachine.quality.runner import SuiteRun

SUITE = "retrieval"
DEFAULT_BATCH = 16
TOP = 5
# The sanity bar: recall@1 at least this many times chance (1 / documents). The tiny random model
# of the tests clears it by far; a broken deployment (one vector for all, wrong pooling) does not.
SANITY_FACTOR = 10.0


@dataclass
class RetrievalRun(SuiteRun):
    embedding: dict[str, object] = field(default_factory=dict)


@dataclass(frozen=True)
class Pair:
    task_id: str
    query: str
    document: str


def _docstring_node(problem: Problem) -> ast.Expr | None:
    tree = ast.parse(problem.context)
    for node in tree.body:
        if isinstance(node, ast.FunctionDef) and node.name == problem.entry_point:
            first = node.body[0] if node.body else None
            if (
                isinstance(first, ast.Expr)
                and isinstance(first.value, ast.Constant)
                and isinstance(first.value.value, str)
            ):
                return first
    return None


def pair(problem: Problem) -> Pair | None:
    """(docstring, the function without it) for a HumanEval problem; None without a docstring."""
    node = _docstring_node(problem)
    if node is None or node.end_lineno is None:
        return None
    doc = ast.literal_eval(node.value)
    query = "\n".join(line.strip() for line in str(doc).strip().splitlines())
    lines = problem.canonical.splitlines(keepends=True)
    code = "".join(lines[: node.lineno - 1] + lines[node.end_lineno :])
    return Pair(problem.task_id, query, code)


def pairs(problems: list[Problem]) -> list[Pair]:
    return [p for p in map(pair, problems) if p is not None]


def _vectors(answer: object, count: int, url: str) -> tuple[list[list[float]], int | None]:
    data = answer.get("data") if isinstance(answer, dict) else None
    if not isinstance(data, list) or len(data) != count:
        raise EndpointError(f"{url}: expected {count} embeddings, got {str(answer)[:200]}")
    out: list[list[float]] = [[] for _ in range(count)]
    for item in data:
        index, vector = item.get("index"), item.get("embedding")
        if isinstance(vector, str):  # base64 float32, should a server send it anyway
            vector = np.frombuffer(base64.b64decode(vector), "<f4").tolist()
        if not isinstance(index, int) or not 0 <= index < count or not isinstance(vector, list):
            raise EndpointError(f"{url}: malformed embedding entry {str(item)[:200]}")
        out[index] = vector
    usage = answer.get("usage") if isinstance(answer, dict) else None
    tokens = usage.get("prompt_tokens") if isinstance(usage, dict) else None
    return out, tokens if isinstance(tokens, int) else None


async def embed(
    client: httpx.AsyncClient, root: str, model: str | None, texts: list[str], batch: int
) -> tuple[np.ndarray, dict[str, object]]:
    """Embed `texts` in batches (one request at a time); the matrix and the throughput."""
    url = f"{root}/embeddings"
    vectors: list[list[float]] = []
    tokens: int | None = 0
    start = time.perf_counter()
    for i in range(0, len(texts), batch):
        chunk = texts[i : i + batch]
        payload = {"model": model, "input": chunk, "encoding_format": "float"}
        try:
            response = await client.post(url, json=payload)
        except httpx.HTTPError as error:
            raise EndpointError(f"POST {url} failed: {type(error).__name__}: {error}") from error
        if response.status_code != 200:
            raise EndpointError(f"POST {url} failed: HTTP {response.status_code}: {response.text[:300]}")
        got, used = _vectors(response.json(), len(chunk), url)
        vectors += got
        tokens = None if tokens is None or used is None else tokens + used
    wall = time.perf_counter() - start
    if len({len(v) for v in vectors}) != 1:
        raise EndpointError(f"{url}: embeddings of different dimensions")
    matrix = np.asarray(vectors, dtype=np.float64)
    if not np.isfinite(matrix).all():
        raise EndpointError(f"{url}: embeddings hold non-finite values")
    stats = {
        "texts": len(texts),
        "requests": (len(texts) + batch - 1) // batch,
        "batch_size": batch,
        "dimensions": int(matrix.shape[1]),
        "embed_wall_s": round(wall, 3),
        "texts_per_s": round(len(texts) / wall, 2) if wall > 0 else None,
        "prompt_tokens": tokens,
        "tokens_per_s": round(tokens / wall, 1) if tokens and wall > 0 else None,
    }
    return matrix, stats


def ranks(queries: np.ndarray, documents: np.ndarray) -> tuple[list[int], np.ndarray]:
    """1-based rank of document i for query i by cosine (ties count against it), and the similarities."""

    def unit(m: np.ndarray) -> np.ndarray:
        norm = np.linalg.norm(m, axis=1, keepdims=True)
        return m / np.where(norm == 0, 1.0, norm)

    sims = unit(queries) @ unit(documents).T
    right = np.diag(sims)
    # Rank = documents scoring at least as high as the right one (itself included).
    return [int(r) for r in (sims >= right[:, None] - 1e-12).sum(axis=1)], sims


def chance(documents: int) -> dict[str, float]:
    """Expected scores of a random ranking of `documents`."""
    harmonic = sum(1.0 / k for k in range(1, documents + 1))
    return {
        "recall@1": round(1 / documents, 4),
        "recall@5": round(min(TOP, documents) / documents, 4),
        "mrr": round(harmonic / documents, 4),
    }


async def run_retrieval(
    problems: list[Problem],
    *,
    root: str,
    model: str | None,
    api_key: str | None,
    batch: int = DEFAULT_BATCH,
    timeout_s: float = 600.0,
) -> RetrievalRun:
    items = pairs(problems)
    if len(items) < 2:
        raise EndpointError(f"retrieval needs at least 2 queries, the selection has {len(items)}")
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    start = time.monotonic()
    async with httpx.AsyncClient(headers=headers, timeout=httpx.Timeout(timeout_s, connect=10.0)) as client:
        # Queries and documents in one stream of requests: the throughput covers both kinds.
        matrix, stats = await embed(
            client, root, model, [p.query for p in items] + [p.document for p in items], batch
        )
    rank, sims = ranks(matrix[: len(items)], matrix[len(items) :])
    records: list[dict[str, object]] = []
    for i, (item, r) in enumerate(zip(items, rank, strict=True)):
        top = np.argsort(-sims[i], kind="stable")[:TOP]
        records.append(
            {
                "suite": SUITE,
                "id": item.task_id,
                "sample": 0,
                "rank": r,
                "verdict": "passed" if r == 1 else "failed",
                "error_kind": None if r == 1 else "rank",
                "top": [items[j].task_id for j in top],
                "similarity": round(float(sims[i, i]), 4),
            }
        )
    return RetrievalRun(SUITE, records, time.monotonic() - start, stats)


def retrieval_summary(run: SuiteRun) -> dict[str, object]:
    """summary.json's `suites.retrieval` (report/models.py reads recall@1, mrr, queries)."""
    rank = [int(r["rank"]) for r in run.records]  # type: ignore[call-overload]
    n = len(rank)
    base = chance(n)
    r1 = sum(r == 1 for r in rank) / n
    summary: dict[str, object] = {
        "queries": n,
        "documents": n,
        "recall@1": round(r1, 4),
        "recall@1_stderr": round(float(np.sqrt(r1 * (1 - r1) / n)), 4),
        "recall@5": round(sum(r <= TOP for r in rank) / n, 4),
        "mrr": round(sum(1 / r for r in rank) / n, 4),
        "median_rank": float(np.median(rank)),
        "chance": base,
        "sanity": {
            "rule": f"recall@1 >= {SANITY_FACTOR:g} x chance",
            "threshold": round(min(1.0, SANITY_FACTOR * base["recall@1"]), 4),
            "passed": r1 >= min(1.0, SANITY_FACTOR * base["recall@1"]),
        },
        "embeddings": getattr(run, "embedding", None) or None,
        "wall_time_s": round(run.wall_s, 2),
        "references": [],
    }
    return summary
