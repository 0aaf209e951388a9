"""Installed, the distribution is found through its entry point alone; uninstalled, it is gone."""

from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
from importlib import metadata
from pathlib import Path

import pytest

from graphopt.plugins import available

PLUGIN = Path(__file__).resolve().parents[1]


def listed_optimizers(python: str | Path) -> dict[str, str]:
    """Optimizer name -> distribution, as ``python -m graphopt plugins`` prints them."""
    done = subprocess.run([str(python), "-m", "graphopt", "plugins"], capture_output=True, text=True,
                          env={**os.environ, "COLUMNS": "200"}, timeout=120)
    assert done.returncode == 0, done.stderr
    cells = [[c.strip() for c in line.strip("│ ").split("│")] for line in done.stdout.splitlines() if "│" in line]
    return {row[1]: row[3] for row in cells if row[0] == "optimizers"}


def pip(python: Path, *args: str) -> None:
    done = subprocess.run([str(python), "-m", "pip", "--disable-pip-version-check", "-q", *args],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr


def test_the_entry_point_belongs_to_the_distribution():
    [entry_point] = [ep for ep in metadata.entry_points(group="graphopt") if ep.name == "optuna"]
    assert entry_point.dist.name == "graphopt-optuna"
    assert entry_point.value == "graphopt_optuna.plugin"


def test_the_plugin_manager_reports_its_distribution(plugin_manager):
    entry = available(plugin_manager=plugin_manager)["optuna"]
    assert (entry.plugin, entry.distribution) == ("optuna", "graphopt-optuna")


def test_graphopt_plugins_lists_it_with_its_distribution():
    assert listed_optimizers(sys.executable)["optuna"] == "graphopt-optuna"


@pytest.fixture
def bare_venv(tmp_path) -> Path:
    """A new venv holding everything this one does but graphopt-optuna (linked, not copied)."""
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    python = venv / "bin" / "python"
    site = Path(subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                               capture_output=True, text=True, check=True).stdout.strip())
    for entry in Path(sysconfig.get_paths()["purelib"]).iterdir():
        if "graphopt_optuna" not in entry.name.replace("-", "_") and not (site / entry.name).exists():
            (site / entry.name).symlink_to(entry)
    return python


def test_installing_adds_it_and_uninstalling_removes_it(bare_venv):
    assert "optuna" not in listed_optimizers(bare_venv)
    pip(bare_venv, "install", "--no-deps", "--no-build-isolation", "-e", str(PLUGIN))
    assert listed_optimizers(bare_venv)["optuna"] == "graphopt-optuna"
    pip(bare_venv, "uninstall", "-y", "graphopt-optuna")
    listed = listed_optimizers(bare_venv)
    assert "optuna" not in listed and {"random", "spsa", "torch"} <= set(listed)
