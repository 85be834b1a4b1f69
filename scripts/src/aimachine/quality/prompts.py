"""What the model is asked: chat messages for instruct models, plain prompts for completion mode."""

from __future__ import annotations

from aimachine.quality.datasets import Problem

CHAT_INSTRUCTION = (
    "Write a self-contained Python solution: include every import it needs and the complete "
    "function(s). Reply with the code in a single ```python code block."
)

# The stop sequences of the HumanEval paper (Chen et al. 2021): the function body ends where a new
# top-level statement starts.
HUMANEVAL_STOPS = ["\nclass", "\ndef", "\n#", "\nif", "\nprint"]
# MBPP completions write whole functions (helpers included): stop only at test or usage code.
MBPP_STOPS = ["\nassert", '\n"""', "\nif __name__", "\nprint(", "\n```"]


def chat_messages(problem: Problem) -> list[dict[str, str]]:
    if problem.suite == "humaneval":
        body = (
            f"Complete this Python function.\n\n```python\n{problem.text.strip()}\n```\n\n{CHAT_INSTRUCTION}"
        )
    else:
        tests = "\n".join(problem.examples)
        body = (
            f"{problem.text}\nYour code should pass these tests:\n\n"
            f"```python\n{tests}\n```\n\n{CHAT_INSTRUCTION}"
        )
    return [{"role": "user", "content": body}]


def completion_prompt(problem: Problem) -> tuple[str, list[str]]:
    """(prompt, stop sequences) for a base model continuing plain text."""
    if problem.suite == "humaneval":
        return problem.text, HUMANEVAL_STOPS
    return f'"""\n{problem.text}\n{problem.examples[0]}\n"""\n', MBPP_STOPS


def completion_source(problem: Problem, completion: str) -> str:
    """The code a completion-mode answer stands for: HumanEval continues the prompt."""
    if problem.suite == "humaneval":
        return problem.text + completion
    return completion
