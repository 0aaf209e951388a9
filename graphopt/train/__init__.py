"""The training layer: ``optimize``/``Trainer`` over datasets, with caches, checkpoints and history."""

from graphopt.train.cache import EvalCache, Outcome
from graphopt.train.checkpoint import Checkpoint
from graphopt.train.data import Example, load_examples
from graphopt.train.history import StepRecord, UsageTotals, read_history
from graphopt.train.result import TrainResult
from graphopt.train.trainer import Trainer, optimize

__all__ = ["Checkpoint", "EvalCache", "Example", "Outcome", "StepRecord", "TrainResult", "Trainer",
           "UsageTotals", "load_examples", "optimize", "read_history"]
