"""The scripted run module, loaded from its file (it is also run as a subprocess)."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path
from types import ModuleType

import pytest

HERE = Path(__file__).parent


@pytest.fixture(scope="session")
def scripted() -> ModuleType:
    spec = importlib.util.spec_from_file_location("graphopt_tests_scripted_run", HERE / "scripted_run.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(autouse=True)
def _isolated_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No test reads the developer's GRAPHOPT_* settings or writes to their cache."""
    for name in list(os.environ):
        if name.startswith("GRAPHOPT_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
