"""Code extraction from chat answers written the way instruct models write them.

Each answer is run through `extract_code`; the result must define a working entry point and must
not carry the usage examples, prints, tests or main sections around it.
"""

from __future__ import annotations

import ast
from collections.abc import Callable

import pytest
from aimachine.quality.extract import extract_code, fenced_blocks, prose, truncate_completion

PROSE_AND_BLOCK = '''Here's a Python function that checks whether any two numbers in the list are closer \
to each other than the given threshold:

```python
from typing import List


def has_close_elements(numbers: List[float], threshold: float) -> bool:
    """Return True if any two numbers are closer than threshold."""
    sorted_numbers = sorted(numbers)
    for a, b in zip(sorted_numbers, sorted_numbers[1:]):
        if b - a < threshold:
            return True
    return False
```

### Explanation:
1. **Sorting**: after sorting, the closest pair is always adjacent.
2. **Pairwise check**: `zip` walks over neighbouring pairs.

This runs in O(n log n) time.
'''

SOLUTION_THEN_USAGE_THEN_TESTS = """Sure! Below is the implementation.

```python
import math
import unittest

EPSILON = 1e-9


def _digits(n):
    return [int(d) for d in str(abs(n))]


def digit_sum(n: int) -> int:
    return sum(_digits(n))
```

### Example usage

```python
print(digit_sum(123))   # 6
print(digit_sum(-45))   # 9
```

You can also verify it with a few unit tests:

```python
class TestDigitSum(unittest.TestCase):
    def test_basic(self):
        self.assertEqual(digit_sum(123), 6)


if __name__ == "__main__":
    unittest.main()
```
"""

MAIN_SECTION_AND_PRINTS = """```python
def fizzbuzz(n):
    out = []
    for i in range(1, n + 1):
        out.append("FizzBuzz" if i % 15 == 0 else "Fizz" if i % 3 == 0 else "Buzz" if i % 5 == 0 else str(i))
    return out

print(fizzbuzz(5))

if __name__ == "__main__":
    import sys
    print(fizzbuzz(int(sys.argv[1])))
```
"""

UNFENCED = """To solve this, we can use a dictionary to count the occurrences.

def most_common(items):
    counts = {}
    for item in items:
        counts[item] = counts.get(item, 0) + 1
    return max(counts, key=counts.get)

For example, most_common([1, 2, 2]) returns 2.
print(most_common([1, 2, 2]))
"""

CLASS_AND_CONSTANT_DEPENDENCIES = """```py
from collections import deque

LIMIT = 3


class Window:
    def __init__(self):
        self.items = deque(maxlen=LIMIT)

    def push(self, x):
        self.items.append(x)
        return sum(self.items)


def unused_helper():
    return "not needed"


def rolling_sums(values):
    window = Window()
    return [window.push(v) for v in values]
```
"""

BINARY_SEARCH = """def binary_search(arr, target):
    left, right = 0, len(arr) - 1
    while left <= right:
        mid = (left + right) // 2
        if arr[mid] == target:
            return mid
        elif arr[mid] < target:
            left = mid + 1
        else:
            right = mid - 1
    return -1
"""
# The function twice, first with the bug (no `- 1`), then fixed: the last version is the answer.
CORRECTED_VERSION_LATER = f"""The original code has an off-by-one error:

```python
{BINARY_SEARCH.replace("len(arr) - 1", "len(arr)")}```

Here is the corrected version:

```python
{BINARY_SEARCH}```
"""

TRUNCATED = """```python
def add(a, b):
    return a + b


def multiply(a, b):
    result = 0
    for _ in range(b):
        result = add(result, a)
    return result


def power(a, b):
    result = 1
    for _ in range(
"""

THINK_AND_OTHER_LANGUAGES = """<think>
The user wants a function. Maybe ```python\ndef square(x): return x``` is wrong.
</think>
Install nothing:

```bash
pip install nothing
```

```python
def square(x: int) -> int:
    return x * x
```

Output:

```text
>>> square(4)
16
```
"""

TILDE_FENCE = """~~~python
def is_even(n):
    return n % 2 == 0
~~~
"""

BODY_ONLY = """```python
    return [x for x in strings if substring in x]
```"""

FILTER_PROMPT = '''from typing import List


def filter_by_substring(strings: List[str], substring: str) -> List[str]:
    """ Filter an input list of strings only for ones that contain given substring """
'''


def _namespace(code: str) -> dict[str, object]:
    namespace: dict[str, object] = {}
    exec(compile(code, "<extracted>", "exec"), namespace)  # our own test answers, not model output
    return namespace


def _call(code: str, name: str) -> Callable[..., object]:
    function = _namespace(code)[name]
    assert callable(function)
    return function


def _top_level_names(code: str) -> list[str]:
    names = []
    for node in ast.parse(code).body:
        if isinstance(node, ast.FunctionDef | ast.ClassDef):
            names.append(node.name)
        elif isinstance(node, ast.Import | ast.ImportFrom):
            names += [a.asname or a.name for a in node.names]
        elif isinstance(node, ast.Assign):
            names += [t.id for t in node.targets if isinstance(t, ast.Name)]
        else:
            names.append(type(node).__name__)
    return names


