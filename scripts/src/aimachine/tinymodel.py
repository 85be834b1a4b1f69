"""Generate tiny random-weight model directories for tests and CPU demos, one per served role.

- ``chat``: a Qwen2 model laid out like Qwen2.5-7B-Instruct (ChatML template, untied head).
- ``autocomplete``: the same Qwen2 model whose tokenizer also has Qwen2.5-Coder's fill-in-the-
  middle tokens (``<|fim_prefix|>``, ``<|fim_suffix|>``, ``<|fim_middle|>``, ...), so a FIM prompt
  on ``/v1/completions`` tokenizes as the real model's does.
- ``embed``: a Qwen3 model laid out like Qwen3-Embedding-0.6B (tied embeddings, weights without
  the ``model.`` prefix, a tokenizer that appends ``<|endoftext|>``, the Sentence Transformers
  files that say "pool the last token, normalize"), for the embeddings server and vLLM's pooling
  runner.

The directories have the same files and layout as real checkpoints (config.json,
generation_config.json, model.safetensors or shards plus index, tokenizer.json,
tokenizer_config.json), so the model role, the engines and the benchmark clients can be exercised
without the Hugging Face Hub. It needs only numpy, safetensors and tokenizers, so it also runs on
a controller without torch. Same seed and role, same bytes: an Ansible copy stays idempotent.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from safetensors import safe_open
from safetensors.numpy import save_file
from tokenizers import (
    AddedToken,
    Regex,
    Tokenizer,
    decoders,
    models,
    normalizers,
    pre_tokenizers,
    processors,
    trainers,
)

# Qwen2's special tokens; Qwen2.5 places them after the learned vocabulary, so do we.
ENDOFTEXT = "<|endoftext|>"
IM_START = "<|im_start|>"
IM_END = "<|im_end|>"
SPECIAL_TOKENS = (ENDOFTEXT, IM_START, IM_END)
# Qwen2.5-Coder's code tokens, in the order of their ids (151659-151664 there).
FIM_PREFIX = "<|fim_prefix|>"
FIM_MIDDLE = "<|fim_middle|>"
FIM_SUFFIX = "<|fim_suffix|>"
FIM_PAD = "<|fim_pad|>"
REPO_NAME = "<|repo_name|>"
FILE_SEP = "<|file_sep|>"
FIM_TOKENS = (FIM_PREFIX, FIM_MIDDLE, FIM_SUFFIX, FIM_PAD, REPO_NAME, FILE_SEP)
ROLES = ("chat", "autocomplete", "embed")

# Cap on learned BPE tokens (256 bytes + merges); the specials come on top. The corpus runs out of
# merges first, at 1,213 (every corpus word is then one token): vocab 1,216 in all.
LEARNED_VOCAB = 4093

# Qwen2's pre-tokenizer split (digits one by one, letters with one leading non-letter).
PRETOKENIZE_REGEX = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*"
    r"|\s*[\r\n]+|\s+(?!\S)|\s+"
)

# ChatML as Qwen2.5 uses it (without the tool-calling branches): a default system turn when the
# conversation has none, content as a string or as OpenAI text parts.
CHAT_TEMPLATE = (
    "{%- if not messages or messages[0]['role'] != 'system' %}"
    "{{- '<|im_start|>system\\nYou are a helpful assistant.<|im_end|>\\n' }}"
    "{%- endif %}"
    "{%- for message in messages %}"
    "{{- '<|im_start|>' + message['role'] + '\\n' }}"
    "{%- if message['content'] is string %}"
    "{{- message['content'] }}"
    "{%- elif message['content'] %}"
    "{%- for part in message['content'] %}"
    "{%- if part['type'] == 'text' %}{{- part['text'] }}{%- endif %}"
    "{%- endfor %}"
    "{%- endif %}"
    "{{- '<|im_end|>\\n' }}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}"
    "{{- '<|im_start|>assistant\\n' }}"
    "{%- endif %}"
)


@dataclass(frozen=True)
class Shape:
    """Architecture numbers; Qwen2.5-7B has the same structure at 3584/28/28/4/128/18944."""

    hidden: int = 64
    layers: int = 2
    heads: int = 4
    kv_heads: int = 2
    head_dim: int = 16
    intermediate: int = 128
    max_positions: int = 4096
    rope_theta: float = 1_000_000.0
    rms_norm_eps: float = 1e-6


SHAPE = Shape()
# The embedding model: Qwen3's structure (q/k norms, no attention bias) at the chat model's size,
# with a shorter context than the chat model so a front door can tell their limits apart.
EMBED_SHAPE = Shape(max_positions=2048)

# Written by hand for this module: a little Python and a little English, so that the BPE splits
# code and prose into plausible pieces.
CORPUS = r'''
def fibonacci(n: int) -> list[int]:
    """Return the first n Fibonacci numbers."""
    result = []
    a, b = 0, 1
    for _ in range(n):
        result.append(a)
        a, b = b, a + b
    return result


def is_prime(number: int) -> bool:
    """Tell whether a number is prime by trial division."""
    if number < 2:
        return False
    for divisor in range(2, int(number ** 0.5) + 1):
        if number % divisor == 0:
            return False
    return True


class Stack:
    """A last-in, first-out container."""

    def __init__(self) -> None:
        self.items: list[object] = []

    def push(self, item: object) -> None:
        self.items.append(item)

    def pop(self) -> object:
        if not self.items:
            raise IndexError("pop from an empty stack")
        return self.items.pop()

    def __len__(self) -> int:
        return len(self.items)


def read_config(path: str) -> dict[str, str]:
    """Parse key = value lines, skipping comments and blank lines."""
    config = {}
    with open(path, encoding="utf-8") as handle:
        for line in handle:
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            key, _, value = line.partition("=")
            config[key.strip()] = value.strip()
    return config


def binary_search(values: list[int], target: int) -> int:
    low, high = 0, len(values) - 1
    while low <= high:
        middle = (low + high) // 2
        if values[middle] == target:
            return middle
        if values[middle] < target:
            low = middle + 1
        else:
            high = middle - 1
    return -1


def word_count(text: str) -> dict[str, int]:
    counts: dict[str, int] = {}
    for word in text.lower().split():
        word = word.strip(".,;:!?\"'()")
        if word:
            counts[word] = counts.get(word, 0) + 1
    return dict(sorted(counts.items(), key=lambda item: (-item[1], item[0])))


async def fetch_all(client, urls):
    results = await asyncio.gather(*(client.get(url) for url in urls))
    return [response.json() for response in results if response.status_code == 200]


import json
import os
import sys
from pathlib import Path

if __name__ == "__main__":
    data = json.loads(Path(sys.argv[1]).read_text())
    print(f"{len(data)} records, mean {sum(data) / len(data):.2f}")
    os.makedirs("output", exist_ok=True)

try:
    value = int(input("Enter a number: "))
except ValueError as error:
    print("That was not a number:", error)
finally:
    print("Done.")

matrix = [[row * column for column in range(1, 4)] for row in range(1, 4)]
squares = {number: number * number for number in range(10)}
evens = [number for number in range(20) if number % 2 == 0]
total = sum(x * y for x, y in zip(evens, range(10)))
assert total >= 0, "the total must not be negative"
lambda_sort = sorted(["pear", "apple", "fig"], key=lambda name: (len(name), name))

A language model predicts the next token of a text from the tokens before it. The server
streams each new token to the client as soon as it is ready, so the first words appear long
before the whole answer is finished. Time to first token measures how long the user waits
before anything happens; the time per output token measures how fast the rest arrives.

The quick brown fox jumps over the lazy dog. A small model is useful for tests because it loads
in a second and needs no graphics card. Its answers are random words, but the files, the
tokenizer and the server behave exactly like those of a large model.

Please write a function that returns the sum of all even numbers in a list. Explain what the
function does, then show an example of how to call it and what it prints.

Sure! Here is a short solution. The function walks through the list once, keeps the numbers
that are divisible by two and adds them up. It returns zero for an empty list.

You are a helpful assistant. Answer the question of the user clearly and briefly. If you do
not know the answer, say so instead of guessing. When you write code, put it in a Markdown
code block and mention the language.

The benchmark sends many requests at the same time and records when every chunk arrives. From
these times it computes the throughput in tokens per second, the latency percentiles and the
number of requests that met their deadline. Memory bandwidth limits how fast a single stream can
decode, because every step reads all the weights once.

Install the package, start the service, check that the health endpoint answers, then point the
editor at the address and the port of the server. Keep the API key in a file that only the
service user can read, and never put it on the command line.
'''


def _special_tokens(role: str) -> tuple[str, ...]:
    return SPECIAL_TOKENS + FIM_TOKENS if role == "autocomplete" else SPECIAL_TOKENS


def train_tokenizer(role: str = "chat") -> Tokenizer:
    """Train a byte-level BPE on CORPUS, set up like Qwen2's tokenizer.json.

    The embed role's tokenizer appends <|endoftext|> to every input, as Qwen3-Embedding's does
    (revision 97b0c614): that is the token whose hidden state the model was trained to pool.
    """
    tokenizer = Tokenizer(models.BPE(unk_token=None, fuse_unk=False, byte_fallback=False))
    tokenizer.normalizer = normalizers.NFC()
    tokenizer.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(PRETOKENIZE_REGEX), behavior="isolated", invert=False),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=LEARNED_VOCAB,
        min_frequency=1,
        show_progress=False,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tokenizer.train_from_iterator(CORPUS.splitlines(keepends=True), trainer=trainer)
    tokenizer.add_special_tokens(
        [AddedToken(t, special=True, normalized=False) for t in _special_tokens(role)]
    )
    if role == "embed":
        eos = (ENDOFTEXT, tokenizer.token_to_id(ENDOFTEXT))
        tokenizer.post_processor = processors.Sequence(
            [
                processors.ByteLevel(trim_offsets=False),
                processors.TemplateProcessing(
                    single=f"$A {ENDOFTEXT}", pair=f"$A $B {ENDOFTEXT}", special_tokens=[eos]
                ),
            ]
        )
    return tokenizer


def tokenizer_config(tokenizer: Tokenizer, role: str = "chat") -> dict[str, object]:
    """The tokenizer_config.json of the real checkpoint of the role, cut to what applies."""
    specials = _special_tokens(role)
    added = {
        str(tokenizer.token_to_id(token)): {
            "content": token,
            "lstrip": False,
            "normalized": False,
            "rstrip": False,
            "single_word": False,
            "special": True,
        }
        for token in specials
    }
    config: dict[str, object] = {
        "add_bos_token": False,
        "add_prefix_space": False,
        "added_tokens_decoder": added,
        "additional_special_tokens": [t for t in specials if t != ENDOFTEXT],
        "bos_token": None,
        "chat_template": CHAT_TEMPLATE,
        "clean_up_tokenization_spaces": False,
        "eos_token": IM_END,
        "errors": "replace",
        "model_max_length": SHAPE.max_positions,
        "pad_token": ENDOFTEXT,
        "split_special_tokens": False,
        "tokenizer_class": "Qwen2Tokenizer",
        "unk_token": None,
    }
    if role == "autocomplete":
        # A base model: text ends with <|endoftext|>, as Qwen2.5-Coder-1.5B's does.
        config["eos_token"] = ENDOFTEXT
    elif role == "embed":
        del config["chat_template"]
        config["eos_token"] = ENDOFTEXT
        config["model_max_length"] = EMBED_SHAPE.max_positions
    return config


def _qwen_config(s: Shape, vocab_size: int, **keys: object) -> dict[str, object]:
    """The config.json keys Qwen2 and Qwen3 share, at shape `s`; `keys` adds the model's own."""
    return {
        "attention_dropout": 0.0,
        "head_dim": s.head_dim,
        "hidden_act": "silu",
        "hidden_size": s.hidden,
        "initializer_range": 0.02,
        "intermediate_size": s.intermediate,
        "max_position_embeddings": s.max_positions,
        "max_window_layers": s.layers,
        "num_attention_heads": s.heads,
        "num_hidden_layers": s.layers,
        "num_key_value_heads": s.kv_heads,
        "rms_norm_eps": s.rms_norm_eps,
        "rope_scaling": None,
        "rope_theta": s.rope_theta,
        "sliding_window": None,
        # float32: numpy writes it natively, and CPU matmuls in bf16 are slower in torch.
        "torch_dtype": "float32",
        "use_cache": True,
        "use_sliding_window": False,
        "vocab_size": vocab_size,
        **keys,
    }


