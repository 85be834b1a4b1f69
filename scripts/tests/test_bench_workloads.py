"""Prompts of an exact token length, the coding prompt set, and Poisson arrivals."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from aimachine.bench.workloads import (
    ModelTokenizer,
    WorkloadError,
    coding_prompts,
    concurrency_levels,
    cycle,
    poisson_arrivals,
    random_prompts,
    rate_levels,
)

STAND_IN = Path(__file__).resolve().parents[3] / "shared" / "gpu" / "stand-in-tokenizer"


@pytest.fixture(scope="module")
def tiny(tiny_model_dir: Path) -> ModelTokenizer:
    return ModelTokenizer(tiny_model_dir)


def transformers_chat_tokens(model_dir: Path, content: str) -> int:
    """The count transformers itself makes (what `transformers serve` puts in usage.prompt_tokens)."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(model_dir))
    ids = tokenizer.apply_chat_template(
        [{"role": "user", "content": content}], add_generation_prompt=True, tokenize=True, return_dict=False
    )
    return len(ids)


@pytest.mark.e2e  # importing transformers takes several seconds
def test_chat_prompts_have_exactly_n_tokens_as_transformers_counts_them(
    tiny: ModelTokenizer, tiny_model_dir: Path
):
    prompts = random_prompts(tiny, "chat", 77, number=4, seed=1)
    assert len({p.text for p in prompts}) == 4  # distinct: no prefix cache can help
    for prompt in prompts:
        assert prompt.target_tokens == 77
        assert transformers_chat_tokens(tiny_model_dir, prompt.text) == 77


def test_completion_prompts_have_exactly_n_raw_tokens(tiny: ModelTokenizer) -> None:
    for n in (1, 2, 33, 1000):
        (prompt,) = random_prompts(tiny, "completions", n, number=1, seed=n)
        assert len(tiny.tokenizer.encode(prompt.text).ids) == n


def test_same_seed_same_prompts(tiny: ModelTokenizer) -> None:
    assert random_prompts(tiny, "chat", 50, 3, seed=5) == random_prompts(tiny, "chat", 50, 3, seed=5)
    assert random_prompts(tiny, "chat", 50, 3, seed=5) != random_prompts(tiny, "chat", 50, 3, seed=6)


@pytest.mark.e2e
def test_chat_template_renders_like_transformers(tiny: ModelTokenizer, tiny_model_dir: Path) -> None:
    from transformers import AutoTokenizer

    expected = AutoTokenizer.from_pretrained(str(tiny_model_dir)).apply_chat_template(
        [{"role": "user", "content": "def f(x):\n    return x"}], add_generation_prompt=True, tokenize=False
    )
    assert tiny.render_chat("def f(x):\n    return x") == expected


def test_stand_in_tokenizer_with_a_separate_template_file() -> None:
    if not STAND_IN.is_dir():
        pytest.skip(f"{STAND_IN} not present")
    tokenizer = ModelTokenizer(STAND_IN)
    assert tokenizer.chat_template is not None  # from chat_template.jinja
    count = tokenizer.counter("chat")
    (prompt,) = random_prompts(tokenizer, "chat", 200, number=1, seed=0)
    assert count(prompt.text) == 200


def test_too_short_and_missing_files_are_clear_errors(tiny: ModelTokenizer, tmp_path: Path) -> None:
    overhead = tiny.counter("chat")("")
    with pytest.raises(WorkloadError, match=f"not above the {overhead} tokens"):
        random_prompts(tiny, "chat", overhead, 1, seed=0)
    with pytest.raises(WorkloadError, match=r"no tokenizer\.json"):
        ModelTokenizer(tmp_path)


def test_coding_prompt_set() -> None:
    prompts = coding_prompts()
    assert len(prompts) >= 20
    ids = [p.source for p in prompts]
    assert len(set(ids)) == len(ids)
    assert all(len(p.text) > 80 and p.target_tokens is None for p in prompts)
    assert cycle(prompts, 3, offset=len(prompts) - 1) == [prompts[-1], prompts[0], prompts[1]]


def test_levels_defaults_and_validation() -> None:
    levels = concurrency_levels([1, 2, 4, 8, 16, 32], None)
    assert [(lv.name, lv.num_requests) for lv in levels] == [
        ("c1", 8),
        ("c2", 8),
        ("c4", 16),
        ("c8", 32),
        ("c16", 64),
        ("c32", 128),
    ]
    assert [lv.num_requests for lv in concurrency_levels([1, 8], 5)] == [5, 5]
    with pytest.raises(WorkloadError):
        concurrency_levels([0], None)
    with pytest.raises(WorkloadError):
        rate_levels([0.0], None, None)
    assert rate_levels([2.5], None, 4)[0].num_requests == 25


def test_poisson_arrivals_have_exponential_gaps() -> None:
    rng = np.random.default_rng(0)
    times = poisson_arrivals(20000, rate=4.0, rng=rng)
    gaps = np.diff(times)
    assert times[0] == 0.0 and np.all(gaps >= 0)
    assert gaps.mean() == pytest.approx(0.25, rel=0.03)
    assert gaps.std() == pytest.approx(0.25, rel=0.05)  # exponential: std equals mean
    # A Poisson process: counts in 1 s windows have variance equal to their mean (4).
    counts = np.bincount(np.floor(times).astype(int))[:-1]
    assert counts.mean() == pytest.approx(4.0, rel=0.05)
    assert counts.var() == pytest.approx(4.0, rel=0.15)
