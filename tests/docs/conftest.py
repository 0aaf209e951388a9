"""Docs tests run in a temporary folder, with a temporary reply cache; the embedded model's
converted weights (made once per machine, slow to make) are shared through a link."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from graphopt.llm.config import load_settings


def embedded_model_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``tmp_path`` as the working folder and cache root, the converted model linked in."""
    for name in list(os.environ):
        if name.startswith("GRAPHOPT_"):
            monkeypatch.delenv(name)
    models = load_settings().model_cache_dir
    models.mkdir(parents=True, exist_ok=True)
    cache = tmp_path / "graphopt-cache"
    cache.mkdir()
    (cache / "models").symlink_to(models, target_is_directory=True)
    monkeypatch.setenv("GRAPHOPT_CACHE_DIR", str(cache))
    monkeypatch.chdir(tmp_path)
