"""The plugin kit's checks catch each way an optimizer can break the contract."""

from __future__ import annotations

import random
from typing import Any, Mapping

import pytest

from graphopt import testing
from graphopt.errors import ParamValidationError
from graphopt.graph.node import Param
from graphopt.optim import RandomSearch
from graphopt.optim.optimizer import Optimizer
from graphopt.plugins import PluginManager, hookimpl


class Counter(Optimizer):
    """Sound: moves every int param up by one per step with score feedback."""

    name = "counter"
    kinds = frozenset({"int"})

    def __init__(self, params: Any, *, plugin_manager: PluginManager | None = None) -> None:
        super().__init__(params, {}, plugin_manager=plugin_manager)
        self.steps = 0

    def propose(self, closure: Any = None) -> dict[Param, Any]:
        if not any(p.feedback for p in self.params):
            return {}
        self.steps += 1
        return {p: min(p.kind.space.high, p.value + 1) for p in self.params}

    def extra_state_dict(self) -> dict[str, Any]:
        return {"steps": self.steps}

    def load_extra_state_dict(self, data: Mapping[str, Any]) -> None:
        self.steps = data["steps"]


class WrongError(Counter):
    name = "wrong-error"
    kinds = frozenset({"int", "text"})

    def check_param(self, name: str, target: Param) -> None:
        if target.kind.name == "text":
            raise TypeError("no text here")


class Forgetful(RandomSearch):
    """Loses its random generator's state on load."""

    name = "forgetful"

    def load_extra_state_dict(self, data: Mapping[str, Any]) -> None:
        self.rng = random.Random(12345)


class Amnesiac(Counter):
    """Its step size depends on how many steps it made, which it never saves."""

    name = "amnesiac"

    def propose(self, closure: Any = None) -> dict[Param, Any]:
        if not any(p.feedback for p in self.params):
            return {}
        self.steps += 1
        return {p: min(p.kind.space.high, p.value + 1 + self.steps % 2) for p in self.params}

    def extra_state_dict(self) -> dict[str, Any]:
        return {}

    def load_extra_state_dict(self, data: Mapping[str, Any]) -> None:
        pass


class Eager(Counter):
    """Steps without feedback."""

    name = "eager"

    def propose(self, closure: Any = None) -> dict[Param, Any]:
        return {p: p.kind.space.low for p in self.params}


class Partial(Counter):
    """Assigns valid values even when another is invalid."""

    name = "partial"

    def commit(self, proposal: Mapping[Param, Any]) -> dict[str, Any]:
        committed = {}
        for target, value in proposal.items():
            try:
                target.assign(value)
                committed[self.param_names[target]] = value
            except ParamValidationError:
                pass
        return committed


class Plugin:
    @hookimpl
    def graphopt_optimizers(self) -> list[type]:
        return [Counter, WrongError, Forgetful, Amnesiac, Eager, Partial]


@pytest.fixture
def manager() -> PluginManager:
    manager = PluginManager()
    manager.load_builtins()
    manager.register(Plugin(), name="broken-examples")
    return manager


def test_a_sound_optimizer_passes_every_check(manager):
    testing.check_optimizer("counter", plugin_manager=manager)


def test_refusing_a_declared_kind_fails_the_kind_check(manager):
    with pytest.raises(testing.ConformanceError, match="declares kind 'text' but refused"):
        testing.check_kinds("wrong-error", plugin_manager=manager)


def test_a_lossy_state_dict_fails_the_round_trip_check(manager):
    with pytest.raises(testing.ConformanceError, match="after load_state_dict"):
        testing.check_state_dict_round_trip("forgetful", plugin_manager=manager)


def test_state_never_saved_fails_the_round_trip_check(manager):
    # Its values reach the space's bound either way after a few steps: only a step-by-step
    # comparison sees that the restored copy steps differently.
    with pytest.raises(testing.ConformanceError, match="after load_state_dict\\(\\) step 1 "):
        testing.check_state_dict_round_trip("amnesiac", plugin_manager=manager)


def test_stepping_without_feedback_fails_its_check(manager):
    with pytest.raises(testing.ConformanceError, match="without feedback"):
        testing.check_step_without_feedback("eager", plugin_manager=manager)


def test_a_partial_commit_fails_the_all_or_nothing_check(manager):
    with pytest.raises(testing.ConformanceError, match="accepted a proposal holding an invalid value"):
        testing.check_all_or_nothing_commit("partial", plugin_manager=manager)


class TestCounterThroughTheBaseClass(testing.OptimizerConformance):
    optimizer = "counter"

    def plugin_manager(self) -> PluginManager:
        manager = PluginManager()
        manager.register(Plugin(), name="broken-examples")
        return manager


def test_sample_params_cover_every_kind():
    assert [testing.sample_param(k, k).kind.name for k in testing.KINDS] == list(testing.KINDS)
    for kind in testing.KINDS:
        target = testing.sample_param(kind, kind)
        with pytest.raises(ParamValidationError):
            target.validate(testing.invalid_value(target))
        target.validate(testing.new_value(target))