def model_config(vocab_size: int, tokenizer: Tokenizer, role: str = "chat") -> dict[str, object]:
    """config.json with the keys and spelling of Qwen2.5-7B-Instruct's (chat), Qwen2.5-Coder's
    (autocomplete: <|endoftext|> ends a text) or Qwen3-Embedding-0.6B's (embed)."""
    if role == "embed":
        return embed_model_config(vocab_size, tokenizer)
    return _qwen_config(
        SHAPE,
        vocab_size,
        architectures=["Qwen2ForCausalLM"],
        model_type="qwen2",
        bos_token_id=tokenizer.token_to_id(ENDOFTEXT),
        eos_token_id=tokenizer.token_to_id(ENDOFTEXT if role == "autocomplete" else IM_END),
        # Untied (Qwen2.5-Coder-1.5B ties them): the head rows of the special tokens are set apart
        # from their embeddings so that they never come out (random_weights).
        tie_word_embeddings=False,
    )


def embed_model_config(vocab_size: int, tokenizer: Tokenizer) -> dict[str, object]:
    """Qwen3-Embedding-0.6B's config.json keys, at the tiny shape."""
    eos = tokenizer.token_to_id(ENDOFTEXT)
    return _qwen_config(
        EMBED_SHAPE,
        vocab_size,
        architectures=["Qwen3ForCausalLM"],
        model_type="qwen3",
        attention_bias=False,
        bos_token_id=eos,
        eos_token_id=eos,
        tie_word_embeddings=True,
    )


