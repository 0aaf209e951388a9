"""Tracing and backward cost per node for chain, fan-in and tree graphs at 1k, 10k, 100k ops.

``minimal_node`` builds the same chain from a bare slotted class (micrograd's shape), so the
ratio of graphopt's tracing to the floor is read within one run.
"""

from __future__ import annotations

import itertools

import pytest

import graphopt as go
from graphopt.graph.walk import minimal_subgraph

SIZES = [1_000, 10_000, 100_000]
_ids = itertools.count()


class MinimalNode:
    __slots__ = ("value", "parents", "op", "id")

    def __init__(self, value, parents, op):
        self.value = value
        self.parents = parents
        self.op = op
        self.id = next(_ids)


def minimal_chain(n):
    node = MinimalNode(0, (), None)
    for _ in range(n):
        node = MinimalNode(node.value + 1, (node,), "add")
    return node


def chain(n):
    node = go.param(0, name="p")
    for _ in range(n):
        node = node + 1
    return node


@go.op
def combine(a, b):
    """a + b"""
    return a + b


def leaves(n):
    return [go.param(i, name=f"p{i}") for i in range(n)]


def fan_in(n, params=None):
    params = params if params is not None else leaves(n)
    total = params[0]
    for p in params[1:]:
        total = combine(total, p)
    return total


def tree(n, params=None):
    level = params if params is not None else leaves(n // 2 + 1)
    while len(level) > 1:
        level = [level[i] + level[i + 1] if i + 1 < len(level) else level[i] for i in range(0, len(level), 2)]
    return level[0]


@pytest.mark.parametrize("n", SIZES)
def test_trace_minimal_node_floor(benchmark, n):
    benchmark.group = f"trace-{n}"
    benchmark.extra_info["per_op_us"] = None
    benchmark.pedantic(minimal_chain, args=(n,), rounds=5, iterations=1)
    benchmark.extra_info["per_op_us"] = benchmark.stats.stats.median / n * 1e6


@pytest.mark.parametrize("shape", ["chain", "fan_in", "tree"])
@pytest.mark.parametrize("n", SIZES)
def test_trace(benchmark, shape, n):
    """Ops only: the leaf parameters of fan-in and tree are made outside the timed region."""
    benchmark.group = f"trace-{n}"
    if shape == "chain":
        benchmark.pedantic(chain, args=(n,), rounds=5, iterations=1)
    else:
        build = {"fan_in": fan_in, "tree": tree}[shape]
        count = n if shape == "fan_in" else n // 2 + 1
        benchmark.pedantic(build, setup=lambda: ((n, leaves(count)), {}), rounds=5, iterations=1)
    benchmark.extra_info["per_op_us"] = benchmark.stats.stats.median / n * 1e6


@pytest.mark.parametrize("shape", ["chain", "fan_in", "tree"])
@pytest.mark.parametrize("n", SIZES)
def test_backward(benchmark, shape, n):
    output = {"chain": chain, "fan_in": fan_in, "tree": tree}[shape](n)

    def run():
        go.backward(output, "feedback")
        for p in minimal_subgraph([output]).params:
            p.feedback.clear()

    benchmark.group = f"backward-{shape}"
    benchmark.pedantic(run, rounds=5, iterations=1)
    benchmark.extra_info["per_node_us"] = benchmark.stats.stats.median / n * 1e6
