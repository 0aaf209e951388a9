"""Raising or broken plugins, loaded through real entry points of a throwaway distribution.

Each case installs one bad plugin next to a good one (a ``*.dist-info`` directory on
``sys.path``), then checks that only the bad one is disabled, with one warning pointing at its
own file, while the good plugin and the built-ins keep working and ``graphopt plugins`` exits 1.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import warnings
from pathlib import Path

import pytest

import graphopt as go
from graphopt.plugins import PluginManager

GOOD = '''
from graphopt.optim import RandomSearch
from graphopt.plugins import hookimpl

class Good(RandomSearch):
    name = "good-opt"

@hookimpl
def graphopt_optimizers():
    return [Good]
'''

HEADER = '''
from graphopt.optim import RandomSearch
from graphopt.plugins import hookimpl

class Bad(RandomSearch):
    name = "bad-opt"

CALLS = []
'''

# case id -> (module source, the entry point's object, what the failure says, found at registration)
CASES = {
    "import-error": ("import graphopt_missing_dependency\n", "bad_plugin", "ModuleNotFoundError", True),
    "syntax-error": ("def broken(:\n", "bad_plugin", "SyntaxError", True),
    "raises-at-import": (HEADER + "raise RuntimeError('no licence file')\n", "bad_plugin",
                         "RuntimeError: no licence file", True),
    "missing-attribute": (HEADER, "bad_plugin:nowhere", "AttributeError", True),
    "hook-raises-at-registration": (HEADER + '''
@hookimpl
def graphopt_optimizers():
    raise KeyError("config")
''', "bad_plugin", "graphopt_optimizers() raised KeyError", True),
    "hook-raises-later": (HEADER + '''
@hookimpl
def graphopt_optimizers():
    CALLS.append(1)
    if len(CALLS) > 1:
        raise RuntimeError("lost its connection")
    return [Bad]
''', "bad_plugin", "graphopt_optimizers() raised RuntimeError: lost its connection", False),
    "hook-returns-none-later": (HEADER + '''
@hookimpl
def graphopt_optimizers():
    CALLS.append(1)
    return [Bad] if len(CALLS) == 1 else None
''', "bad_plugin", "graphopt_optimizers() must return a list, got NoneType", False),
    "propagator-hook-raises-later": (HEADER + '''
class Quiet:
    name = "quiet"
    def propagate(self, subgraph, feedback):
        pass

@hookimpl
def graphopt_propagators():
    CALLS.append(1)
    if len(CALLS) > 1:
        raise ValueError("flaky")
    return [Quiet()]
''', "bad_plugin", "graphopt_propagators() raised ValueError: flaky", False),
    "entry-lacks-interface": (HEADER + '''
class Half:
    name = "half-opt"

@hookimpl
def graphopt_optimizers():
    return [Half]
''', "bad_plugin", "optimizer 'half-opt' lacks kinds", True),
    "name-clash-with-builtin": (HEADER + '''
class Clash(RandomSearch):
    name = "random"

@hookimpl
def graphopt_optimizers():
    return [Clash]
''', "bad_plugin", "already provided by plugin 'graphopt.optim.random_search'", True),
    "wrong-hook-signature": (HEADER + '''
@hookimpl
def graphopt_after_step(optimizer, nonsense):
    pass
''', "bad_plugin", "nonsense", True),
    "instance-hook-raises-later": (HEADER + '''
class Plugin:
    @hookimpl
    def graphopt_optimizers(self):
        CALLS.append(1)
        if len(CALLS) > 1:
            raise OSError("disk gone")
        return [Bad]

plugin = Plugin()
''', "bad_plugin:plugin", "graphopt_optimizers() raised OSError: disk gone", False),
}


def install(site: Path, dist: str, module: str, source: str, entry: str, name: str) -> None:
    """A minimal installed distribution: a module and a dist-info with one entry point."""
    (site / f"{module}.py").write_text(textwrap.dedent(source))
    info = site / f"{dist.replace('-', '_')}-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(f"[graphopt]\n{name} = {entry}\n")


@pytest.fixture
def site(tmp_path, monkeypatch):
    site = tmp_path / "site"
    site.mkdir()
    install(site, "graphopt-good", "good_plugin", GOOD, "good_plugin", "good")
    monkeypatch.syspath_prepend(str(site))
    yield site
    for module in ("good_plugin", "bad_plugin"):
        sys.modules.pop(module, None)


def fresh_manager() -> tuple[PluginManager, list[warnings.WarningMessage]]:
    manager = PluginManager()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        manager.load_builtins()
        manager.load_entrypoints()
        manager.tables()  # the second call of each hook: "later" failures happen here
    return manager, caught


@pytest.mark.parametrize("case", list(CASES), ids=[f"{i + 1:02d}-of-{len(CASES)}-{c}" for i, c in enumerate(CASES)])
def test_bad_plugin_is_disabled_alone(site, case):
    source, entry, reason, _ = CASES[case]
    install(site, "graphopt-bad", "bad_plugin", source, entry, "bad")
    manager, caught = fresh_manager()

    (failure,) = manager.failures
    assert failure.name == "bad" and failure.distribution == "graphopt-bad"
    assert failure.entry_point == f"bad = {entry}"
    assert reason in failure.reason
    (warning,) = [w for w in caught if "graphopt plugin" in str(w.message)]
    assert f"'bad' (graphopt-bad, entry point 'bad = {entry}') failed to load and is disabled" in str(warning.message)
    # The warning points at the plugin's code, never at graphopt's manager.
    assert Path(warning.filename) == site / "bad_plugin.py"
    # The built-ins and the good plugin are unaffected.
    assert manager.lookup("optimizers", "good-opt").name == "good-opt"
    assert manager.lookup("optimizers", "random").name == "random"
    assert manager.lookup("propagators", "default") is not None
    assert not manager.has_plugin("bad")


@pytest.mark.parametrize("case", [c for c, v in CASES.items() if "bad-opt" in v[0] and "Bad]" in v[0]])
def test_name_of_a_refused_plugin_names_the_failure(site, case):
    source, entry, reason, _ = CASES[case]
    install(site, "graphopt-bad", "bad_plugin", source, entry, "bad")
    manager, _ = fresh_manager()
    with pytest.raises(go.PluginNotFoundError) as info:
        go.optimizer("bad-opt", [go.param("x", name="p")], plugin_manager=manager)
    message = str(info.value)
    assert "optimizer 'bad-opt' comes from plugin 'bad' (graphopt-bad) which failed to load" in message
    assert reason in message and "did you mean" not in message


def test_unknown_name_with_a_plugin_that_never_loaded_mentions_it(site):
    install(site, "graphopt-bad", "bad_plugin", CASES["import-error"][0], "bad_plugin", "bad")
    manager, _ = fresh_manager()
    with pytest.raises(go.PluginNotFoundError, match="may come from plugin 'bad' \\(graphopt-bad\\), which "
                                                     "failed to load \\(ModuleNotFoundError"):
        manager.lookup("optimizers", "bad-opt")


def test_plugins_command_lists_the_failure_and_exits_1(site):
    install(site, "graphopt-bad", "bad_plugin", CASES["hook-raises-later"][0], "bad_plugin", "bad")
    env = {**os.environ, "COLUMNS": "250", "PYTHONPATH": os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run([sys.executable, "-m", "graphopt", "plugins"], capture_output=True, text=True,
                          env=env, timeout=120)
    assert done.returncode == 1
    assert "Traceback" not in done.stdout + done.stderr
    assert "plugins that failed to load" in done.stdout and "lost its connection" in done.stdout
    assert "good-opt" in done.stdout and "random" in done.stdout
    # one warning, located in the plugin's own file
    assert done.stderr.count("failed to load and is disabled") == 1
    assert f"{site / 'bad_plugin.py'}:" in done.stderr


def test_missing_module_warning_points_at_the_entry_point_declaration(site):
    info = site / "graphopt_ghost-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: graphopt-ghost\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text("[graphopt]\n# a plugin that was never installed\nghost = graphopt_ghost_module\n")
    (info / "RECORD").write_text("graphopt_ghost-1.0.dist-info/entry_points.txt,,\n")
    manager, caught = fresh_manager()
    (failure,) = [f for f in manager.failures if f.name == "ghost"]
    assert isinstance(failure.error, ModuleNotFoundError)
    (warning,) = [w for w in caught if "'ghost'" in str(w.message)]
    assert Path(warning.filename) == info / "entry_points.txt" and warning.lineno == 3


def test_missing_module_is_blamed_at_its_declaration_when_the_backport_finder_serves_it(site):
    # Once a dependency imports importlib_metadata, its finder yields the entry points and
    # their load() runs from the backport's folder: that is machinery, not the plugin.
    pytest.importorskip("importlib_metadata")
    test_missing_module_warning_points_at_the_entry_point_declaration(site)


def test_a_package_raising_at_import_is_blamed_at_its_own_line(site):
    package = site / "bad_pkg"
    package.mkdir()
    (package / "__init__.py").write_text("import os\nraise RuntimeError('half installed')\n")
    (package / "sub.py").write_text("")
    info = site / "graphopt_badpkg-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: graphopt-badpkg\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text("[graphopt]\nbadpkg = bad_pkg.sub:plugin\n")
    try:
        manager, caught = fresh_manager()
    finally:
        sys.modules.pop("bad_pkg", None)
    (failure,) = manager.failures
    assert failure.reason == "RuntimeError: half installed"
    (warning,) = [w for w in caught if "'badpkg'" in str(w.message)]
    assert (Path(warning.filename), warning.lineno) == (package / "__init__.py", 2)
    assert manager.lookup("optimizers", "good-opt").name == "good-opt"
