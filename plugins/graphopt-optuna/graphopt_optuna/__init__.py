"""graphopt-optuna: the ``optuna`` optimizer, Optuna's samplers and pruners for graphopt params."""

from graphopt_optuna.optimizer import OptunaOptimizer
from graphopt_optuna.samplers import make_pruner, make_sampler

__all__ = ["OptunaOptimizer", "make_pruner", "make_sampler"]
