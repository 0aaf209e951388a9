"""What span observers cost an op call: none set (the default), a no-op tracer, and a recording one.

With no tracer an op call pays one ``ContextVar.get``; ``python benchmarks/bench_spans.py`` prints
µs per op call for each case and the ratios to the untraced call, read within one run.
"""

from __future__ import annotations

import time
from typing import Any, Mapping

import pytest

import graphopt as go
from graphopt.graph.spans import tracing

N = 10_000


class NoOp:
    def start(self, kind: str, name: str, attributes: Mapping[str, Any]) -> None:
        return None

    def end(self, span: Any, attributes: Mapping[str, Any], error: BaseException | None) -> None:
        return None


class Recording(NoOp):
    def __init__(self) -> None:
        self.spans: list[tuple[str, str, float]] = []

    def start(self, kind: str, name: str, attributes: Mapping[str, Any]) -> float:
        return time.perf_counter()

    def end(self, span: float, attributes: Mapping[str, Any], error: BaseException | None) -> None:
        self.spans.append(("op", "", time.perf_counter() - span))


@go.op
def step(x: int) -> int:
    return x + 1


def chain(n: int = N) -> Any:
    node = go.param(0, name="start")
    for _ in range(n):
        node = step(node)
    return node


TRACERS = {"none": None, "noop": NoOp, "recording": Recording}


@pytest.mark.parametrize("tracer", list(TRACERS))
def test_op_calls(benchmark: Any, tracer: str) -> None:
    benchmark.group = "op call with span tracers"
    made = TRACERS[tracer]

    def run() -> Any:
        with tracing(made() if made is not None else None):
            return chain()

    assert benchmark(run).value == N


def table(rounds: int = 5) -> dict[str, float]:
    best: dict[str, float] = {}
    for _ in range(rounds):
        for name, made in TRACERS.items():
            started = time.perf_counter()
            with tracing(made() if made is not None else None):
                chain()
            best[name] = min(best.get(name, float("inf")), (time.perf_counter() - started) / N * 1e6)
    return best


if __name__ == "__main__":
    results = table()
    for name, micros in results.items():
        print(f"{name:10s} {micros:6.2f} µs/op call   ×{micros / results['none']:.2f}")
