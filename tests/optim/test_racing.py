"""Racing drops candidates significantly worse than the leader and keeps the rest ranked."""

from __future__ import annotations

from graphopt.optim.racing import race, significantly_worse


def test_a_consistently_worse_candidate_is_significantly_worse():
    assert significantly_worse([0, 0, 0, 1], [1, 1, 1, 1], z=1.64)


def test_noise_and_single_examples_are_not_significant():
    assert not significantly_worse([1, 0, 1, 0], [0, 1, 1, 0], z=1.64)
    assert not significantly_worse([0], [1], z=1.64)


def test_race_stops_scoring_dropped_candidates():
    truth = {0: [1.0] * 12, 1: [0.0] * 12, 2: [1.0, 0.0] * 6}
    asked: list[tuple[int, list[int]]] = []

    def score_block(candidate, indices):
        asked.append((candidate, list(indices)))
        return [truth[candidate][i] for i in indices]

    scores, alive = race(3, score_block, examples=12, block_size=4, keep=1, z=1.64)
    assert alive[0] == 0
    assert len(scores[1]) == 4  # dropped after the first block
    assert 1 not in alive
    assert sum(len(i) for c, i in asked if c == 0) >= len(scores[2])
