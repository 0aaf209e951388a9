"""One evaluation shipped to another process (a Ray worker): the workflow, metric and params
travel together, the outcome and (for training examples) the packed traced run come back.

The workflow's and the metric's own modules are pickled by value with them (cloudpickle), so
the params the workflow uses on the worker are the very ones that travelled, holding the values
being scored, and a script or test module need not be importable on the workers; everything
those modules import (graphopt, the user's libraries) must be.
"""

from __future__ import annotations

import importlib
import pickle
import sys
from typing import Any

import torch

from graphopt.feedback.feedback import Feedback
from graphopt.graph.node import Node
from graphopt.runtime.traced import pack
from graphopt.train.cache import EvalCache, Outcome, describe_json
from graphopt.train.data import Example

Shipped = tuple[Outcome, Feedback | None, bytes | None]


def _modules(*functions: Any) -> list[str]:
    names: list[str] = []
    for function in functions:
        owner = getattr(function, "__self__", None)
        name = type(owner).__module__ if owner is not None else getattr(function, "__module__", None)
        if (name and name != "__main__" and not name.startswith("graphopt.") and name in sys.modules
                and name not in names):
            names.append(name)
    return names


def outcome_of(feedback: Feedback, prediction: Any) -> Outcome:
    """The cacheable part of a run's feedback."""
    loss = float(feedback.loss.detach()) if feedback.loss is not None else None
    error = f"{feedback.error.type}: {feedback.error.message}" if feedback.error is not None else None
    return Outcome(score=feedback.score, loss=loss, text=feedback.text, error=error,
                   output=describe_json(prediction))


class RemoteEvaluation:
    """Called on a worker as ``task(example, traced)``; returns ``(outcome, feedback, packed)``.

    Built from the driver's runner; what travels is its class, workflow, metric, params and
    error score, and the worker runs each example on a fresh single-threaded runner of them.
    """

    def __init__(self, runner: Any) -> None:
        self.runner = runner

    def __getstate__(self) -> dict[str, Any]:
        cloudpickle = importlib.import_module("cloudpickle")
        runner = self.runner
        modules = _modules(runner.workflow, runner.metric)
        for name in modules:
            cloudpickle.register_pickle_by_value(sys.modules[name])
        try:
            blob = cloudpickle.dumps((type(runner), runner.workflow, runner.metric, runner.params,
                                      runner.error_score))
        finally:
            for name in modules:
                cloudpickle.unregister_pickle_by_value(sys.modules[name])
        return {"blob": blob}

    def __setstate__(self, state: dict[str, Any]) -> None:
        kind, workflow, metric, params, error_score = pickle.loads(state["blob"])
        self.runner = kind(workflow, metric, params, cache=EvalCache(), namespace="remote",
                           concurrency=1, error_score=error_score)

    def __call__(self, example: Example, traced: bool) -> Shipped:
        with torch.enable_grad() if traced else torch.no_grad():
            run = self.runner.run(example, key="")
        prediction = run.output.value if isinstance(run.output, Node) else run.output
        outcome = outcome_of(run.feedback, prediction)
        if not traced:
            return outcome, None, None
        packed = pack(run.output, self.runner.params) if isinstance(run.output, Node) else None
        return outcome, run.feedback, packed
