"""Every optimizer of graphopt-promptsearch passes graphopt's plugin conformance checks."""

from __future__ import annotations

import pytest

from graphopt import testing
from graphopt.llm.scripted import scripted_client
from graphopt_promptsearch import keyword_labels, length_bins


def revise(messages: list[dict], params: dict) -> str:
    """Answers an edit request with the value it quotes first, revised (still valid code)."""
    quoted = messages[-1]["content"].split("```", 2)[1].split("\n", 1)[1].rstrip("\n")
    return f"```python\n{quoted}\n# revised\n```"


def longer(first, second) -> float:
    """A deterministic judge: the longer output wins."""
    return 1.0 if len(str(first)) > len(str(second)) else 0.0 if len(str(first)) < len(str(second)) else 0.5


CONFIGS = [
    pytest.param("mcts", {"seed": 0, "width": 2, "depth": 2}, id="mcts"),
    pytest.param("spo", {"seed": 0, "judge": longer}, id="spo"),
    pytest.param("spo", {"seed": 0, "judge": "llm"}, id="spo-llm-judge"),
    pytest.param("apohf", {"seed": 0, "judge": longer, "duels": 2}, id="apohf"),
    pytest.param("mapelites", {"seed": 0}, id="mapelites"),
    pytest.param("mapelites", {"seed": 0, "descriptors": [
        length_bins((40, 60)), keyword_labels({"revised": ["revised"]})]}, id="mapelites-2d"),
]

CHECKS = [testing.check_kinds, testing.check_state_dict_round_trip,
          testing.check_step_without_feedback, testing.check_all_or_nothing_commit]


@pytest.mark.parametrize("check", CHECKS, ids=lambda c: c.__name__)
@pytest.mark.parametrize(("name", "config"), CONFIGS)
def test_optimizer_passes_the_kit(plugin_manager, name, config, check):
    def answer(messages, params):
        if "Which output is better" in messages[-1]["content"]:
            return "B is longer.\nB"
        return revise(messages, params)

    check(name, config={"llm": scripted_client(answer), **config}, plugin_manager=plugin_manager)


def test_optimizers_are_found_through_the_entry_point(plugin_manager):
    from graphopt.plugins import available

    found = available(plugin_manager=plugin_manager)
    for name in ("mcts", "spo", "apohf", "mapelites"):
        assert found[name].distribution == "graphopt-promptsearch"
        assert found[name].plugin == "promptsearch"