def generation_config(tokenizer: Tokenizer, role: str = "chat") -> dict[str, object]:
    """Qwen2.5-Instruct's sampling defaults with both stop tokens (chat); a base model's greedy
    defaults ending at <|endoftext|> (autocomplete, embed)."""
    if role != "chat":
        eos = tokenizer.token_to_id(ENDOFTEXT)
        return {"bos_token_id": eos, "do_sample": False, "eos_token_id": eos, "max_new_tokens": 2048}
    return {
        "bos_token_id": tokenizer.token_to_id(ENDOFTEXT),
        "do_sample": True,
        "eos_token_id": [tokenizer.token_to_id(IM_END), tokenizer.token_to_id(ENDOFTEXT)],
        "pad_token_id": tokenizer.token_to_id(ENDOFTEXT),
        "repetition_penalty": 1.05,
        "temperature": 0.7,
        "top_k": 20,
        "top_p": 0.8,
    }


def random_weights(vocab_size: int, seed: int, silent_ids: list[int]) -> dict[str, np.ndarray]:
    """Qwen2ForCausalLM tensors by their checkpoint names, in a fixed order.

    Random weights would sample a stop token about once in a few hundred steps, so answers would
    end early at random. `silent_ids` (the special tokens) are made never to come out instead:
    channel 0 of the residual stream is a constant that no layer writes to, so after the final
    RMSNorm it is always positive, and those tokens' output rows read only it, negatively.
    Every answer then runs to max_tokens, which load tests need; `stop` strings still end one.
    """
    s = SHAPE
    rng = np.random.Generator(np.random.PCG64(seed))

    def normal(*shape: int) -> np.ndarray:
        return (rng.standard_normal(shape) * 0.02).astype(np.float32)

    tensors: dict[str, np.ndarray] = {"model.embed_tokens.weight": normal(vocab_size, s.hidden)}
    for i in range(s.layers):
        p = f"model.layers.{i}"
        tensors[f"{p}.input_layernorm.weight"] = np.ones(s.hidden, dtype=np.float32)
        tensors[f"{p}.self_attn.q_proj.weight"] = normal(s.heads * s.head_dim, s.hidden)
        tensors[f"{p}.self_attn.q_proj.bias"] = normal(s.heads * s.head_dim)
        tensors[f"{p}.self_attn.k_proj.weight"] = normal(s.kv_heads * s.head_dim, s.hidden)
        tensors[f"{p}.self_attn.k_proj.bias"] = normal(s.kv_heads * s.head_dim)
        tensors[f"{p}.self_attn.v_proj.weight"] = normal(s.kv_heads * s.head_dim, s.hidden)
        tensors[f"{p}.self_attn.v_proj.bias"] = normal(s.kv_heads * s.head_dim)
        tensors[f"{p}.self_attn.o_proj.weight"] = normal(s.hidden, s.heads * s.head_dim)
        tensors[f"{p}.post_attention_layernorm.weight"] = np.ones(s.hidden, dtype=np.float32)
        tensors[f"{p}.mlp.gate_proj.weight"] = normal(s.intermediate, s.hidden)
        tensors[f"{p}.mlp.up_proj.weight"] = normal(s.intermediate, s.hidden)
        tensors[f"{p}.mlp.down_proj.weight"] = normal(s.hidden, s.intermediate)
    tensors["model.norm.weight"] = np.ones(s.hidden, dtype=np.float32)
    tensors["lm_head.weight"] = normal(vocab_size, s.hidden)

    # The constant channel: 0.1 against ~0.02 per other channel, so always clearly positive.
    tensors["model.embed_tokens.weight"][:, 0] = 0.1
    for i in range(s.layers):
        tensors[f"model.layers.{i}.self_attn.o_proj.weight"][0, :] = 0.0
        tensors[f"model.layers.{i}.mlp.down_proj.weight"][0, :] = 0.0
    head = tensors["lm_head.weight"]
    head[:, 0] = 0.0  # no token gets a fixed bias from the constant
    head[silent_ids, :] = 0.0
    head[silent_ids, 0] = -4.0  # logit about -16 against about +-0.15 for the others
    return tensors


