"""The autocomplete (fim) and embeddings workloads (issue #16.6): prompts cut from real code, the
embeddings answer checked as vLLM sends it, and both run against real HTTP servers."""

from __future__ import annotations

import base64
import json
import struct
from pathlib import Path

import numpy as np
import pytest
from aimachine.bench.cli import main
from aimachine.bench.client import interpret_embeddings
from aimachine.bench.workloads import FimTokens, embedding_batches, fim_prompts, human_eval_code
from aimachine.tinymodel import generate
from conftest import serve_embeddings
from test_bench_client import loadgen

# --- prompts ------------------------------------------------------------------------------------


def _split(text: str, tokens: FimTokens) -> tuple[str, str]:
    assert text.startswith(tokens.prefix) and text.endswith(tokens.middle)
    before, after = text[len(tokens.prefix) : -len(tokens.middle)].split(tokens.suffix)
    return before, after


def test_fim_holes_are_cut_inside_the_canonical_solution() -> None:
    code = {task: (text, body) for task, text, body in human_eval_code()}
    assert len(code) == 164
    prompts = fim_prompts(200, seed=7, tokens=FimTokens())
    assert prompts == fim_prompts(200, seed=7, tokens=FimTokens())  # deterministic for a seed
    holes = []
    for prompt in prompts:
        task = prompt.source.removeprefix("fim:")
        text, body_start = code[task]
        before, after = _split(prompt.text, FimTokens())
        assert text.startswith(before) and text.endswith(after)
        hole = text[len(before) : len(text) - len(after)]
        # The cursor is in the solution, after a line's indentation, and the hole ends a line.
        assert len(before) >= body_start and hole.strip()
        typed = before.rsplit("\n", 1)[-1]
        line = typed + hole.split("\n", 1)[0]
        assert len(typed) >= len(line) - len(line.lstrip()) and len(typed) < len(line)
        assert after == "" or after.startswith(("\n", "\r"))
        holes.append(len([part for part in hole.split("\n") if part.strip()]))
    assert set(holes) == {1, 2, 3}  # one to three lines with code on them (blank ones between)
    assert fim_prompts(3, seed=8, tokens=FimTokens())[0].source != prompts[0].source


def test_fim_markers_are_the_models() -> None:
    tokens = FimTokens("<fim_prefix>", "<fim_suffix>", "<fim_middle>")  # StarCoder's spelling
    text = fim_prompts(1, 0, tokens)[0].text
    assert text.startswith("<fim_prefix>") and "<|fim" not in text


def test_embedding_batches_cycle_through_the_snippets() -> None:
    batches = embedding_batches(12, 16, offset=3)
    assert all(len(b.inputs) == 16 for b in batches)
    flat = [text for b in batches for text in b.inputs]
    code = [text for _, text, _ in human_eval_code()]
    assert flat[0] == code[3] and flat[160] == code[(3 + 160) % 164] and flat[161] == code[0]
    assert batches[0].source == "embed:HumanEval/3+15"


# --- the embeddings answer, as vLLM encodes it ----------------------------------------------------


def _answer(vectors: list[list[float]], encoding: str = "float", **extra) -> dict:
    def enc(v: list[float]):
        return base64.b64encode(struct.pack(f"<{len(v)}f", *v)).decode() if encoding == "base64" else v

    data = [{"index": i, "object": "embedding", "embedding": enc(v)} for i, v in enumerate(vectors)]
    return {"object": "list", "data": data, "usage": {"prompt_tokens": 7, "total_tokens": 7}} | extra


def test_embeddings_float_and_base64_answers_are_checked() -> None:
    vectors = np.random.default_rng(0).normal(size=(3, 8)).tolist()
    for encoding in ("float", "base64"):
        result = interpret_embeddings(_answer(vectors, encoding), 3, encoding)
        assert (result.error, result.vectors, result.dimension) == (None, 3, 8)
        assert result.usage["prompt_tokens"] == 7
    # vLLM's base64 is float32 little-endian: the bytes decode back to the values.
    raw = base64.b64decode(_answer(vectors, "base64")["data"][1]["embedding"])
    assert np.frombuffer(raw, "<f4") == pytest.approx(np.asarray(vectors[1], dtype=np.float32))


