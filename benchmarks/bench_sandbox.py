"""Per-call cost of a sandboxed candidate on a warm worker against the same code in-process.

Three traced calls of one trainable op: the original source (in-process, the fast path), a
candidate compiled in-process (``sandbox=False``), and the same candidate in a warm sandbox
worker (``"auto"``). The overhead is sandboxed minus in-process, read within one run.
``python benchmarks/bench_sandbox.py`` prints the table (wall clock per call, and the CPU time a
sandboxed call costs in this process and in the worker, which a loaded machine does not inflate);
the target is at most 2 ms per call.
The payloads: a small int, a 1,000-word text, and a 64×64 float tensor.
"""

from __future__ import annotations

import os
import statistics
import sys
import time

import pytest
import torch

import graphopt as go
from graphopt.runtime.sandbox import Limits, SandboxPool, sandbox

CALLS = 500
ROUNDS = 5
PAYLOADS = {"int": 41, "text": " ".join(["word"] * 1000), "tensor": torch.ones(64, 64)}


@go.op(trainable=True)
def step(x):
    return x


CANDIDATE = "def step(x):\n    return x * 2 if not isinstance(x, str) else x.upper()\n"


def _timed(call, argument, calls: int = CALLS) -> float:
    """Seconds per call, the median of ``ROUNDS`` rounds of ``calls`` calls."""
    call(argument)  # warm: worker started, candidate prepared, torch loaded
    rounds = []
    for _ in range(ROUNDS):
        start = time.perf_counter()
        for _ in range(calls):
            call(argument)
        rounds.append((time.perf_counter() - start) / calls)
    return statistics.median(rounds)


def run_original(pool):
    step.code.assign(step._original_source)
    return lambda x: step(x)


def run_in_process(pool):
    step.code.assign(CANDIDATE)

    def call(x):
        with sandbox(False):
            return step(x)
    return call


def run_sandboxed(pool):
    step.code.assign(CANDIDATE)

    def call(x):
        with sandbox(pool=pool):
            return step(x)
    return call


MODES = {"original": run_original, "in_process": run_in_process, "sandboxed": run_sandboxed}


@pytest.fixture(scope="module")
def pool():
    with SandboxPool(Limits(), workers=1) as made:
        yield made
    step.code.assign(step._original_source)


@pytest.mark.parametrize("payload", list(PAYLOADS))
@pytest.mark.parametrize("mode", list(MODES))
def test_call(benchmark, pool, mode, payload):
    call = MODES[mode](pool)
    argument = PAYLOADS[payload]
    benchmark.group = f"sandbox-{payload}"
    call(argument)
    benchmark.pedantic(call, args=(argument,), rounds=200, iterations=1, warmup_rounds=5)
    benchmark.extra_info["per_call_us"] = benchmark.stats.stats.median * 1e6


def _cpu_seconds(pid: int) -> float:
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _sandboxed_cpu(pool: SandboxPool, argument, calls: int = 2 * CALLS) -> tuple[float, float]:
    """CPU seconds per sandboxed call in this process and in the worker (load-independent)."""
    call = run_sandboxed(pool)
    call(argument)
    (pid,) = pool.pids()
    worker, parent = _cpu_seconds(pid), time.process_time()
    for _ in range(calls):
        call(argument)
    return (time.process_time() - parent) / calls, (_cpu_seconds(pid) - worker) / calls


def main() -> None:
    """Wall-clock µs per traced call in each mode, and the CPU a sandboxed call costs."""
    with SandboxPool(Limits(), workers=1) as pool:
        print(f"{'payload':8}{'original':>12}{'in-process':>12}{'sandboxed':>12}{'overhead':>12}"
              f"{'cpu parent':>12}{'cpu worker':>12}   ({os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f})")
        for payload, argument in PAYLOADS.items():
            times = {mode: _timed(build(pool), argument) for mode, build in MODES.items()}
            overhead = times["sandboxed"] - times["in_process"]
            parent, worker = _sandboxed_cpu(pool, argument)
            print(f"{payload:8}" + "".join(f"{times[m] * 1e6:10.1f}µs" for m in MODES)
                  + f"{overhead * 1e3:10.3f}ms{parent * 1e3:10.3f}ms{worker * 1e3:10.3f}ms", flush=True)
        step.code.assign(step._original_source)
        print(f"network namespace: {pool.network_namespace}")


if __name__ == "__main__":
    sys.exit(main())
