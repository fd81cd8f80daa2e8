"""Paired comparisons of two strategies on the same questions (issue 14, step 5): a
percentile-bootstrap interval of the mean difference, McNemar's exact test where scores
are 0/1, and Holm's step-down correction across a family of tests. Pure Python."""
from __future__ import annotations

import math
import random
from typing import Sequence


def mean_ci(values: Sequence[float], level: float = 0.95, samples: int = 4000,
            seed: int = 0) -> tuple[float, float, float]:
    """(mean, lower, upper): percentile-bootstrap interval of the mean of ``values``."""
    if not values:
        raise ValueError("an interval needs at least one value")
    values = list(values)
    mean = sum(values) / len(values)
    rng = random.Random(seed)
    draws = sorted(sum(rng.choice(values) for _ in values) / len(values) for _ in range(samples))
    tail = (1 - level) / 2
    return mean, draws[int(tail * samples)], draws[min(samples - 1, int((1 - tail) * samples))]


def mean_difference_ci(a: Sequence[float], b: Sequence[float], level: float = 0.95, samples: int = 4000,
                       seed: int = 0) -> tuple[float, float, float]:
    """(mean of a - b, lower, upper): questions resampled with replacement, pairs kept together."""
    if len(a) != len(b) or not a:
        raise ValueError("paired scores need the same, non-zero number of questions")
    return mean_ci([x - y for x, y in zip(a, b)], level, samples, seed)


def mcnemar_exact(a: Sequence[float], b: Sequence[float]) -> tuple[int, int, float]:
    """(questions only a got right, only b got right, two-sided exact p-value) for 0/1
    scores (a score counts as right when it is 1)."""
    only_a = sum(1 for x, y in zip(a, b) if x >= 1 > y)
    only_b = sum(1 for x, y in zip(a, b) if y >= 1 > x)
    n = only_a + only_b
    if n == 0:
        return 0, 0, 1.0
    k = min(only_a, only_b)
    tail = sum(math.comb(n, i) for i in range(k + 1)) / 2 ** n
    return only_a, only_b, min(1.0, 2 * tail)


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm-adjusted p-values, in the input's order (monotone, capped at 1)."""
    order = sorted(range(len(p_values)), key=lambda i: p_values[i])
    adjusted, running = [0.0] * len(p_values), 0.0
    for rank, index in enumerate(order):
        running = max(running, min(1.0, (len(p_values) - rank) * p_values[index]))
        adjusted[index] = running
    return adjusted
