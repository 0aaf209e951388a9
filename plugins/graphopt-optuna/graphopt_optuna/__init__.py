"""graphopt-optuna: the ``optuna`` optimizer, Optuna's samplers and pruners for graphopt params."""

from typing import Any

from graphopt_optuna.optimizer import OptunaOptimizer

__all__ = ["OptunaOptimizer", "make_pruner", "make_sampler"]


def __getattr__(name: str) -> Any:
    # The sampler helpers import optuna: loaded when first asked for, so that registering the
    # plugin (which imports this package) leaves optuna unloaded.
    if name in ("make_pruner", "make_sampler"):
        from graphopt_optuna import samplers

        return getattr(samplers, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
