"""docs/optimizers/reference.md is what docs/gen_reference.py writes from the code."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_optimizer_reference_matches_the_code():
    # A fresh process, as the script runs: node ids in the rendered prompts start from zero.
    done = subprocess.run([sys.executable, "docs/gen_reference.py", "--check"], cwd=ROOT,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr


def test_reference_lists_every_builtin_optimizer_with_its_defaults():
    page = (ROOT / "docs" / "optimizers" / "reference.md").read_text()
    for name in ("evolution", "fewshot", "gepa", "opro", "optoprime", "random", "spsa", "textgrad",
                 "torch"):
        assert f"\n## {name}\n" in page
    assert "| `max_tokens` | `1024` | `int` |" in page
    assert "# Feedback\n- wrong: expected Paris" in page
