"""The one-pass walks agree with their definitions on random graphs (diamonds, repeated parents,
several outputs, frozen params)."""

import random

import pytest

import graphopt as go
from graphopt.graph.walk import minimal_subgraph, topological_order


def _random_graph(rng):
    leaves = [go.param(i, name=f"p{i}", trainable=rng.random() < 0.6) for i in range(rng.randint(1, 4))]
    pool = list(leaves)
    for _ in range(rng.randint(0, 25)):
        left, right = rng.choice(pool), rng.choice(pool)  # may be the same node twice
        pool.append(left + right if rng.random() < 0.7 else left * 2)
    return rng.sample(pool, rng.randint(1, min(3, len(pool))))


def _reachable(outputs):
    seen, stack = set(), list(outputs)
    while stack:
        node = stack.pop()
        if node not in seen:
            seen.add(node)
            stack.extend(node.parents)
    return seen


def _reaches(source, target):
    return source is target or any(_reaches(source, parent) for parent in target.parents)


@pytest.mark.parametrize("seed", range(40))
def test_walks_match_their_definitions(seed):
    outputs = _random_graph(random.Random(seed))
    order = topological_order(outputs)
    assert set(order) == _reachable(outputs) and len(order) == len(set(order))
    position = {node: i for i, node in enumerate(order)}
    assert all(position[parent] < position[node] for node in order for parent in node.parents)

    sub = minimal_subgraph(outputs)
    trainable = [n for n in order if isinstance(n, go.Param) and n.trainable]
    assert sub.params == trainable
    assert sub.nodes == [n for n in order if any(_reaches(p, n) for p in trainable)]
    assert sub.outputs == tuple(outputs)


def test_first_parents_come_first():
    a, b = go.param("a", name="a"), go.param("b", name="b")
    left, right = a + "x", b + "y"
    out = left + right
    assert topological_order([out]) == [a, left, b, right, out]
    assert minimal_subgraph([out]).nodes == [a, left, b, right, out]
