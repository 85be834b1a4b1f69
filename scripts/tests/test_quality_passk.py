"""pass@k against values worked out by hand from 1 - C(n-c, k) / C(n, k)."""

from __future__ import annotations

import math
import random

import pytest
from aimachine.quality.passk import mean_pass_at_k, pass_at_k, standard_error


@pytest.mark.parametrize(
    ("n", "c", "k", "expected"),
    [
        (1, 1, 1, 1.0),
        (1, 0, 1, 0.0),
        (5, 2, 1, 2 / 5),  # pass@1 is c/n
        (5, 2, 2, 1 - 3 / 10),  # C(3,2)=3, C(5,2)=10
        (10, 3, 5, 1 - 21 / 252),  # C(7,5)=21, C(10,5)=252
        (10, 0, 10, 0.0),
        (10, 1, 10, 1.0),  # every draw of 10 from 10 includes the correct one
        (4, 2, 3, 1.0),  # n-c < k: any 3 of 4 include a correct one
        (200, 1, 100, 0.5),  # C(199,100)/C(200,100) = 100/200
    ],
)
def test_hand_computed_values(n: int, c: int, k: int, expected: float) -> None:
    assert pass_at_k(n, c, k) == pytest.approx(expected, abs=1e-12)


def test_agrees_with_exact_binomials() -> None:
    rng = random.Random(11)
    for _ in range(300):
        n = rng.randint(1, 60)
        c = rng.randint(0, n)
        k = rng.randint(1, n)
        exact = 1 - math.comb(n - c, k) / math.comb(n, k)
        assert pass_at_k(n, c, k) == pytest.approx(exact, abs=1e-12)


def test_large_n_stays_finite_and_monotone_in_k() -> None:
    values = [pass_at_k(2000, 37, k) for k in (1, 10, 100, 1000)]
    assert values[0] == pytest.approx(37 / 2000)
    assert all(0.0 <= v <= 1.0 for v in values)
    assert values == sorted(values)


@pytest.mark.parametrize(("n", "c", "k"), [(5, 6, 1), (5, -1, 1), (5, 2, 0), (5, 2, 6)])
def test_rejects_impossible_arguments(n: int, c: int, k: int) -> None:
    with pytest.raises(ValueError, match="need"):
        pass_at_k(n, c, k)


def test_mean_over_problems() -> None:
    assert mean_pass_at_k([(5, 2), (5, 5)], 1) == pytest.approx((0.4 + 1.0) / 2)
    with pytest.raises(ValueError, match="no problems"):
        mean_pass_at_k([], 1)


def test_binomial_standard_error() -> None:
    # 139 of 164 correct (about Qwen2.5-7B's published 84.8%): sqrt(p(1-p)/N) = 0.0281.
    scores = [1.0] * 139 + [0.0] * 25
    p = 139 / 164
    assert standard_error(scores) == pytest.approx(math.sqrt(p * (1 - p) / 164))
    assert standard_error(scores) == pytest.approx(0.0281, abs=5e-4)
    assert standard_error([1.0] * 10) == 0.0
