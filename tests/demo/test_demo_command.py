"""``graphopt demo --quick`` for real: the embedded model, a report, and a warm second run."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest

pytestmark = pytest.mark.slow


def test_quick_demo_improves_and_reruns_from_the_cache(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("GRAPHOPT_")}
    env.update(GRAPHOPT_CACHE_DIR=str(tmp_path / "cache"), COLUMNS="200")
    outputs = []
    for _ in range(2):
        done = subprocess.run([sys.executable, "-m", "graphopt", "demo", "--quick", "--quiet",
                               "--out", str(tmp_path / "out")], capture_output=True, text=True,
                              env=env, timeout=900)
        assert done.returncode == 0, done.stderr[-3000:]
        outputs.append(done.stdout)
    before, after = map(float, re.search(r"before ([\d.]+), after ([\d.]+)", outputs[0]).groups())
    assert after >= before
    calls = [int(re.search(r"usage: (\d+) model calls", text).group(1)) for text in outputs]
    assert calls[0] > 0 and calls[1] == 0
    report = (tmp_path / "out" / "report.html").read_text()
    assert "<svg" in report and "http" not in report.split("<svg", 1)[1].replace(
        "http://www.w3.org/2000/svg", "")
