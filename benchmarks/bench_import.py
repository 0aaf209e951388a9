"""``import graphopt`` in a fresh process against ``python -c pass`` in the same run (target ≤ 0.3 s).

Run ``python benchmarks/bench_import.py`` for a table (median of interleaved runs, and which heavy
libraries the import left in ``sys.modules``), or ``make bench`` for the pytest-benchmark rounds.
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import time

import pytest

HEAVY = ("torch", "transformers", "litellm", "networkx", "rich", "optuna", "pydantic", "numpy",
         "diskcache", "typer", "safetensors")
PROBE = ("import sys, graphopt; print(__import__('json').dumps({'modules': len(sys.modules), "
         "'heavy': sorted(m for m in %r if m in sys.modules)}))" % (HEAVY,))


def run(code: str) -> float:
    """Seconds for one fresh interpreter to run ``code``."""
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True)
    return time.perf_counter() - start


def measure(repeats: int = 7) -> dict[str, float]:
    """Median wall time of ``pass`` and ``import graphopt``, interleaved so load hits both alike."""
    run("import graphopt")  # warm the file cache
    bare, imported = [], []
    for _ in range(repeats):
        bare.append(run("pass"))
        imported.append(run("import graphopt"))
    return {"pass": statistics.median(bare), "import": statistics.median(imported)}


def loaded() -> dict[str, object]:
    """Module count and the heavy libraries present after ``import graphopt``."""
    out = subprocess.run([sys.executable, "-c", PROBE], check=True, capture_output=True, text=True)
    return json.loads(out.stdout)


@pytest.mark.parametrize("code", ["pass", "import graphopt"], ids=["python", "graphopt"])
def test_import_time(benchmark, code):
    benchmark.group = "import"
    benchmark.pedantic(run, args=(code,), rounds=7, iterations=1, warmup_rounds=1)
    if code != "pass":
        benchmark.extra_info.update(loaded())


def main() -> None:
    times = measure()
    info = loaded()
    print(f"python -c pass      {times['pass'] * 1e3:8.0f} ms")
    print(f"import graphopt     {times['import'] * 1e3:8.0f} ms   "
          f"(import alone ≈ {(times['import'] - times['pass']) * 1e3:.0f} ms)")
    print(f"modules loaded      {info['modules']:8d}")
    print(f"heavy libraries     {', '.join(info['heavy']) or 'none'}")


if __name__ == "__main__":
    main()
