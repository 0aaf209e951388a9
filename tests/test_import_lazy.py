"""``import graphopt`` stays light: heavy libraries and upper layers load on first use."""

import json
import subprocess
import sys

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
