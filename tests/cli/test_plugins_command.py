"""``graphopt plugins``: every contribution with its distribution, and the plugins that failed."""

from __future__ import annotations

import os
import subprocess
import sys

from rich.console import Console
from typer.testing import CliRunner

from graphopt.cli.app import app, show_plugins
from graphopt.optim import RandomSearch
from graphopt.plugins import PluginLoadFailure, PluginManager, hookimpl


class Tuned(RandomSearch):
    name = "tuned"


class ThirdParty:
    @hookimpl
    def graphopt_optimizers(self) -> list[type]:
        return [Tuned]


def rows(text: str) -> list[list[str]]:
    """Table rows as lists of cell texts."""
    return [[cell.strip() for cell in line.strip("│┃ ").split("│")] for line in text.splitlines() if "│" in line]


def render(manager: PluginManager) -> str:
    console = Console(record=True, width=200)
    show_plugins(manager, console)
    return console.export_text()


def test_lists_each_contribution_with_its_distribution(plugin_manager):
    plugin_manager.register(ThirdParty(), name="tuned-plugin", distribution="graphopt-tuned")
    listed = rows(render(plugin_manager))
    assert ["optimizers", "tuned", "tuned-plugin", "graphopt-tuned"] in listed
    assert ["optimizers", "random", "graphopt.optim.random_search", "graphopt"] in listed
    assert ["propagators", "default", "graphopt.feedback.propagators", "graphopt"] in listed


def test_lists_plugins_that_failed_to_load(plugin_manager):
    plugin_manager.failures.append(
        PluginLoadFailure("broken", "graphopt-broken", ImportError("No module named 'missing'")))
    assert ["broken", "graphopt-broken", "-", "ImportError: No module named 'missing'"] in rows(render(plugin_manager))


def test_no_failures_no_failure_table(plugin_manager):
    assert "failed to load" not in render(plugin_manager)


def test_help_names_the_plugins_command():
    result = CliRunner().invoke(app, ["--help"])
    assert result.exit_code == 0
    assert "plugins" in result.output


def test_python_dash_m_graphopt_runs_the_command_line():
    done = subprocess.run([sys.executable, "-m", "graphopt", "plugins"], capture_output=True, text=True,
                          env={**os.environ, "COLUMNS": "200"}, timeout=120)
    assert done.returncode == 0, done.stderr
    assert ["optimizers", "spsa", "graphopt.optim.spsa", "graphopt"] in rows(done.stdout)


def test_help_has_no_type_noise_on_flags():
    result = CliRunner().invoke(app, ["run", "--help"])
    assert result.exit_code == 0
    assert "<bool>" not in result.output and "--quiet" in result.output


def test_plugins_exits_1_when_a_plugin_failed(plugin_manager, monkeypatch):
    app_module = sys.modules["graphopt.cli.app"]  # graphopt.cli.app is also the Typer object's name
    plugin_manager.failures.append(PluginLoadFailure("broken", "graphopt-broken", ImportError("gone")))
    monkeypatch.setattr(app_module, "get_plugin_manager", lambda: plugin_manager)
    result = CliRunner().invoke(app, ["plugins"])
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert "broken" in result.output
