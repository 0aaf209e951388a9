"""The mkdocs site builds in strict mode: every page in the nav, no broken internal links."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_site_builds_strictly(tmp_path):
    # As `make docs` runs it: from the repository root, with the relative config path (mkdocs
    # refuses an absolute one whose folder is also the docs_dir).
    done = subprocess.run([sys.executable, "-m", "mkdocs", "build", "-f", "docs/mkdocs.yml",
                           "--strict", "-d", str(tmp_path / "site")], capture_output=True, text=True,
                          timeout=300, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    for page in ("tutorial", "concepts", "plugins", "llm", "cli"):
        assert (tmp_path / "site" / page / "index.html").is_file()
