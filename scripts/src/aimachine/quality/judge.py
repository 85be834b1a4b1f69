"""An optional second opinion on scenario answers from an LLM judge (any OpenAI-compatible endpoint).

Off by default: the deterministic rubric is the score. The judge gets the task, the answer and the
rubric, and must reply with JSON; whatever it replies is recorded, and a reply that is not usable
JSON is recorded as such instead of failing the run.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from aimachine.quality.client import Endpoint, EndpointError
from aimachine.quality.scenarios import Scenario

SYSTEM = "You grade answers to programming tasks against a rubric. Reply with one JSON object, nothing else."


@dataclass
class JudgeResult:
    scores: dict[str, float] | None
    points: float | None
    max_points: float
    comment: str | None
    raw: str
    error: str | None = None
    unknown_keys: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, object]:
        return {
            "scores": self.scores,
            "points": self.points,
            "max_points": self.max_points,
            "comment": self.comment,
            "error": self.error,
            "raw": self.raw[:4000],
        }


def judge_prompt(scenario: Scenario, answer: str) -> str:
    rubric = "\n".join(f"- {c.id} (0 to {c.points:g} points): {c.description}" for c in scenario.criteria)
    example = ", ".join(f'"{c.id}": <number>' for c in scenario.criteria)
    return (
        f"The task given to an AI assistant:\n<task>\n{scenario.prompt.strip()}\n</task>\n\n"
        f"The assistant's answer:\n<answer>\n{answer.strip()}\n</answer>\n\n"
        f"Rubric:\n{rubric}\n\n"
        f'Reply with one JSON object: {{"scores": {{{example}}}, "comment": "<one sentence>"}}'
    )


def _json_objects(text: str) -> list[dict[str, object]]:
    decoder = json.JSONDecoder()
    found = []
    index = text.find("{")
    while index != -1:
        try:
            value, end = decoder.raw_decode(text, index)
        except json.JSONDecodeError:
            index = text.find("{", index + 1)
            continue
        if isinstance(value, dict):
            found.append(value)
        index = text.find("{", end)
    return found


def parse_verdict(text: str, scenario: Scenario) -> JudgeResult:
    """Scores from the judge's reply, clamped to each criterion's range; errors are recorded, not raised."""
    maxima = {c.id: c.points for c in scenario.criteria}
    total = scenario.max_points
    candidates = _json_objects(text)
    if not candidates:
        return JudgeResult(None, None, total, None, text, "no JSON object in the reply")
    chosen = next((c for c in candidates if isinstance(c.get("scores"), dict)), candidates[0])
    raw_scores = chosen.get("scores") if isinstance(chosen.get("scores"), dict) else chosen
    scores: dict[str, float] = {}
    unknown = []
    for key, value in raw_scores.items():  # type: ignore[union-attr]
        if key not in maxima:
            unknown.append(str(key))
            continue
        if isinstance(value, bool) or not isinstance(value, int | float | str):
            continue  # true/false or a nested object is no score
        try:
            number = float(value)
        except ValueError:
            continue
        scores[key] = min(max(number, 0.0), maxima[key])
    comment = chosen.get("comment")
    missing = [cid for cid in maxima if cid not in scores]
    if missing:
        return JudgeResult(
            scores or None,
            None,
            total,
            comment if isinstance(comment, str) else None,
            text,
            "no usable score for " + ", ".join(missing),
            unknown,
        )
    return JudgeResult(
        scores,
        round(sum(scores.values()), 2),
        total,
        comment if isinstance(comment, str) else None,
        text,
        None,
        unknown,
    )


async def judge_answer(
    endpoint: Endpoint, scenario: Scenario, answer: str, max_tokens: int = 512
) -> JudgeResult:
    messages = [
        {"role": "system", "content": SYSTEM},
        {"role": "user", "content": judge_prompt(scenario, answer)},
    ]
    try:
        reply = await endpoint.chat(messages, max_tokens=max_tokens, temperature=0.0, seed=0)
    except EndpointError as error:
        return JudgeResult(None, None, scenario.max_points, None, "", f"request failed: {error}")
    return parse_verdict(reply.text, scenario)