def embedding_weights(vocab_size: int, seed: int) -> dict[str, np.ndarray]:
    """Qwen3Model tensors by Qwen3-Embedding-0.6B's checkpoint names (no ``model.`` prefix, no
    head: the embeddings are tied), in a fixed order.

    Random attention would make every text's last hidden state about the same vector (the
    <|endoftext|> embedding), so the attention is set to average instead: queries are zero, hence
    every past token gets the same weight, and values and output copy the first half of the
    normalized residual. The pooled vector is then mostly the mean of the text's token embeddings:
    texts that share tokens get close vectors, which a retrieval check can see.
    """
    s = EMBED_SHAPE
    rng = np.random.Generator(np.random.PCG64(seed))

    def normal(*shape: int) -> np.ndarray:
        return (rng.standard_normal(shape) * 0.02).astype(np.float32)

    kv_dim = s.kv_heads * s.head_dim
    group = s.heads // s.kv_heads
    value = np.eye(kv_dim, s.hidden, dtype=np.float32)
    output = np.zeros((s.hidden, s.heads * s.head_dim), dtype=np.float32)
    for kv in range(s.kv_heads):
        # The first query head of each group writes its KV head's slice back in place.
        head = kv * group
        span = slice(kv * s.head_dim, (kv + 1) * s.head_dim)
        output[span, head * s.head_dim : (head + 1) * s.head_dim] = np.eye(s.head_dim, dtype=np.float32)

    tensors: dict[str, np.ndarray] = {"embed_tokens.weight": normal(vocab_size, s.hidden)}
    for i in range(s.layers):
        p = f"layers.{i}"
        tensors[f"{p}.input_layernorm.weight"] = np.ones(s.hidden, dtype=np.float32)
        tensors[f"{p}.self_attn.q_proj.weight"] = np.zeros((s.heads * s.head_dim, s.hidden), dtype=np.float32)
        tensors[f"{p}.self_attn.k_proj.weight"] = normal(kv_dim, s.hidden)
        tensors[f"{p}.self_attn.v_proj.weight"] = value.copy()
        tensors[f"{p}.self_attn.o_proj.weight"] = output.copy()
        tensors[f"{p}.self_attn.q_norm.weight"] = np.ones(s.head_dim, dtype=np.float32)
        tensors[f"{p}.self_attn.k_norm.weight"] = np.ones(s.head_dim, dtype=np.float32)
        tensors[f"{p}.post_attention_layernorm.weight"] = np.ones(s.hidden, dtype=np.float32)
        tensors[f"{p}.mlp.gate_proj.weight"] = normal(s.intermediate, s.hidden)
        tensors[f"{p}.mlp.up_proj.weight"] = normal(s.intermediate, s.hidden)
        tensors[f"{p}.mlp.down_proj.weight"] = normal(s.hidden, s.intermediate)
    tensors["norm.weight"] = np.ones(s.hidden, dtype=np.float32)
    return tensors


