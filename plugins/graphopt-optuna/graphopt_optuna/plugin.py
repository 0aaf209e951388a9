"""The hook graphopt's plugin manager finds through the ``graphopt`` entry point ``optuna``."""

from __future__ import annotations

from graphopt.plugins import hookimpl
from graphopt_optuna.optimizer import OptunaOptimizer


@hookimpl
def graphopt_optimizers() -> list[type]:
    return [OptunaOptimizer]
