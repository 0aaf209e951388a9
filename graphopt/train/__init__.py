"""The training layer: ``optimize``/``Trainer`` over datasets, with caches, checkpoints and history."""

from graphopt.train.cache import EvalCache, Outcome
from graphopt.train.checkpoint import Checkpoint
from graphopt.train.data import Example, load_examples
from graphopt.train.evaluation import EvaluationResult, ExampleResult, evaluate
from graphopt.train.history import StepRecord, UsageTotals, read_history
from graphopt.train.result import TrainResult
from graphopt.train.trainer import Trainer, optimize

__all__ = ["Checkpoint", "EvalCache", "EvaluationResult", "Example", "ExampleResult", "Outcome",
           "StepRecord", "TrainResult", "Trainer", "UsageTotals", "evaluate", "load_examples",
           "optimize", "read_history"]