def sentence_transformers_files(hidden: int) -> dict[str, object]:
    """What Qwen3-Embedding-0.6B's revision 97b0c614 adds for Sentence Transformers: the module
    list, last-token pooling with normalization, and the query/document prompts. vLLM reads the
    pooling from these files."""
    return {
        "modules.json": [
            {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
            {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
            {"idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"},
        ],
        "1_Pooling/config.json": {
            "word_embedding_dimension": hidden,
            "pooling_mode_cls_token": False,
            "pooling_mode_mean_tokens": False,
            "pooling_mode_max_tokens": False,
            "pooling_mode_mean_sqrt_len_tokens": False,
            "pooling_mode_weightedmean_tokens": False,
            "pooling_mode_lasttoken": True,
            "include_prompt": True,
        },
        "config_sentence_transformers.json": {
            "prompts": {
                "query": "Instruct: Given a code search query, retrieve code that answers it\nQuery:",
                "document": "",
            },
            "default_prompt_name": None,
            "similarity_fn_name": "cosine",
        },
    }


def split_shards(tensors: dict[str, np.ndarray], shards: int) -> list[list[str]]:
    """Cut the ordered tensor list into `shards` contiguous, non-empty runs of similar byte size."""
    names = list(tensors)
    if not 1 <= shards <= len(names):
        raise ValueError(f"shards must be between 1 and {len(names)} (the number of tensors), got {shards}")
    target = sum(t.nbytes for t in tensors.values()) / shards
    groups: list[list[str]] = [[]]
    filled = 0
    for index, name in enumerate(names):
        unopened = shards - len(groups)
        full = filled >= target * len(groups)
        if groups[-1] and unopened and (full or len(names) - index == unopened):
            groups.append([])
        groups[-1].append(name)
        filled += tensors[name].nbytes
    return groups


def _write_json(path: Path, data: object) -> None:
    path.write_text(json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False) + "\n", encoding="utf-8")


# Files a role writes besides the weights, removed by --force when another role wrote them.
_ROLE_FILES = ("modules.json", "config_sentence_transformers.json", "1_Pooling/config.json")


def generate(
    outdir: Path | str, seed: int = 0, shards: int = 1, force: bool = False, role: str = "chat"
) -> Path:
    """Write the tiny model of `role` into `outdir` and return that path.

    Refuses a non-empty `outdir` unless `force`; with `force` the model files are overwritten and
    any earlier shards, index or other role's files are removed.
    """
    out = Path(outdir)
    if role not in ROLES:
        raise ValueError(f"role must be one of {', '.join(ROLES)}, got {role!r}")
    if seed < 0:
        raise ValueError(f"seed must be >= 0, got {seed}")
    if out.exists() and not out.is_dir():
        raise FileExistsError(f"{out} exists and is not a directory")
    if out.is_dir() and any(out.iterdir()) and not force:
        raise FileExistsError(f"{out} is not empty; pass --force (force=True) to overwrite its model files")

    tokenizer = train_tokenizer(role)
    vocab_size = tokenizer.get_vocab_size(with_added_tokens=True)
    if role == "embed":
        tensors = embedding_weights(vocab_size, seed)
    else:
        silent = [tokenizer.token_to_id(t) for t in _special_tokens(role)]
        tensors = random_weights(vocab_size, seed, silent)
    groups = split_shards(tensors, shards)

    out.mkdir(parents=True, exist_ok=True)
    for stale in [*out.glob("model*.safetensors"), out / "model.safetensors.index.json"]:
        stale.unlink(missing_ok=True)
    for name in _ROLE_FILES:
        (out / name).unlink(missing_ok=True)
    if (out / "1_Pooling").is_dir() and not any((out / "1_Pooling").iterdir()):
        (out / "1_Pooling").rmdir()

    metadata = {"format": "pt"}
    if shards == 1:
        save_file(tensors, str(out / "model.safetensors"), metadata=metadata)
    else:
        weight_map: dict[str, str] = {}
        for number, names in enumerate(groups, start=1):
            filename = f"model-{number:05d}-of-{shards:05d}.safetensors"
            save_file({n: tensors[n] for n in names}, str(out / filename), metadata=metadata)
            weight_map.update(dict.fromkeys(names, filename))
        total_size = sum(t.nbytes for t in tensors.values())
        _write_json(
            out / "model.safetensors.index.json",
            {"metadata": {"total_size": total_size}, "weight_map": weight_map},
        )

    _write_json(out / "config.json", model_config(vocab_size, tokenizer, role))
    _write_json(out / "generation_config.json", generation_config(tokenizer, role))
    _write_json(out / "tokenizer_config.json", tokenizer_config(tokenizer, role))
    if role == "embed":
        for name, data in sentence_transformers_files(EMBED_SHAPE.hidden).items():
            (out / name).parent.mkdir(exist_ok=True)
            _write_json(out / name, data)
    # Tokenizer.save writes pretty JSON with the vocabulary ordered by id: stable bytes.
    tokenizer.save(str(out / "tokenizer.json"), pretty=True)
    return out


def parameter_count(model_dir: Path) -> int:
    """Number of weights stored in the directory's safetensors files."""
    count = 0
    for path in sorted(model_dir.glob("model*.safetensors")):
        with safe_open(str(path), framework="numpy") as handle:
            for name in handle.keys():  # noqa: SIM118 (safe_open is not a mapping)
                count += math.prod(handle.get_slice(name).get_shape())
    return count


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="aimachine-tiny-model",
        description="Write a tiny random-weight model of one served role (weights, tokenizer) for tests.",
    )
    parser.add_argument("outdir", type=Path, help="directory to create (must be empty unless --force)")
    parser.add_argument(
        "--role",
        choices=ROLES,
        default="chat",
        help="chat (Qwen2, ChatML), autocomplete (Qwen2 with FIM tokens) or embed (Qwen3 embedding model)",
    )
    parser.add_argument("--seed", type=int, default=0, help="weight seed; same seed gives identical files")
    parser.add_argument("--shards", type=int, default=1, help="safetensors shards (>1 adds an index)")
    parser.add_argument("--force", action="store_true", help="overwrite model files in a non-empty directory")
    args = parser.parse_args(argv)
    try:
        out = generate(args.outdir, seed=args.seed, shards=args.shards, force=args.force, role=args.role)
    except (FileExistsError, ValueError) as error:
        parser.exit(2, f"aimachine-tiny-model: error: {error}\n")

    config = json.loads((out / "config.json").read_text(encoding="utf-8"))
    params = parameter_count(out)
    for path in sorted(p for p in out.rglob("*") if p.is_file()):
        print(f"{path.stat().st_size:>10,d}  {path}")
    family = config["architectures"][0].removesuffix("ForCausalLM")
    print(
        f"{family} tiny {args.role} model: {params:,d} parameters, vocab {config['vocab_size']}, "
        f"{config['num_hidden_layers']} layers, hidden {config['hidden_size']}, dtype {config['torch_dtype']}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
