"""Published scores to compare with, each with its source (from the project's REFERENCES.md)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Reference:
    suite: str
    model: str
    percent: float
    source: str


QWEN_BLOG = "Qwen2.5 release blog (qwenlm.github.io/blog/qwen2.5-llm); harness not named"
ORIGIN = "origin document (its stated source)"

REFERENCES: tuple[Reference, ...] = (
    Reference("humaneval", "Qwen2.5-7B-Instruct", 84.8, QWEN_BLOG),
    Reference("humaneval", "GPT-4o", 90.2, ORIGIN),
    Reference("humaneval", "Claude 3.5 Sonnet", 92.0, ORIGIN),
    Reference("humaneval", "Claude Sonnet 4", 95.1, ORIGIN),
    Reference("mbpp", "Qwen2.5-7B-Instruct", 79.2, QWEN_BLOG + "; MBPP variant not stated"),
)


def references_for(suite: str) -> list[Reference]:
    return [r for r in REFERENCES if r.suite == suite]
