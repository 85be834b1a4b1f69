"""The retrieval suite (issue #16.6): HumanEval docstrings ranked against the functions without them,
by cosine over /v1/embeddings, against the real CPU embeddings engine and the tiny embedding model
(texts sharing tokens get close vectors: it must score well above chance); the CLI's summary.json
is what the report's embedding section shows."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
from aimachine.quality import cli
from aimachine.quality.datasets import load_humaneval
from aimachine.quality.retrieval import SANITY_FACTOR, chance, pairs, ranks
from aimachine.report import doc, render
from aimachine.tinymodel import generate
from conftest import render_with_model, serve_embeddings

ROOT = Path(__file__).resolve().parents[2]
NAME = "tiny-embed"


def test_pairs_split_docstring_from_code() -> None:
    problems = load_humaneval()
    items = pairs(problems)
    # HumanEval/115's prompt has its docstring after an import: no pair for it.
    assert len(items) == 163 and "HumanEval/115" not in {p.task_id for p in items}
    by_id = {p.task_id: p for p in problems}
    for item in items:
        problem = by_id[item.task_id]
        first = item.query.splitlines()[0]
        assert first and first in problem.context and first not in item.document
        assert f"def {problem.entry_point}(" in item.document
        assert item.document.endswith(problem.canonical[len(problem.context) :])
    assert pairs(problems) == items


def test_ranks_count_ties_against_the_right_document() -> None:
    eye = np.eye(4)
    assert ranks(eye, eye)[0] == [1, 1, 1, 1]
    queries = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    documents = np.array([[0.5, 1.0], [0.0, 2.0], [3.0, 3.0]])  # cosine ignores the length
    assert ranks(queries, documents)[0] == [2, 1, 1]
    same = np.ones((4, 3))  # one vector for everything: last, not first
    assert ranks(same, same)[0] == [4, 4, 4, 4]
    assert chance(4) == {"recall@1": 0.25, "recall@5": 1.0, "mrr": round((1 + 1 / 2 + 1 / 3 + 1 / 4) / 4, 4)}


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    model_dir = generate(tmp_path_factory.mktemp("embed") / NAME, role="embed")
    log = tmp_path_factory.mktemp("embed-log") / "server.log"
    with serve_embeddings(model_dir, log, "--served-name", NAME) as url:
        yield url


@pytest.fixture(scope="module")
def run(engine: str, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict, list[dict]]:
    out = tmp_path_factory.mktemp("retrieval") / "quality"
    argv = ["--base-url", engine, "--model", NAME, "--suites", "retrieval", "--embed-batch-size", "32"]
    assert cli.main([*argv, "--no-plot", "--quiet", "--output", str(out)]) == 0
    summary = json.loads((out / "summary.json").read_text())
    samples = [json.loads(line) for line in (out / "samples.jsonl").read_text().splitlines()]
    return out, summary, samples


@pytest.mark.e2e
def test_retrieval_against_the_cpu_embeddings_engine(engine: str, run) -> None:
    _, summary, samples = run
    r = summary["suites"]["retrieval"]
    assert r["queries"] == r["documents"] == len(samples) == 163
    ranks_seen = [s["rank"] for s in samples]
    assert r["recall@1"] == round(sum(k == 1 for k in ranks_seen) / 163, 4)
    assert r["recall@5"] == round(sum(k <= 5 for k in ranks_seen) / 163, 4)
    assert r["mrr"] == round(sum(1 / k for k in ranks_seen) / 163, 4)
    # The tiny model clearly above chance, and the suite's own bar.
    assert r["recall@1"] >= SANITY_FACTOR * r["chance"]["recall@1"] and r["sanity"]["passed"] is True
    assert r["mrr"] > 3 * r["chance"]["mrr"]
    e = r["embeddings"]
    assert (e["texts"], e["requests"], e["batch_size"]) == (326, 11, 32)
    assert e["texts_per_s"] > 0 and e["prompt_tokens"] > 326 and e["dimensions"] > 0
    assert summary["settings"]["sandbox"] is None  # no code ran: no sandbox was opened
    # A ranking is the engine's: the first hit of a query is the document closest to it.
    first = samples[0]
    items = {p.task_id: p for p in pairs(load_humaneval())}
    texts = [items[first["id"]].query] + [items[t].document for t in first["top"][:2]]
    answer = httpx.post(f"{engine}/v1/embeddings", json={"model": NAME, "input": texts}, timeout=60).json()
    q, d1, d2 = (np.asarray(x["embedding"]) for x in answer["data"])
    cos = [float(q @ d / np.linalg.norm(q) / np.linalg.norm(d)) for d in (d1, d2)]
    assert cos[0] >= cos[1] - 1e-6
    if first["rank"] == 1:
        assert cos[0] == pytest.approx(first["similarity"], abs=1e-3)


@pytest.mark.e2e
def test_report_shows_the_retrieval_summary(run, tmp_path: Path) -> None:
    quality_dir, summary, _ = run
    report = render_with_model(tmp_path, NAME, "embed", quality_dir)
    r = summary["suites"]["retrieval"]
    e = next(m for m in report["models"] if m["role"] == "embed")["embed"]
    assert e["retrieval"]["queries"]["value"] == 163
    assert e["retrieval"]["recall_at_1"]["value"] == pytest.approx(100 * r["recall@1"])
    assert e["retrieval"]["recall_at_5"]["value"] == pytest.approx(100 * r["recall@5"])
    assert e["retrieval"]["mrr"]["value"] == r["mrr"]
    assert e["retrieval"]["texts_per_s"]["value"] == r["embeddings"]["texts_per_s"]
    assert e["result"]["score_percent"] == pytest.approx(100 * r["recall@1"])
    text = (tmp_path / "report" / "report.md").read_text()
    assert "Retrieval on the fixed code-search set: recall@1" in text
    assert "Sanity check (recall@1 >= 10 x chance): passed" in text
    assert doc.audit(render.render_blocks(report)) == []


@pytest.mark.e2e
def test_retrieval_refuses_canonical_solutions(tmp_path: Path) -> None:
    with pytest.raises(SystemExit, match="needs a model"):
        cli.main(["--solutions", "canonical", "--suites", "retrieval", "--output", str(tmp_path)])
