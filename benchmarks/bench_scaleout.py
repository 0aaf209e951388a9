"""Scale-out: threads against Ray on a latency-bound workflow, the Ray path's per-task overhead,
and the cost of shipping a traced subgraph back to the driver.

(a) throughput: ``go.evaluate`` of a workflow whose op sleeps 50 ms on each of 400 examples, with
    ``executor="threads"`` at concurrency 1, 2, 4 and ``executor="ray"`` on a local Ray started
    with 1, 2, 4 CPUs (one task per CPU); examples per second and the ratio to 1 worker.
(b) overhead: the same 400 examples with an op that returns at once, on 1 worker: Ray's wall time
    per example minus the threads path's, in ms.
(c) shipping: a traced chain of ``--nodes`` ops packed on the "worker", pickled, unpickled and
    rebuilt on the driver's params (what ``executor="ray"`` does for every traced run): µs/node.

    python benchmarks/bench_scaleout.py [--examples 400] [--sleep 0.05] [--workers 1 2 4]
    make bench                                      # pytest-benchmark timing of (c)
"""

from __future__ import annotations

import argparse
import os
import pickle
import time
from typing import Any

import graphopt as go
from graphopt.runtime.traced import pack, unpack


@go.op
def wait(x: int, seconds: float) -> int:
    time.sleep(seconds)
    return x


def workflow_sleeping(seconds: float) -> Any:
    def flow(x: int) -> Any:
        return wait(x, seconds)

    return flow


def right(example: Any, prediction: Any) -> float:
    return float(prediction == example.target)


def throughput(executor: str, workers: int, examples: int, seconds: float) -> float:
    """Examples per second for one ``go.evaluate`` of ``examples`` examples."""
    data = [{"id": f"e{i}", "input": {"x": i}, "target": i} for i in range(examples)]
    started = time.perf_counter()
    result = go.evaluate(workflow_sleeping(seconds), data, right, concurrency=workers, executor=executor)
    elapsed = time.perf_counter() - started
    if result.score != 1.0:
        raise RuntimeError(f"{executor} at {workers} workers: wrong results ({result.summary()})")
    return examples / elapsed


def start_ray(cpus: int) -> Any:
    import ray

    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    if ray.is_initialized():
        ray.shutdown()
    ray.init(num_cpus=cpus, include_dashboard=False, log_to_driver=False)
    throughput("ray", cpus, 2 * cpus, 0.0)  # warm the workers: their start is not the run's
    return ray


def chain(nodes: int) -> tuple[go.Param, Any]:
    prompt = go.param("p", name="prompt")
    out: Any = prompt
    for i in range(nodes):
        out = out + "x" if i % 50 else go.ops.str(out)
    return prompt, out


def ship(prompt: go.Param, output: Any) -> Any:
    return unpack(pickle.loads(pickle.dumps(pack(output, {"prompt": prompt}))), {"prompt": prompt})


def shipping_us_per_node(nodes: int, repeats: int = 5) -> float:
    prompt, output = chain(nodes)
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        ship(prompt, output)
        best = min(best, time.perf_counter() - started)
    return best / nodes * 1e6


def test_shipping_a_traced_chain_back(benchmark: Any) -> None:
    prompt, output = chain(1000)
    rebuilt = benchmark(ship, prompt, output)
    assert rebuilt.value == output.value


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--examples", type=int, default=400)
    parser.add_argument("--sleep", type=float, default=0.05)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--nodes", type=int, default=2000)
    args = parser.parse_args()
    rows: list[tuple[str, int, float]] = []
    for workers in args.workers:
        rows.append(("threads", workers, throughput("threads", workers, args.examples, args.sleep)))
    overhead_threads = args.examples / throughput("threads", 1, args.examples, 0.0)
    for workers in args.workers:
        start_ray(workers)
        rows.append(("ray", workers, throughput("ray", workers, args.examples, args.sleep)))
        if workers == 1:
            overhead_ray = args.examples / throughput("ray", 1, args.examples, 0.0)
    print(f"\n(a) {args.examples} examples, each sleeping {args.sleep * 1000:.0f} ms")
    print("| executor | workers | examples/s | ratio to 1 worker |")
    print("|---|---:|---:|---:|")
    base = {name: rate for name, workers, rate in rows if workers == args.workers[0]}
    for name, workers, rate in rows:
        print(f"| {name} | {workers} | {rate:.1f} | {rate / base[name]:.2f}x |")
    per_task = (overhead_ray - overhead_threads) / args.examples * 1000
    print(f"\n(b) Ray path overhead: {per_task:.2f} ms per example over threads "
          f"(threads {overhead_threads / args.examples * 1000:.3f} ms, "
          f"ray {overhead_ray / args.examples * 1000:.2f} ms, 1 worker)")
    print(f"\n(c) shipping a traced chain of {args.nodes} nodes back: "
          f"{shipping_us_per_node(args.nodes):.1f} µs per node")


if __name__ == "__main__":
    main()
