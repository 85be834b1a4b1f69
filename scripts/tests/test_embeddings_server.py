"""The CPU engine for embeddings (roles/llm_server/files/embeddings_server.py), as a real server
on loopback with the generated tiny embedding model, against transformers' own forward pass."""

from __future__ import annotations

import base64
import importlib.util
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import numpy as np
import pytest
from aimachine.tinymodel import generate
from conftest import serve_embeddings

SERVER = Path(__file__).resolve().parents[2] / "roles/llm_server/files/embeddings_server.py"
NAME = "tiny-embed"
MAX_INPUTS = 16
MAX_REQUEST_TOKENS = 6000

_spec = importlib.util.spec_from_file_location("embeddings_server", SERVER)
es = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(es)


@dataclass(frozen=True)
class Server:
    url: str
    model_dir: Path


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return generate(tmp_path_factory.mktemp("embed") / NAME, role="embed")


@pytest.fixture(scope="module")
def server(model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    log = tmp_path_factory.mktemp("embed-log") / "server.log"
    limits = ("--max-inputs", str(MAX_INPUTS), "--max-request-tokens", str(MAX_REQUEST_TOKENS))
    with serve_embeddings(model_dir, log, *limits) as url:
        yield Server(url, model_dir)


def _embed(server: Server, **body: object) -> httpx.Response:
    return httpx.post(f"{server.url}/v1/embeddings", json={"model": NAME, **body}, timeout=60)


@pytest.fixture(scope="module")
def reference(model_dir: Path):
    """transformers' own forward pass, one text at a time: last token (the <|endoftext|> the
    tokenizer appends), L2-normalized, as Qwen3-Embedding's model card computes it."""
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    tokenizer = transformers.AutoTokenizer.from_pretrained(model_dir)
    model = transformers.AutoModel.from_pretrained(model_dir).eval()

    def embed(text: str) -> np.ndarray:
        ids = tokenizer(text, return_tensors="pt")
        with torch.no_grad():
            last = model(**ids).last_hidden_state[0, -1]
        return torch.nn.functional.normalize(last, dim=-1).numpy()

    return tokenizer, embed


TEXTS = [
    "def add(a, b):\n    return a + b",
    "x",
    "class Stack:\n    def push(self, item):\n        self.items.append(item)\n" * 3,
    "Read a config file of key = value lines.",
]


@pytest.mark.e2e
def test_models_lists_the_served_name_and_its_limit(server):
    models = httpx.get(f"{server.url}/v1/models", timeout=10).json()
    assert [(m["id"], m["max_model_len"]) for m in models["data"]] == [(NAME, 2048)]
    assert httpx.get(f"{server.url}/health", timeout=10).json() == {"status": "ok"}


@pytest.mark.e2e
def test_a_batch_gives_each_input_the_vector_transformers_computes_alone(server, reference):
    tokenizer, embed = reference
    response = _embed(server, input=TEXTS)
    assert response.status_code == 200, response.text
    answer = response.json()
    assert answer["model"] == NAME and answer["object"] == "list"
    assert [d["index"] for d in answer["data"]] == list(range(len(TEXTS)))
    for item, text in zip(answer["data"], TEXTS, strict=True):
        vector = np.asarray(item["embedding"], dtype=np.float32)
        assert vector.shape == (64,)
        assert np.linalg.norm(vector) == pytest.approx(1.0, abs=1e-5)
        # Padding in a batch must not move any vector (right padding, the last real token).
        np.testing.assert_allclose(vector, embed(text), atol=2e-5)
    tokens = sum(len(tokenizer(t)["input_ids"]) for t in TEXTS)
    assert answer["usage"] == {"prompt_tokens": tokens, "total_tokens": tokens}
    # The tokenizer's <|endoftext|> is in the count: one token per input more than the text.
    assert tokens == sum(len(tokenizer(t, add_special_tokens=False)["input_ids"]) for t in TEXTS) + len(TEXTS)


@pytest.mark.e2e
def test_similar_code_gets_closer_vectors_than_unrelated_text(server):
    texts = ["def add(a, b): return a + b", "def add(x, y): return x + y", "The quick brown fox."]
    vectors = np.asarray([d["embedding"] for d in _embed(server, input=texts).json()["data"]])
    similarity = vectors @ vectors.T
    assert similarity[0, 1] > similarity[0, 2] + 0.3


@pytest.mark.e2e
def test_the_openai_sdk_gets_base64_by_default_and_the_same_floats(server):
    openai = pytest.importorskip("openai")
    client = openai.OpenAI(base_url=f"{server.url}/v1", api_key="unused-the-front-door-checks-keys")
    result = client.embeddings.create(model=NAME, input=TEXTS[:2])
    floats = _embed(server, input=TEXTS[:2]).json()["data"]
    for got, want in zip(result.data, floats, strict=True):
        np.testing.assert_allclose(got.embedding, want["embedding"], rtol=0, atol=1e-7)
    raw = _embed(server, input=TEXTS[0], encoding_format="base64").json()["data"][0]["embedding"]
    decoded = np.frombuffer(base64.b64decode(raw), dtype="<f4")
    np.testing.assert_array_equal(decoded, np.asarray(floats[0]["embedding"], dtype=np.float32))


@pytest.mark.e2e
def test_token_ids_are_embedded_as_given(server, reference):
    tokenizer, _ = reference
    ids = tokenizer(TEXTS[0])["input_ids"]
    by_ids = _embed(server, input=[ids, ids[:-1]]).json()
    by_text = _embed(server, input=TEXTS[0]).json()
    np.testing.assert_allclose(by_ids["data"][0]["embedding"], by_text["data"][0]["embedding"], atol=1e-6)
    assert by_ids["usage"]["prompt_tokens"] == 2 * len(ids) - 1
    single = _embed(server, input=ids).json()
    assert len(single["data"]) == 1 and single["usage"]["prompt_tokens"] == len(ids)


def _error(response: httpx.Response, status: int) -> str:
    assert response.status_code == status, response.text
    return response.json()["error"]["message"]


@pytest.mark.e2e
def test_inputs_beyond_the_limits_get_a_400_naming_the_limit(server):
    assert "at most 2048 tokens per input; input 1 has 2049 tokens" in _error(
        _embed(server, input=[[5] * 10, [5] * 2049]), 400
    )
    # Far too long a text is refused from its length alone, before any tokenizing.
    started = time.monotonic()
    message = _error(_embed(server, input="a" * 2_000_000), 400)
    assert time.monotonic() - started < 5
    assert "at most 2048 tokens per input" in message and "2000000 characters" in message
    assert f"at most {MAX_INPUTS} inputs; this one has {MAX_INPUTS + 1}" in _error(
        _embed(server, input=["x"] * (MAX_INPUTS + 1)), 400
    )
    assert f"at most {MAX_REQUEST_TOKENS} tokens in all; this one has 6003" in _error(
        _embed(server, input=[[5] * 2001] * 3), 400
    )
    # truncate_prompt_tokens (vLLM's extension) keeps the last tokens, the pooled one among them.
    kept = _embed(server, input=[[5] * 2100], truncate_prompt_tokens=100).json()
    assert kept["usage"]["prompt_tokens"] == 100


@pytest.mark.e2e
@pytest.mark.parametrize(
    ("body", "status", "says"),
    [
        (
            {"model": "other", "input": "x"},
            404,
            "The model `other` does not exist; this server serves `tiny-embed`",
        ),
        ({"model": NAME, "input": []}, 400, "`input` must be"),
        ({"model": NAME, "input": ["x", ""]}, 400, "empty string"),
        ({"model": NAME, "input": [1, "x"]}, 400, "`input` must be"),
        ({"model": NAME, "input": "x", "encoding_format": "int8"}, 400, "`encoding_format` must be"),
        ({"model": NAME, "input": "x", "dimensions": 8}, 400, "does not support Matryoshka"),
        ({"model": NAME, "input": "x", "truncate_prompt_tokens": 0}, 400, "truncate_prompt_tokens"),
    ],
)
def test_bad_requests_get_a_clear_error(server, body, status, says):
    response = httpx.post(f"{server.url}/v1/embeddings", json=body, timeout=30)
    assert says in _error(response, status)


@pytest.mark.e2e
def test_a_body_that_is_not_json_gets_a_400(server):
    response = httpx.post(f"{server.url}/v1/embeddings", content=b"{nope", timeout=30)
    assert "not valid JSON" in _error(response, 400)


LIMITS = es.Limits(max_input_tokens=16, max_inputs=4, max_request_tokens=40, max_chars_per_token=5)


def test_matryoshka_dimensions_when_the_model_allows_them():
    request = es.parse_request({"input": "x", "dimensions": 8}, NAME, 64, LIMITS, matryoshka=True)
    assert request.dimensions == 8
    with pytest.raises(es.RequestError, match=r"range \[1, 64\], got 65"):
        es.parse_request({"input": "x", "dimensions": 65}, NAME, 64, LIMITS, matryoshka=True)
    vector = np.arange(1, 65, dtype=np.float32)
    vector /= np.linalg.norm(vector)
    short = np.asarray(es.encode(vector, 8, True, "float"))
    assert short.shape == (8,) and np.linalg.norm(short) == pytest.approx(1.0, abs=1e-6)
    np.testing.assert_allclose(short, vector[:8] / np.linalg.norm(vector[:8]), rtol=1e-6)


def test_pooling_follows_the_checkpoint(model_dir, tmp_path):
    assert es.pooling_from_checkpoint(model_dir) == ("last", True)
    assert es.pooling_from_checkpoint(tmp_path) == ("last", True)  # no Sentence Transformers files
    (tmp_path / "1_Pooling").mkdir()
    (tmp_path / "1_Pooling/config.json").write_text('{"pooling_mode_mean_tokens": true}')
    (tmp_path / "modules.json").write_text(
        '[{"path": "", "type": "sentence_transformers.models.Transformer"},'
        ' {"path": "1_Pooling", "type": "sentence_transformers.models.Pooling"}]'
    )
    assert es.pooling_from_checkpoint(tmp_path) == ("mean", False)


def test_refuses_to_listen_beyond_loopback(model_dir):
    done = subprocess.run(
        [sys.executable, str(SERVER), str(model_dir), "--host", "0.0.0.0"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2
    assert "--host must be a loopback address (got '0.0.0.0')" in done.stderr


def test_command_line_forms(model_dir, capsys):
    assert es.parse_args([str(model_dir)]).served_model_name == NAME  # the directory's name
    args = es.parse_args(["--model-dir", str(model_dir), "--served-name", "code-embed", "--port", "8002"])
    assert (args.model, args.served_model_name, args.port) == (model_dir, "code-embed", 8002)
    for bad, says in (
        ([], "give the model directory once"),
        ([str(model_dir), "--model-dir", str(model_dir)], "give the model directory once"),
        ([str(model_dir), "--served-model-name", "Qwen/x"], "must not contain '/'"),
        ([str(model_dir.parent)], "has no config.json"),
    ):
        with pytest.raises(SystemExit):
            es.parse_args(bad)
        assert says in capsys.readouterr().err
