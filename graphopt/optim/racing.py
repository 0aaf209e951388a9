"""Racing: score candidates on growing blocks of examples, dropping the significantly worse.

As in CAPO (Zehle et al., 2025): every surviving candidate is scored on the same next block;
after each block a candidate whose paired score differences against the current leader are
significantly negative is dropped; the race ends when few enough candidates survive or the
examples run out. Pure functions over score lists, so optimizers stay thin.
"""

from __future__ import annotations

import math
from typing import Callable, Sequence

ScoreBlock = Callable[[int, Sequence[int]], list[float]]


def significantly_worse(candidate: Sequence[float], leader: Sequence[float], z: float) -> bool:
    """True when ``leader - candidate`` (paired by example) has a confidence bound above zero."""
    n = len(candidate)
    if n < 2 or n != len(leader):
        return False
    diffs = [b - a for a, b in zip(candidate, leader)]
    mean = sum(diffs) / n
    if mean <= 0:
        return False
    variance = sum((d - mean) ** 2 for d in diffs) / (n - 1)
    return mean - z * math.sqrt(variance / n) > 0


def race(count: int, score_block: ScoreBlock, *, examples: int, block_size: int, keep: int,
         z: float) -> tuple[dict[int, list[float]], list[int]]:
    """Race ``count`` candidates over ``examples`` examples in blocks of ``block_size``.

    ``score_block(candidate, indices)`` returns one score per index. Returns every candidate's
    scores so far and the indices of those still in the race, best mean first.
    """
    scores: dict[int, list[float]] = {i: [] for i in range(count)}
    alive = list(range(count))
    done = 0
    while done < examples and alive:
        block = list(range(done, min(done + block_size, examples)))
        for candidate in alive:
            scores[candidate].extend(score_block(candidate, block))
        done = block[-1] + 1
        leader = max(alive, key=lambda i: (mean(scores[i]), -i))
        alive = [i for i in alive
                 if i == leader or not significantly_worse(scores[i], scores[leader], z)]
        if len(alive) <= keep:
            break
    alive.sort(key=lambda i: (-mean(scores[i]), i))
    return scores, alive


def mean(values: Sequence[float]) -> float:
    """The mean, ``-inf`` for no values."""
    return sum(values) / len(values) if values else -math.inf
