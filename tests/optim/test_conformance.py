"""Every optimizer graphopt ships, built-in or first-party plugin, passes the plugin kit's checks."""

from __future__ import annotations

from importlib import metadata

import pytest

from graphopt import testing
from graphopt.graph.demos import demos
from graphopt.graph.node import Param
from graphopt.llm.scripted import follow_schema, scripted_client
from graphopt.plugins import PluginManager


def _installed(distribution: str) -> bool:
    try:
        metadata.distribution(distribution)
    except metadata.PackageNotFoundError:
        return False
    return True


OPTIMIZERS = [
    pytest.param("torch", {"algorithm": "Adam", "lr": 0.1}, id="torch"),
    pytest.param("spsa", {"seed": 0}, id="spsa"),
    pytest.param("random", {"seed": 0}, id="random"),
    # LLM optimizers answer through a scripted model that follows the requested reply schema.
    pytest.param("optoprime", {"llm": scripted_client(follow_schema), "memory": 2}, id="optoprime"),
    pytest.param("textgrad", {"llm": scripted_client(follow_schema), "momentum": 2}, id="textgrad"),
    pytest.param("opro", {"llm": scripted_client(follow_schema), "top_k": 3}, id="opro"),
    pytest.param("evolution", {"llm": scripted_client(lambda m, p: revise(m)), "seed": 0}, id="evolution"),
    pytest.param("optuna", {"seed": 0}, id="optuna", marks=pytest.mark.skipif(
        not _installed("graphopt-optuna"), reason="graphopt-optuna is not installed (make test installs it)")),
]

def revise(messages: list[dict]) -> str:
    """An edit request answered with the first quoted value, revised (still valid code)."""
    quoted = messages[-1]["content"].split("```", 2)[1].split("\n", 1)[1]
    return f"```python\n{quoted.rstrip()}\n# revised\n```"


def demos_or_sample(kind: str, name: str) -> Param:
    if kind == "demos":
        return demos([{"inputs": {"text": "hi"}, "output": "hello"}], name=name, max_demos=3)
    return testing.sample_param(kind, name)


CHECKS = [testing.check_kinds, testing.check_state_dict_round_trip,
          testing.check_step_without_feedback, testing.check_all_or_nothing_commit]


@pytest.fixture
def manager() -> PluginManager:
    return testing.default_plugin_manager()


@pytest.mark.parametrize("check", CHECKS, ids=lambda c: c.__name__)
@pytest.mark.parametrize(("name", "config"), OPTIMIZERS)
def test_shipped_optimizer_passes(manager, name, config, check):
    check(name, config=config, plugin_manager=manager)


@pytest.mark.parametrize("check", CHECKS, ids=lambda c: c.__name__)
def test_fewshot_passes(manager, check):
    check("fewshot", config={"min_score": -100.0, "seed": 0}, plugin_manager=manager,
          make_param=demos_or_sample)