@pytest.mark.parametrize(
    ("payload", "encoding", "inputs", "words"),
    [
        (_answer([[1.0, 2.0]]), "float", 2, "1 embeddings for 2 inputs"),
        (_answer([[1.0, 2.0], [1.0]]), "float", 2, "different dimensions"),
        (_answer([[1.0, float("nan")]]), "float", 1, "not finite"),
        (_answer([[1.0, 2.0]]), "base64", 1, "expected a base64 string"),
        ({"data": [{"index": 0, "embedding": "!!"}]}, "base64", 1, "not valid base64"),
        ({"data": [{"index": 0, "embedding": base64.b64encode(b"12345").decode()}]}, "base64", 1, "float32"),
        ({"data": [{"index": 1, "embedding": [1.0]}]}, "float", 1, "indexes"),
        ({"data": [{"index": 0, "embedding": ["a", "b"]}]}, "float", 1, "list of numbers"),
        ({"error": "model not found"}, "float", 1, "not an embeddings answer"),
    ],
)
def test_embeddings_answers_that_are_wrong(payload, encoding: str, inputs: int, words: str) -> None:
    result = interpret_embeddings(payload, inputs, encoding)
    assert result.error and words in result.error, result.error


# --- against real HTTP servers ------------------------------------------------------------------


def _run(tmp_path: Path, base: str, *args: str, code: int = 0) -> dict:
    out = tmp_path / "out"
    argv = ["--base-url", base, "--no-progress", "--no-telemetry", "--output", str(out), *args]
    assert main(argv) == code
    return json.loads((out / "bench.json").read_text())


@pytest.mark.e2e
@pytest.mark.parametrize("encoding", ["float", "base64"])
def test_embeddings_workload_against_the_load_generator(tmp_path: Path, encoding: str) -> None:
    with loadgen("--embedding-dim", "256", "--first-delay-ms", "20") as base:
        doc = _run(
            tmp_path,
            base,
            "--workload",
            "embeddings",
            "--encoding-format",
            encoding,
            "--batch-size",
            "4",
            "--concurrency",
            "1,3",
            "--num-requests",
            "6",
            "--goodput",
            "e2el:10000",
            "--record-streams",
        )
    assert doc["workload"]["name"] == "embeddings" and doc["workload"]["encoding_format"] == encoding
    assert doc["server"]["api"] == "embeddings" and doc["roofline"]["available"] is False
    for level in doc["levels"]:
        s = level["summary"]
        e = s["embeddings"]
        assert (s["completed"], s["errors"], e["inputs"], e["dimensions"]) == (6, 0, 24, [256])
        assert e["inputs_per_s"] == pytest.approx(24 / s["duration_s"])
        assert e["prompt_tokens_per_s"] == pytest.approx(e["prompt_tokens"] / s["duration_s"])
        assert s["e2el_ms"]["count"] == 6 and s["e2el_ms"]["p50"] >= 20.0  # the server's 20 ms
        assert s["ttft_ms"]["count"] == 0 and s["total_output_tokens"] == 0
        assert level["goodput"]["fraction"] == 1.0 and level["client"]["cpu_us_per_request"] > 0
    streams = [json.loads(line) for line in (tmp_path / "out" / "streams.jsonl").read_text().splitlines()]
    assert streams[0]["url"].endswith("/v1/embeddings")
    assert streams[0]["body"]["encoding_format"] == encoding and len(streams[0]["body"]["input"]) == 4
    assert all(r["inputs"] == 4 and r["embedding_dim"] == 256 for r in doc["requests"])


# The CPU embeddings engine (roles/llm_server/files/embeddings_server.py) and the tiny embedding model.
@pytest.mark.e2e
@pytest.mark.parametrize("encoding", ["float", "base64"])
def test_embeddings_against_the_cpu_engine(tmp_path: Path, encoding: str) -> None:
    model_dir = generate(tmp_path / "tiny-embed", seed=0, role="embed")
    with serve_embeddings(model_dir, tmp_path / "engine.log", "--served-name", "tiny-embed") as base:
        doc = _run(tmp_path, base, "--workload", "embeddings", "--encoding-format", encoding,
                   "--batch-size", "4", "--concurrency", "1,2", "--num-requests", "4")  # fmt: skip
    for level in doc["levels"]:
        e = level["summary"]["embeddings"]
        assert level["summary"]["completed"] == 4 and e["inputs"] == 16 and len(e["dimensions"]) == 1
        assert e["prompt_tokens"] > 16 and e["requests_without_usage"] == 0  # the server's usage
