"""``import graphopt`` in a fresh process against ``python -c pass`` in the same run (target ≤ 0.3 s),
and a text program's first ``go.backward`` (which builds the plugin manager: every built-in and
installed plugin registers) after it.

Run ``python benchmarks/bench_import.py`` for a table (median of interleaved runs, and which heavy
libraries each left in ``sys.modules``), or ``make bench`` for the pytest-benchmark rounds.
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
FIRST_BACKWARD = ("import graphopt as go\n"
                  "p = go.param('Answer briefly.', name='p')\n"
                  "go.backward(go.ops.str(p), 'too long')")
BACKWARD_PROBE = (FIRST_BACKWARD + "\nimport sys, json\nprint(json.dumps({'modules': len(sys.modules), "
                  "'heavy': sorted(m for m in %r if m in sys.modules)}))" % (HEAVY,))


def run(code: str) -> float:
    """Seconds for one fresh interpreter to run ``code``."""
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True)
    return time.perf_counter() - start


def measure(repeats: int = 7) -> dict[str, float]:
    """Median wall time of ``pass``, ``import graphopt`` and import plus a first backward,
    interleaved so load hits all alike."""
    run(FIRST_BACKWARD)  # warm the file cache
    bare, imported, backward = [], [], []
    for _ in range(repeats):
        bare.append(run("pass"))
        imported.append(run("import graphopt"))
        backward.append(run(FIRST_BACKWARD))
    return {"pass": statistics.median(bare), "import": statistics.median(imported),
            "backward": statistics.median(backward)}


def loaded(probe: str = PROBE) -> dict[str, object]:
    """Module count and the heavy libraries present after ``probe`` (``import graphopt``)."""
    out = subprocess.run([sys.executable, "-c", probe], check=True, capture_output=True, text=True)
    return json.loads(out.stdout.splitlines()[-1])


@pytest.mark.parametrize("code", ["pass", "import graphopt", FIRST_BACKWARD],
                         ids=["python", "graphopt", "first-backward"])
def test_import_time(benchmark, code):
    benchmark.group = "import"
    benchmark.pedantic(run, args=(code,), rounds=7, iterations=1, warmup_rounds=1)
    if code != "pass":
        benchmark.extra_info.update(loaded(BACKWARD_PROBE if code == FIRST_BACKWARD else PROBE))


def main() -> None:
    times = measure()
    info, after = loaded(), loaded(BACKWARD_PROBE)
    print(f"python -c pass      {times['pass'] * 1e3:8.0f} ms")
    print(f"import graphopt     {times['import'] * 1e3:8.0f} ms   "
          f"(import alone ≈ {(times['import'] - times['pass']) * 1e3:.0f} ms)")
    print(f"modules loaded      {info['modules']:8d}")
    print(f"heavy libraries     {', '.join(info['heavy']) or 'none'}")
    print(f"+ first backward    {times['backward'] * 1e3:8.0f} ms   "
          f"(backward alone ≈ {(times['backward'] - times['import']) * 1e3:.0f} ms)")
    print(f"modules loaded      {after['modules']:8d}")
    print(f"heavy libraries     {', '.join(after['heavy']) or 'none'}")


if __name__ == "__main__":
    main()
