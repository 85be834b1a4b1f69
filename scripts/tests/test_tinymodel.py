"""The tiny Qwen2 model: reproducible files, complete shards, loadable by transformers, servable."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np
import pytest
from aimachine.tinymodel import FIM_TOKENS, generate, main
from safetensors.numpy import load_file
from tokenizers import Tokenizer

MODEL_FILES = {"config.json", "generation_config.json", "tokenizer.json", "tokenizer_config.json"}


def load_weights(model_dir: Path) -> dict[str, np.ndarray]:
    tensors: dict[str, np.ndarray] = {}
    for path in sorted(model_dir.glob("model*.safetensors")):
        tensors.update(load_file(str(path)))
    return tensors


def file_bytes(model_dir: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(model_dir.iterdir())}


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return generate(tmp_path_factory.mktemp("tiny") / "model", seed=0)


def test_writes_the_files_of_a_qwen2_checkpoint(model_dir):
    assert {p.name for p in model_dir.iterdir()} == MODEL_FILES | {"model.safetensors"}
    config = json.loads((model_dir / "config.json").read_text())
    assert config["architectures"] == ["Qwen2ForCausalLM"]
    assert config["model_type"] == "qwen2"
    assert config["tie_word_embeddings"] is False


def file_tree(model_dir: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(model_dir)): p.read_bytes() for p in sorted(model_dir.rglob("*")) if p.is_file()
    }


@pytest.mark.parametrize("role", ["chat", "autocomplete", "embed"])
def test_same_seed_gives_identical_bytes_across_processes(tmp_path, role):
    # A separate interpreter: hash seeds and thread pools differ, the bytes must not.
    here = generate(tmp_path / "here", seed=0, role=role)
    other = tmp_path / "again"
    subprocess.run(
        [sys.executable, "-m", "aimachine.tinymodel", str(other), "--seed", "0", "--role", role],
        check=True,
        capture_output=True,
    )
    assert file_tree(other) == file_tree(here)


def test_each_role_writes_its_own_model(model_dir, tmp_path):
    auto = generate(tmp_path / "auto", role="autocomplete")
    embed = generate(tmp_path / "embed", role="embed")
    assert {p.name for p in auto.iterdir()} == MODEL_FILES | {"model.safetensors"}
    assert set(file_tree(embed)) == MODEL_FILES | {
        "model.safetensors",
        "modules.json",
        "1_Pooling/config.json",
        "config_sentence_transformers.json",
    }
    # The chat model is the same bytes whatever the other roles do.
    assert file_tree(generate(tmp_path / "chat", role="chat")) == file_tree(model_dir)


def test_autocomplete_tokenizer_has_qwen_coder_fim_tokens(tmp_path):
    auto = generate(tmp_path / "auto", role="autocomplete")
    tokenizer = Tokenizer.from_file(str(auto / "tokenizer.json"))
    config = json.loads((auto / "config.json").read_text())
    tok_config = json.loads((auto / "tokenizer_config.json").read_text())
    size = tokenizer.get_vocab_size(with_added_tokens=True)
    assert config["vocab_size"] == size
    # After <|endoftext|>, <|im_start|>, <|im_end|>, in Qwen2.5-Coder's order (151659-151664 there).
    assert [tokenizer.token_to_id(t) for t in FIM_TOKENS] == list(range(size - 6, size))
    prompt = "<|fim_prefix|>def add(a, b):\n    <|fim_suffix|>\n<|fim_middle|>"
    ids = tokenizer.encode(prompt).ids
    assert ids[0] == tokenizer.token_to_id("<|fim_prefix|>") and ids[-1] == tokenizer.token_to_id(
        "<|fim_middle|>"
    )
    assert tokenizer.decode(ids, skip_special_tokens=False) == prompt
    # A base model: text ends with <|endoftext|>, which is also what never comes out.
    assert tok_config["eos_token"] == "<|endoftext|>" and config["eos_token_id"] == tokenizer.token_to_id(
        "<|endoftext|>"
    )
    weights = load_weights(auto)
    fim_rows = weights["lm_head.weight"][[tokenizer.token_to_id(t) for t in FIM_TOKENS]]
    assert (fim_rows[:, 1:] == 0).all() and (fim_rows[:, 0] < 0).all()


def test_embedding_model_is_laid_out_like_qwen3_embedding(tmp_path):
    embed = generate(tmp_path / "embed", role="embed")
    config = json.loads((embed / "config.json").read_text())
    assert config["architectures"] == ["Qwen3ForCausalLM"] and config["model_type"] == "qwen3"
    assert config["tie_word_embeddings"] is True
    weights = load_weights(embed)
    # Saved as Qwen3Model: no "model." prefix and no head (tied), as Qwen3-Embedding-0.6B's file.
    assert "embed_tokens.weight" in weights and "norm.weight" in weights
    assert not [n for n in weights if n.startswith("model.") or n.startswith("lm_head")]
    assert weights["layers.0.self_attn.q_norm.weight"].shape == (config["head_dim"],)
    tokenizer = Tokenizer.from_file(str(embed / "tokenizer.json"))
    eos = tokenizer.token_to_id("<|endoftext|>")
    assert tokenizer.encode("def add(a, b):").ids[-1] == eos
    assert tokenizer.encode("def add(a, b):", add_special_tokens=False).ids[-1] != eos
    pooling = json.loads((embed / "1_Pooling/config.json").read_text())
    assert (
        pooling["pooling_mode_lasttoken"] is True
        and pooling["word_embedding_dimension"] == config["hidden_size"]
    )
    modules = json.loads((embed / "modules.json").read_text())
    assert modules[-1]["type"] == "sentence_transformers.models.Normalize"


def test_unknown_role_is_refused(tmp_path, capsys):
    with pytest.raises(SystemExit):
        main([str(tmp_path / "m"), "--role", "rerank"])
    assert "invalid choice: 'rerank'" in capsys.readouterr().err
    with pytest.raises(ValueError, match="role must be one of chat, autocomplete, embed"):
        generate(tmp_path / "m", role="rerank")
    assert not (tmp_path / "m").exists()


def test_other_seed_changes_weights_not_tokenizer(model_dir, tmp_path):
    other = generate(tmp_path / "seed1", seed=1)
    a, b = load_weights(model_dir), load_weights(other)
    assert a.keys() == b.keys()
    assert not np.array_equal(a["lm_head.weight"], b["lm_head.weight"])
    for name in MODEL_FILES:
        assert (other / name).read_bytes() == (model_dir / name).read_bytes(), name


def test_tensor_shapes_match_config(model_dir):
    config = json.loads((model_dir / "config.json").read_text())
    weights = load_weights(model_dir)
    hidden, heads, kv_heads = (
        config["hidden_size"],
        config["num_attention_heads"],
        config["num_key_value_heads"],
    )
    head_dim, vocab = config["head_dim"], config["vocab_size"]
    assert weights["model.embed_tokens.weight"].shape == (vocab, hidden)
    # Untied output head, as in Qwen2.5-7B: a tensor of its own with different values.
    assert weights["lm_head.weight"].shape == (vocab, hidden)
    assert not np.array_equal(weights["lm_head.weight"], weights["model.embed_tokens.weight"])
    for i in range(config["num_hidden_layers"]):
        attn = f"model.layers.{i}.self_attn"
        assert weights[f"{attn}.q_proj.weight"].shape == (heads * head_dim, hidden)
        assert weights[f"{attn}.k_proj.weight"].shape == (kv_heads * head_dim, hidden)
        assert weights[f"{attn}.v_proj.bias"].shape == (kv_heads * head_dim,)
        assert weights[f"model.layers.{i}.mlp.down_proj.weight"].shape == (
            hidden,
            config["intermediate_size"],
        )
    assert f"model.layers.{config['num_hidden_layers']}.input_layernorm.weight" not in weights
    assert {w.dtype for w in weights.values()} == {np.dtype(np.float32)}
    assert config["torch_dtype"] == "float32"


def test_tokenizer_special_tokens_and_round_trip(model_dir):
    tokenizer = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
    config = json.loads((model_dir / "config.json").read_text())
    generation = json.loads((model_dir / "generation_config.json").read_text())
    tok_config = json.loads((model_dir / "tokenizer_config.json").read_text())
    size = tokenizer.get_vocab_size(with_added_tokens=True)
    assert 1000 <= size <= 4096
    assert config["vocab_size"] == size
    # Specials follow the learned vocabulary, as in Qwen2.5.
    ids = [tokenizer.token_to_id(t) for t in ("<|endoftext|>", "<|im_start|>", "<|im_end|>")]
    assert ids == [size - 3, size - 2, size - 1]
    assert tok_config["eos_token"] == "<|im_end|>"
    assert generation["eos_token_id"] == [ids[2], ids[0]]
    text = "def add(a, b):\n    return a + b  # Größe 42\n<|im_start|>user\nhi<|im_end|>"
    encoding = tokenizer.encode(text)
    assert ids[1] in encoding.ids and ids[2] in encoding.ids
    assert tokenizer.decode(encoding.ids, skip_special_tokens=False) == text
    # A trained BPE, not bytes: common code words are single tokens.
    assert len(tokenizer.encode(" return").ids) == 1


@pytest.mark.parametrize("shards", [2, 3, 5])
def test_shards_cover_every_tensor_once(model_dir, tmp_path, shards):
    sharded = generate(tmp_path / "sharded", seed=0, shards=shards)
    index = json.loads((sharded / "model.safetensors.index.json").read_text())
    files = sorted(p.name for p in sharded.glob("model*.safetensors"))
    assert files == [f"model-{n:05d}-of-{shards:05d}.safetensors" for n in range(1, shards + 1)]
    assert not (sharded / "model.safetensors").exists()
    # Every shard the index names exists, and every file holds exactly the tensors mapped to it.
    assert sorted(set(index["weight_map"].values())) == files
    for name in files:
        held = set(load_file(str(sharded / name)))
        assert held == {t for t, f in index["weight_map"].items() if f == name}
    single = load_weights(model_dir)
    split = load_weights(sharded)
    assert split.keys() == single.keys() == index["weight_map"].keys()
    assert all(np.array_equal(split[k], single[k]) for k in single)
    assert index["metadata"]["total_size"] == sum(t.nbytes for t in single.values())


def test_too_many_shards_is_refused(tmp_path):
    with pytest.raises(ValueError, match="shards must be between 1 and"):
        generate(tmp_path / "m", shards=1000)
    with pytest.raises(ValueError, match="shards must be between 1 and"):
        generate(tmp_path / "m", shards=0)
    assert not (tmp_path / "m").exists()


def test_refuses_non_empty_directory_without_force(tmp_path, capsys):
    target = tmp_path / "m"
    target.mkdir()
    (target / "notes.txt").write_text("mine")
    with pytest.raises(SystemExit) as exit_info:
        main([str(target)])
    assert exit_info.value.code == 2
    assert "is not empty" in capsys.readouterr().err
    assert [p.name for p in target.iterdir()] == ["notes.txt"]


def test_force_replaces_an_earlier_layout(tmp_path, capsys):
    target = tmp_path / "m"
    generate(target, shards=3, role="embed")
    assert main([str(target), "--force"]) == 0
    names = {p.name for p in target.iterdir()}
    assert names == MODEL_FILES | {"model.safetensors"}
    out = capsys.readouterr().out
    params = sum(t.size for t in load_weights(target).values())
    assert f"{params:,d} parameters" in out
    assert "model.safetensors" in out


def test_bad_arguments_give_clear_errors(tmp_path, capsys):
    not_a_dir = tmp_path / "file"
    not_a_dir.write_text("x")
    with pytest.raises(SystemExit) as exit_info:
        main([str(not_a_dir)])
    assert exit_info.value.code == 2
    assert "not a directory" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main([str(tmp_path / "new"), "--seed", "-1"])
    assert "seed must be >= 0" in capsys.readouterr().err


def test_needs_no_torch(tmp_path):
    # The controller may have no torch or transformers: generating must not import them.
    code = (
        "import sys\nfrom aimachine.tinymodel import generate\n"
        f"generate({str(tmp_path / 'm')!r})\n"
        "assert 'torch' not in sys.modules and 'transformers' not in sys.modules, sorted(sys.modules)\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.mark.e2e
def test_loads_and_generates_in_transformers(model_dir, tmp_path):
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    tokenizer = transformers.AutoTokenizer.from_pretrained(model_dir)
    model = transformers.AutoModelForCausalLM.from_pretrained(model_dir)
    assert type(model).__name__ == "Qwen2ForCausalLM"
    assert model.lm_head.weight.data_ptr() != model.model.embed_tokens.weight.data_ptr()
    assert tokenizer.eos_token == "<|im_end|>"

    messages = [{"role": "user", "content": "Add two numbers."}]
    rendered = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    assert rendered == (
        "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n"
        "<|im_start|>user\nAdd two numbers.<|im_end|>\n<|im_start|>assistant\n"
    )
    with_system = [{"role": "system", "content": "Be terse."}, *messages]
    assert tokenizer.apply_chat_template(with_system, tokenize=False).startswith(
        "<|im_start|>system\nBe terse.<|im_end|>\n<|im_start|>user\n"
    )
    # The transformers tokenizer class and the raw tokenizer.json agree.
    raw = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
    assert tokenizer(rendered)["input_ids"] == raw.encode(rendered).ids

    inputs = tokenizer.apply_chat_template(
        messages, add_generation_prompt=True, return_dict=True, return_tensors="pt"
    )
    prompt_len = inputs["input_ids"].shape[1]
    output = model.generate(**inputs, max_new_tokens=5, do_sample=False)
    assert output.shape == (1, prompt_len + 5)
    assert tokenizer.decode(output[0, prompt_len:])

    # Stop and control tokens never come out: answers always run to max_tokens.
    torch.manual_seed(0)
    sampled = model.generate(
        **inputs,
        max_new_tokens=40,
        do_sample=True,
        temperature=1.0,
        top_k=0,
        top_p=1.0,
        output_logits=True,
        return_dict_in_generate=True,
    )
    assert sampled.sequences.shape[1] == prompt_len + 40
    special = [tokenizer.convert_tokens_to_ids(t) for t in ("<|endoftext|>", "<|im_start|>", "<|im_end|>")]
    for step_logits in sampled.logits:
        log_probs = torch.log_softmax(step_logits[0], dim=-1)
        assert log_probs[special].max() < -10
        assert log_probs.max() < -3  # still close to uniform over the other tokens

    # The sharded layout loads into the same model.
    sharded = transformers.AutoModelForCausalLM.from_pretrained(generate(tmp_path / "sharded", shards=3))
    with torch.no_grad():
        assert torch.equal(model(**inputs).logits, sharded(**inputs).logits)


@pytest.mark.e2e
def test_live_server_chat_completion(live_server):
    headers = {"Authorization": f"Bearer {live_server.api_key}"}
    models = httpx.get(f"{live_server.base_url}/v1/models", headers=headers, timeout=10).json()
    assert [m["id"] for m in models["data"]] == [live_server.model]

    body = {
        "model": live_server.model,
        "messages": [{"role": "user", "content": "Write a function that adds two numbers."}],
        "max_tokens": 8,
    }
    response = httpx.post(
        f"{live_server.base_url}/v1/chat/completions", json=body, headers=headers, timeout=60
    )
    assert response.status_code == 200, response.text
    answer = response.json()
    assert answer["model"] == live_server.model
    assert answer["choices"][0]["message"]["content"]
    assert answer["choices"][0]["finish_reason"] == "length"
    usage = answer["usage"]
    assert usage["completion_tokens"] == 8
    assert usage["prompt_tokens"] > 10
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]


@pytest.mark.e2e
def test_live_server_streams_with_final_usage(live_server):
    body = {
        "model": live_server.model,
        "messages": [{"role": "user", "content": "Say hello."}],
        "max_tokens": 6,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    events = []
    with httpx.stream(
        "POST", f"{live_server.base_url}/v1/chat/completions", json=body, timeout=60
    ) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        for line in response.iter_lines():
            if line.startswith("data: "):
                events.append(json.loads(line.removeprefix("data: ")))
    assert events[0]["choices"][0]["delta"] == {"role": "assistant"}
    text = "".join(e["choices"][0]["delta"].get("content", "") for e in events)
    assert text
    assert (
        events[-1]["usage"]["completion_tokens"]
        == events[-1]["usage"]["total_tokens"] - events[-1]["usage"]["prompt_tokens"]
    )
    assert events[-1]["usage"]["completion_tokens"] == 6
    assert events[-1]["choices"][0]["finish_reason"] == "length"
    assert all("usage" not in e for e in events[:-1])


def test_console_entry_point(tmp_path):
    script = Path(sys.executable).parent / "aimachine-tiny-model"
    if not script.exists():
        pytest.skip(f"{script} not installed (pip install -e scripts)")
    done = subprocess.run(
        [str(script), str(tmp_path / "m"), "--shards", "2"], check=False, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    assert "model.safetensors.index.json" in done.stdout
    assert (tmp_path / "m" / "model-00002-of-00002.safetensors").is_file()


def _chat(server, max_tokens: int) -> dict:
    body = {
        "model": server.model,
        "messages": [{"role": "user", "content": f"Count to {max_tokens}."}],
        "max_tokens": max_tokens,
    }
    response = httpx.post(f"{server.base_url}/v1/chat/completions", json=body, timeout=120)
    assert response.status_code == 200, response.text
    return response.json()


def _process_group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.mark.e2e
def test_continuous_batching_server_serves_concurrent_requests_and_stops_cleanly(
    serve_tiny_model, tiny_model_dir, tmp_path
):
    with serve_tiny_model(tiny_model_dir, tmp_path, continuous_batching=True) as server:
        wanted = [3, 9, 17]
        with ThreadPoolExecutor(len(wanted)) as pool:
            answers = list(pool.map(lambda n: _chat(server, n), wanted))
        # Each request keeps its own max_tokens even when batched together.
        assert [a["usage"]["completion_tokens"] for a in answers] == wanted
        assert "CB: True" in server.log()
        pgid = server.pid
        assert _process_group_alive(pgid)
    assert not _process_group_alive(pgid), "transformers serve left processes behind"


SSE_DIR = Path(__file__).parent / "data" / "sse"


@pytest.mark.parametrize("name", ["chat-completions", "completions"])
def test_recorded_streams_show_the_documented_shape(name):
    # The facts that data/sse/README.md states about transformers serve 5.24.0, checked on the bytes.
    raw = (SSE_DIR / f"transformers-serve-5.24.0-{name}.txt").read_bytes()
    assert raw.endswith(b"\n\n")
    blocks = raw.decode("utf-8").split("\n\n")[:-1]
    assert all(b.startswith("data: ") and "\n" not in b for b in blocks)
    assert "[DONE]" not in raw.decode("utf-8")
    events = [json.loads(b.removeprefix("data: ")) for b in blocks]
    assert len({e["id"] for e in events}) == 1
    assert all("usage" not in e for e in events[:-1])
    last = events[-1]
    assert last["choices"][0]["finish_reason"] == "length"
    assert last["usage"]["completion_tokens"] == 24
    if name == "chat-completions":
        assert events[0]["choices"][0]["delta"] == {"role": "assistant"}
        texts = [e["choices"][0]["delta"]["content"] for e in events[1:-1]]
        assert last["choices"][0]["delta"] == {}
    else:
        texts = [e["choices"][0]["text"] for e in events[:-1]]
        assert last["choices"][0]["text"] == ""
    # Fewer text events than tokens: partial UTF-8 is held back and sent with the next token.
    assert all(texts) and len(texts) < 24


@pytest.mark.e2e
def test_fim_prompt_runs_on_transformers_serve_completions(serve_tiny_model, tmp_path):
    """The autocomplete model on /v1/completions: the FIM markers are single special tokens in the
    prompt the engine counts, and the fill runs to max_tokens without any special token in it."""
    auto = generate(tmp_path / "tiny-autocomplete", role="autocomplete")
    tokenizer = Tokenizer.from_file(str(auto / "tokenizer.json"))
    prompt = "<|fim_prefix|>def add(a, b):\n    <|fim_suffix|>\n\nprint(add(1, 2))<|fim_middle|>"
    with serve_tiny_model(auto, tmp_path) as server:
        body = {"model": server.model, "prompt": prompt, "max_tokens": 8, "temperature": 0}
        response = httpx.post(f"{server.base_url}/v1/completions", json=body, timeout=120)
        assert response.status_code == 200, response.text
        answer = response.json()
        assert answer["usage"]["prompt_tokens"] == len(tokenizer.encode(prompt).ids) == 25
        assert answer["usage"]["completion_tokens"] == 8
        assert answer["choices"][0]["finish_reason"] == "length"
        fill = answer["choices"][0]["text"]
        assert fill and not [t for t in FIM_TOKENS if t in fill]
        with httpx.stream(
            "POST", f"{server.base_url}/v1/completions", json={**body, "stream": True}, timeout=120
        ) as stream:
            chunks = [json.loads(line[6:]) for line in stream.iter_lines() if line.startswith("data: {")]
        assert "".join(c["choices"][0]["text"] for c in chunks) == fill  # greedy: the same fill
