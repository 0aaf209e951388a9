"""``import graphopt`` stays light: heavy libraries and upper layers load on first use."""

import json
import subprocess
import sys

import pytest

HEAVY = ("torch", "transformers", "litellm", "networkx", "rich", "optuna", "pydantic", "numpy",
         "diskcache", "safetensors", "typer")
LAYERS = ("graphopt.feedback", "graphopt.llm", "graphopt.optim", "graphopt.train", "graphopt.cli")


def fresh(code: str) -> dict:
    """Run ``code`` in a new interpreter; it prints one JSON value as its last line."""
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True)
    return json.loads(out.stdout.splitlines()[-1])


def test_import_loads_no_heavy_library_and_no_upper_layer():
    loaded = fresh("import sys, json, graphopt\n"
                   f"print(json.dumps([m for m in {HEAVY + LAYERS!r} if m in sys.modules]))")
    assert loaded == []


def test_tracing_text_and_numbers_does_not_import_torch():
    loaded = fresh("import sys, json, graphopt as go\n"
                   "p = go.param('Hi', name='p'); n = go.param(2, name='n', space=go.Int(1, 3))\n"
                   "out = go.ops.len(p + ' there') * n\n"
                   "print(json.dumps([out.value, 'torch' in sys.modules]))")
    assert loaded == [16, False]


def test_every_public_name_resolves_in_a_fresh_process():
    names = fresh("import json, graphopt as go\n"
                  "print(json.dumps({n: type(getattr(go, n)).__name__ for n in go.__all__}))")
    assert set(names) == set(__import__("graphopt").__all__)
    assert names["llm"] == names["optim"] == names["train"] == names["feedback"] == "module"
    assert names["optimizer"] == names["backward"] == names["optimize"] == "function"


def test_lazy_names_are_the_layers_own_objects():
    import graphopt as go
    from graphopt.feedback import Feedback, backward
    from graphopt.llm import Budget, budget
    from graphopt.optim import Optimizer, optimizer
    from graphopt.train import optimize

    assert (go.Feedback, go.backward, go.Budget, go.budget) == (Feedback, backward, Budget, budget)
    assert (go.Optimizer, go.optimizer, go.optimize) == (Optimizer, optimizer, optimize)
    assert "optimizer" in dir(go) and "Feedback" in dir(go)


def test_unknown_attribute_is_an_attribute_error():
    import graphopt as go
    import pytest

    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        go.nope  # noqa: B018
    assert not hasattr(go.graph, "nope")


def test_graph_export_loads_networkx_on_first_use():
    loaded = fresh("import sys, json, graphopt as go\n"
                   "before = 'networkx' in sys.modules\n"
                   "g = go.graph.to_networkx(go.param(1, name='p') + 1)\n"
                   "print(json.dumps([before, g.number_of_nodes()]))")
    assert loaded == [False, 2]


TEXT_PROGRAM = """
import sys, json, graphopt as go
from graphopt.llm.scripted import scripted_client
from graphopt.plugins.manager import PluginManager, get_plugin_manager

HEAVY = {heavy!r}
if {builtins_only!r}:
    manager = PluginManager()
    manager.load_builtins()
else:
    manager = get_plugin_manager()
loaded = {{}}
prompt = go.param("Answer briefly.", name="prompt")
k = go.param(3, name="k", space=go.Int(1, 5))
t = go.param(0.5, name="t", space=go.Float(0.0, 1.0))
go.backward(go.ops.str(prompt + " " + go.ops.str(k)), "too long", plugin_manager=manager)
loaded["backward"] = [m for m in HEAVY if m in sys.modules]
llm = scripted_client(lambda messages, params: "ok")
for name, params, config in [("optoprime", [prompt], {{"llm": llm}}), ("textgrad", [prompt], {{"llm": llm}}),
                             ("opro", [prompt], {{"llm": llm}}), ("evolution", [prompt, k], {{"llm": llm}}),
                             ("random", [k, t], {{}})]:
    go.optimizer(name, params, plugin_manager=manager, **config)
    loaded[name] = [m for m in HEAVY if m in sys.modules]
go.plugins.available("optimizers", plugin_manager=manager)
loaded["listing"] = [m for m in HEAVY if m in sys.modules]
print(json.dumps(loaded))
"""
TEXT_HEAVY = ("torch", "numpy", "transformers", "litellm", "optuna", "networkx", "rich")


@pytest.mark.parametrize("builtins_only", [True, False], ids=["builtins", "installed-plugins"])
def test_backward_and_text_optimizers_load_no_heavy_library(builtins_only):
    """Plugins (graphopt's own, and the installed first-party ones) register without torch,
    numpy, optuna or an LLM library; those load when an optimizer that computes with them is built."""
    loaded = fresh(TEXT_PROGRAM.format(heavy=TEXT_HEAVY, builtins_only=builtins_only))
    assert loaded == {step: [] for step in ("backward", "optoprime", "textgrad", "opro", "evolution",
                                            "random", "listing")}


def test_an_optimizer_that_computes_with_torch_loads_it_when_built():
    loaded = fresh("import sys, json, graphopt as go\n"
                   "from graphopt.plugins.manager import PluginManager\n"
                   "manager = PluginManager(); manager.load_builtins()\n"
                   "k = go.param(3, name='k', space=go.Int(1, 5))\n"
                   "before = 'torch' in sys.modules\n"
                   "go.optimizer('spsa', [k], plugin_manager=manager)\n"
                   "print(json.dumps([before, 'torch' in sys.modules]))")
    assert loaded == [False, True]
