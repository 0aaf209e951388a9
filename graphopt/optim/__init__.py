"""The optimizer layer: the ``Optimizer`` base, the registry lookup and the built-in optimizers.

Plugin authors subclass ``Optimizer`` and return the class from a ``graphopt_optimizers`` hook.
"""

from graphopt.optim.objective import distinct_feedback, mean_score, to_loss
from graphopt.optim.optimizer import Optimizer
from graphopt.optim.random_search import RandomSearch
from graphopt.optim.registry import optimizer
from graphopt.optim.spsa import SPSA
from graphopt.optim.torch_optim import TorchOptimizer

__all__ = ["Optimizer", "RandomSearch", "SPSA", "TorchOptimizer", "distinct_feedback", "mean_score",
           "optimizer", "to_loss"]
