import subprocess
import sys
import types
from importlib import metadata

import pytest

import graphopt as go
from graphopt.plugins import PluginManager, hookimpl


class FakeOptimizer(go.Optimizer):
    name = "fake"
    kinds = frozenset({"text"})

    def __init__(self, params, *, plugin_manager=None, **config):
        super().__init__(params, config, plugin_manager=plugin_manager)

    def propose(self, closure=None):
        return {p: p.value + "!" for p in self.params}


def make_plugin(*optimizers):
    module = types.ModuleType("fake_plugin")

    @hookimpl
    def graphopt_optimizers():
        return list(optimizers)

    module.graphopt_optimizers = graphopt_optimizers
    return module


def test_builtins_register_through_the_hooks(plugin_manager):
    names = set(go.plugins.available(plugin_manager=plugin_manager))
    assert {"torch", "spsa", "random"} <= names
    entry = go.plugins.available(plugin_manager=plugin_manager)["torch"]
    assert entry.distribution == "graphopt" and entry.plugin == "graphopt.optim.torch_optim"
    assert "default" in go.plugins.available("propagators", plugin_manager=plugin_manager)


def test_third_party_optimizer_is_found_by_name(plugin_manager):
    plugin_manager.register(make_plugin(FakeOptimizer), name="fake-plugin")
    p = go.param("hi", name="p")
    opt = go.optimizer("fake", [p], plugin_manager=plugin_manager)
    assert isinstance(opt, FakeOptimizer)
    assert opt.step() == {"p": "hi!"}


def test_unknown_optimizer_lists_close_matches_and_available(plugin_manager):
    with pytest.raises(go.PluginNotFoundError) as info:
        go.optimizer("torhc", [go.param(1.0, name="x")], plugin_manager=plugin_manager)
    message = str(info.value)
    assert "no optimizer named 'torhc'" in message and "did you mean 'torch'" in message
    assert "available: " in message and "random, spsa" in message
    assert {"random", "spsa", "torch"} <= set(info.value.available)
    assert info.value.available == sorted(info.value.available)


def test_registration_validates_before_storing(plugin_manager):
    class Nameless:
        kinds = frozenset()

    with pytest.raises(go.PluginValidationError, match="needs a non-empty str attribute 'name'") as info:
        plugin_manager.register(make_plugin(Nameless), name="bad")
    assert info.value.plugin is not None
    assert not plugin_manager.has_plugin("bad")

    class Incomplete:
        name = "incomplete"

    with pytest.raises(go.PluginValidationError, match="lacks kinds, step"):
        plugin_manager.register(make_plugin(Incomplete), name="bad2")


def test_duplicate_optimizer_name_is_refused_naming_the_owner(plugin_manager):
    class Clash(FakeOptimizer):
        name = "torch"

    with pytest.raises(go.PluginValidationError, match="already provided by plugin 'graphopt.optim.torch_optim'"):
        plugin_manager.register(make_plugin(Clash), name="clash")


def test_hookimpl_with_unknown_argument_is_refused_by_pluggy(plugin_manager):
    class Plugin:
        @hookimpl
        def graphopt_after_step(self, optimizer, nonsense):
            pass

    with pytest.raises(Exception, match="nonsense"):
        plugin_manager.register(Plugin(), name="odd")


class _EntryPoint:
    def __init__(self, name, load, dist_name):
        self.name = name
        self.load = load
        self.dist = types.SimpleNamespace(name=dist_name)


def test_plugin_failing_at_import_is_reported_and_others_still_load(monkeypatch):
    def broken():
        raise ImportError("missing dependency 'foo'")

    good = make_plugin(FakeOptimizer)
    points = [_EntryPoint("broken", broken, "graphopt-broken"), _EntryPoint("good", lambda: good, "graphopt-good")]
    monkeypatch.setattr(metadata, "entry_points", lambda group: points if group == "graphopt" else [])
    manager = PluginManager()
    with pytest.warns(UserWarning, match="'broken' \\(graphopt-broken\\) failed to load and is disabled: "
                                         "ImportError") as caught:
        assert manager.load_entrypoints() == 1
    assert caught[0].filename == __file__  # the raising code, not graphopt's manager
    (failure,) = manager.failures
    assert failure.name == "broken" and failure.distribution == "graphopt-broken"
    assert go.plugins.available(plugin_manager=manager)["fake"].distribution == "graphopt-good"


def test_step_hooks_are_called(plugin_manager):
    calls = []

    class Watcher:
        @hookimpl
        def graphopt_before_step(self, optimizer, params):
            calls.append(("before", optimizer.name, len(params)))

        @hookimpl
        def graphopt_after_step(self, optimizer, params, committed):
            calls.append(("after", dict(committed)))

    plugin_manager.register(make_plugin(FakeOptimizer), name="fake-plugin")
    plugin_manager.register(Watcher(), name="watcher")
    opt = go.optimizer("fake", [go.param("a", name="p")], plugin_manager=plugin_manager)
    opt.step()
    assert calls == [("before", "fake", 1), ("after", {"p": "a!"})]


def test_nothing_is_loaded_at_import():
    code = "import graphopt, sys; print(graphopt.plugins.manager._default is None, 'litellm' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.split() == ["True", "False"]


def test_a_hook_raising_at_register_is_a_validation_error_naming_it(plugin_manager):
    class Raising:
        @hookimpl
        def graphopt_optimizers(self):
            raise KeyError("config")

    with pytest.raises(go.PluginValidationError,
                       match="plugin 'raising': graphopt_optimizers\\(\\) raised KeyError: 'config'") as info:
        plugin_manager.register(Raising(), name="raising")
    assert isinstance(info.value.__cause__, KeyError)
    assert not plugin_manager.has_plugin("raising")
    assert plugin_manager.lookup("optimizers", "random").name == "random"


def test_a_hook_raising_later_disables_only_its_plugin(plugin_manager):
    calls = []

    class Flaky:
        @hookimpl
        def graphopt_optimizers(self):
            calls.append(1)
            if len(calls) > 1:
                raise RuntimeError("flaky")
            return [FakeOptimizer]

    plugin_manager.register(Flaky(), name="flaky")
    with pytest.warns(UserWarning, match="'flaky' \\(no distribution\\) failed to load and is disabled: "
                                         "graphopt_optimizers\\(\\) raised RuntimeError: flaky") as caught:
        plugin_manager.register(make_plugin(), name="other")  # rebuilds the tables: Flaky raises now
    assert "random" in plugin_manager.tables()["optimizers"] and plugin_manager.has_plugin("other")
    assert caught[0].filename == __file__
    assert [f.name for f in plugin_manager.failures] == ["flaky"]
    assert plugin_manager.failures[0].provides == {"optimizers": ("fake",)}
    with pytest.raises(go.PluginNotFoundError, match="optimizer 'fake' comes from plugin 'flaky'"):
        plugin_manager.lookup("optimizers", "fake")