def test_prose_around_one_block() -> None:
    result = extract_code(PROSE_AND_BLOCK, "has_close_elements")
    assert result.method == "fenced" and result.entry_point_found
    assert _top_level_names(result.code) == ["List", "has_close_elements"]
    assert _call(result.code, "has_close_elements")([1.0, 2.8, 3.0], 0.3) is True


def test_usage_and_test_blocks_are_dropped_helpers_kept() -> None:
    result = extract_code(SOLUTION_THEN_USAGE_THEN_TESTS, "digit_sum")
    assert result.blocks == 3
    # The helper it calls stays; the unused constant, unittest and math, prints and tests go.
    assert _top_level_names(result.code) == ["_digits", "digit_sum"]
    assert _call(result.code, "digit_sum")(-45) == 9


def test_main_section_and_prints_are_dropped() -> None:
    result = extract_code(MAIN_SECTION_AND_PRINTS, "fizzbuzz")
    assert _top_level_names(result.code) == ["fizzbuzz"]
    assert "print" not in result.code and "__main__" not in result.code
    assert _call(result.code, "fizzbuzz")(15)[-1] == "FizzBuzz"


def test_unfenced_code_between_prose() -> None:
    result = extract_code(UNFENCED, "most_common")
    assert result.method == "unfenced"
    assert _top_level_names(result.code) == ["most_common"]
    assert _call(result.code, "most_common")([1, 2, 2]) == 2


def test_dependency_closure_keeps_classes_and_constants() -> None:
    result = extract_code(CLASS_AND_CONSTANT_DEPENDENCIES, "rolling_sums")
    assert _top_level_names(result.code) == ["deque", "LIMIT", "Window", "rolling_sums"]
    assert _call(result.code, "rolling_sums")([1, 2, 3, 4]) == [1, 3, 6, 9]


def test_later_definition_wins() -> None:
    result = extract_code(CORRECTED_VERSION_LATER, "binary_search")
    assert "len(arr) - 1" in result.code and result.code.count("def binary_search") == 1
    assert _call(result.code, "binary_search")([1, 3, 5], 9) == -1


def test_truncated_answer_keeps_its_complete_part() -> None:
    result = extract_code(TRUNCATED, "multiply")
    assert "a block was cut to its parseable start" in result.notes
    assert _top_level_names(result.code) == ["add", "multiply"]
    assert _call(result.code, "multiply")(3, 4) == 12


def test_think_sections_and_other_languages_are_ignored() -> None:
    result = extract_code(THINK_AND_OTHER_LANGUAGES, "square")
    assert _top_level_names(result.code) == ["square"]
    assert _call(result.code, "square")(4) == 16


def test_tilde_fence() -> None:
    assert _call(extract_code(TILDE_FENCE, "is_even").code, "is_even")(4) is True


def test_bare_body_completes_the_prompt_stub() -> None:
    result = extract_code(BODY_ONLY, "filter_by_substring", prompt=FILTER_PROMPT)
    assert result.method == "body"
    assert _call(result.code, "filter_by_substring")(["abc", "bcd", "x"], "bc") == ["abc", "bcd"]


def test_missing_entry_point_is_reported() -> None:
    result = extract_code(PROSE_AND_BLOCK, "something_else")
    assert not result.entry_point_found
    assert "entry point 'something_else' not defined" in result.notes


@pytest.mark.parametrize("text", ["", "I cannot help with that.", "```python\n```"])
def test_no_code(text: str) -> None:
    result = extract_code(text, "f")
    assert result.code.strip() == ""
    assert not result.entry_point_found


def test_unparseable_block_is_returned_for_a_syntax_verdict() -> None:
    result = extract_code("```python\ndef f(:\n    return 1\n```", "f")
    assert result.method == "unparseable"
    assert "def f(:" in result.code


def test_fenced_blocks_languages_and_unclosed_last_block() -> None:
    blocks = fenced_blocks("```Python\na = 1\n```\ntext\n````\nb = 2\n```\nstill inside\n````\n```py\nc = 3")
    assert blocks == [("python", "a = 1"), ("", "b = 2\n```\nstill inside"), ("py", "c = 3")]


def test_prose_keeps_explanations_and_drops_code() -> None:
    text = prose(PROSE_AND_BLOCK)
    assert "closest pair is always adjacent" in text and "O(n log n)" in text
    assert "sorted_numbers" not in text and "def has_close_elements" not in text
    unfenced = prose(UNFENCED)
    assert "dictionary to count" in unfenced and "counts.get" not in unfenced


def test_prose_keeps_sentences_that_start_like_code() -> None:
    answer = (
        "The function is decorated\nwith @lru_cache(maxsize=None), which caches results.\nfor each n it ..."
    )
    assert prose(answer) == answer


def test_truncate_completion_at_first_stop() -> None:
    completion = "    return x + 1\n\n\ndef other():\n    pass\nprint(1)"
    assert truncate_completion(completion, ["\ndef", "\nprint"]) == "    return x + 1\n\n"
    assert truncate_completion("    return 1", ["\ndef"]) == "    return 1"
