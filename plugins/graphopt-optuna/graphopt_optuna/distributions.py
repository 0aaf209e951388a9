"""graphopt spaces as Optuna distributions, and parameter values to and from Optuna's form."""

from __future__ import annotations

from typing import Any

from optuna.distributions import (
    BaseDistribution,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
)

from graphopt.graph.kinds import SpaceKind
from graphopt.graph.node import Param
from graphopt.graph.space import Choice, Float, Int, Space

_PRIMITIVES = (type(None), bool, int, float, str)


def distribution(space: Space) -> BaseDistribution:
    """The Optuna distribution sampling the same values as ``space``.

    A ``Choice`` whose options Optuna can store as they are (distinct ``None``/bool/number/str)
    becomes a categorical over the options; any other ``Choice`` one over option positions.
    """
    if isinstance(space, Int):
        return IntDistribution(int(space.low), int(space.high), log=space.log)
    if isinstance(space, Float):
        return FloatDistribution(float(space.low), float(space.high), log=space.log)
    if isinstance(space, Choice):
        if _storable(space.options):
            return CategoricalDistribution(space.options)
        return CategoricalDistribution(list(range(len(space.options))))
    raise ValueError(f"no Optuna distribution for space {space!r}; expected Int, Float or Choice")


def space_of(target: Param) -> Space:
    """The space of a hyperparameter, or ``ValueError`` for a parameter without one."""
    if not isinstance(target.kind, SpaceKind):
        raise ValueError(f"needs a space (go.Int, go.Float or go.Choice), got kind {target.kind.describe()!r}")
    return target.kind.space


def to_optuna(space: Space, value: Any) -> Any:
    """A valid value of ``space`` as Optuna stores it."""
    if isinstance(space, Choice) and not _storable(space.options):
        return space.index(value)
    return value


def from_optuna(space: Space, value: Any) -> Any:
    """The value of ``space`` that Optuna's ``value`` stands for."""
    if isinstance(space, Choice):
        return space.options[value] if not _storable(space.options) else space.validate(value)
    if isinstance(space, Int):
        return int(value)
    return float(value)


def _storable(options: list[Any]) -> bool:
    # Optuna finds a choice by ==, so options equal to one another (1 and True) need positions.
    if not all(isinstance(option, _PRIMITIVES) for option in options):
        return False
    return len(set(options)) == len(options)
