"""Tracing and backward cost per node for chain, fan-in and tree graphs at 1k, 10k, 100k and 1M ops.

``minimal_node`` builds the same chain from a bare slotted class (micrograd's shape), so the
ratio of graphopt's tracing to the floor is read within one run. ``python benchmarks/bench_graph.py``
prints the median µs per op of ``ROUNDS`` builds (``ROUNDS_LARGE`` at 1M), each shape in a fresh
process, the exponent between sizes (1.0 is linear: flat µs/op) and the spread (fastest–slowest
build) below, since a shared machine's load moves single builds; the 1M sizes run one timed round
under pytest-benchmark.
"""

from __future__ import annotations

import gc
import itertools
import json
import math
import os
import statistics
import subprocess
import sys
import time

import pytest

import graphopt as go
from graphopt.graph.walk import minimal_subgraph

SIZES = [1_000, 10_000, 100_000, 1_000_000]
ROUNDS = 5
ROUNDS_LARGE = 3
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


def op_chain(n):
    node = go.param(0, name="p")
    for _ in range(n):
        node = combine(node, node)
    return node


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


BUILDERS = {"chain": chain, "op_chain": op_chain, "fan_in": fan_in, "tree": tree}


def _rounds(n):
    return 1 if n >= 1_000_000 else 5


def _per(benchmark, key, n):
    if benchmark.stats is not None:  # None under --benchmark-disable
        benchmark.extra_info[key] = benchmark.stats.stats.median / n * 1e6


@pytest.mark.parametrize("n", SIZES)
def test_trace_minimal_node_floor(benchmark, n):
    benchmark.group = f"trace-{n}"
    benchmark.pedantic(minimal_chain, args=(n,), rounds=_rounds(n), iterations=1)
    _per(benchmark, "per_op_us", n)


@pytest.mark.parametrize("n", SIZES)
def test_params(benchmark, n):
    """Leaf parameters alone (what fan-in and tree are built from)."""
    benchmark.group = f"trace-{n}"
    benchmark.pedantic(leaves, args=(n,), rounds=_rounds(n), iterations=1)
    _per(benchmark, "per_param_us", n)


@pytest.mark.parametrize("shape", ["chain", "op_chain", "fan_in", "tree"])
@pytest.mark.parametrize("n", SIZES)
def test_trace(benchmark, shape, n):
    """Ops only: the leaf parameters of fan-in and tree are made outside the timed region."""
    benchmark.group = f"trace-{n}"
    if shape in ("chain", "op_chain"):
        benchmark.pedantic(BUILDERS[shape], args=(n,), rounds=_rounds(n), iterations=1)
    else:
        count = n if shape == "fan_in" else n // 2 + 1
        benchmark.pedantic(BUILDERS[shape], setup=lambda: ((n, leaves(count)), {}),
                           rounds=_rounds(n), iterations=1)
    _per(benchmark, "per_op_us", n)


@pytest.mark.parametrize("shape", ["chain", "fan_in", "tree"])
@pytest.mark.parametrize("n", SIZES[:3])
def test_backward(benchmark, shape, n):
    output = {"chain": chain, "fan_in": fan_in, "tree": tree}[shape](n)

    def run():
        go.backward(output, "feedback")
        for p in minimal_subgraph([output]).params:
            p.feedback.clear()

    benchmark.group = f"backward-{shape}"
    benchmark.pedantic(run, rounds=5, iterations=1)
    _per(benchmark, "per_node_us", n)


def _time(shape, n, rounds):
    """CPU times of ``rounds`` builds; the leaves of fan-in and tree are made untimed."""
    times = []
    for _ in range(rounds):
        if shape == "params":
            args = (n,)
            build = leaves
        elif shape == "minimal":
            args, build = (n,), minimal_chain
        elif shape in ("fan_in", "tree"):
            args, build = (n, leaves(n if shape == "fan_in" else n // 2 + 1)), BUILDERS[shape]
        else:
            args, build = (n,), BUILDERS[shape]
        start = time.process_time()  # CPU time: other processes on a shared machine add less noise
        result = build(*args)
        times.append(time.process_time() - start)
        del result, args
        gc.collect()
    return times


def _samples(shape, sizes):
    """``_time`` for each size, in a fresh interpreter: a process that has built and freed a
    million-node graph makes later small graphs measurably slower (its heap is spread out), so
    one shape's large sizes must not weigh on the next shape's small ones."""
    command = [sys.executable, os.path.abspath(__file__), "--shape", shape, *map(str, sizes)]
    out = subprocess.run(command, check=True, capture_output=True, text=True)
    return json.loads(out.stdout.splitlines()[-1])


def main(sizes=SIZES) -> None:
    shapes = ["minimal", "params", "chain", "op_chain", "fan_in", "tree"]
    print(f"{'shape':10}" + "".join(f"{n:>12,}" for n in sizes) + "   exponents (µs/op flat = 1.00)")
    spreads = []
    for shape in shapes:
        samples = _samples(shape, sizes)
        seconds = [statistics.median(times) for times in samples]
        per_op = "".join(f"{s / n * 1e6:10.2f}µs" for s, n in zip(seconds, sizes))
        exponents = " ".join(f"{math.log(seconds[i + 1] / seconds[i]) / math.log(sizes[i + 1] / sizes[i]):.2f}"
                             for i in range(len(sizes) - 1))
        print(f"{shape:10}{per_op}   {exponents}", flush=True)
        spreads.append(f"{shape:10}" + "".join(f"{min(t) / n * 1e6:6.2f}–{max(t) / n * 1e6:<5.2f}"
                                                for t, n in zip(samples, sizes)))
    print("\nspread (fastest–slowest build, µs/op)")
    print("\n".join(spreads))


if __name__ == "__main__":
    if sys.argv[1:2] == ["--shape"]:  # one row, for main(): its samples as JSON
        print(json.dumps([_time(sys.argv[2], int(n), ROUNDS_LARGE if int(n) >= 1_000_000 else ROUNDS)
                          for n in sys.argv[3:]]))
    else:
        main([int(a) for a in sys.argv[1:]] or SIZES)
