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
from typing import Any, Callable, Mapping

import torch

from graphopt.feedback.feedback import Feedback
from graphopt.graph.node import Node, Param
from graphopt.runtime.traced import pack
from graphopt.train.cache import EvalCache, Outcome
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


class RemoteEvaluation:
    """Called on a worker as ``task(example, traced)``; returns ``(outcome, feedback, packed)``."""

    def __init__(self, workflow: Callable[..., Any], metric: Callable[..., Any],
                 params: Mapping[str, Param], error_score: float) -> None:
        self.workflow = workflow
        self.metric = metric
        self.params = dict(params)
        self.error_score = error_score

    def __getstate__(self) -> dict[str, Any]:
        cloudpickle = importlib.import_module("cloudpickle")
        modules = _modules(self.workflow, self.metric)
        for name in modules:
            cloudpickle.register_pickle_by_value(sys.modules[name])
        try:
            blob = cloudpickle.dumps((self.workflow, self.metric, self.params))
        finally:
            for name in modules:
                cloudpickle.unregister_pickle_by_value(sys.modules[name])
        return {"blob": blob, "error_score": self.error_score}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.workflow, self.metric, self.params = pickle.loads(state["blob"])
        self.error_score = state["error_score"]

    def __call__(self, example: Example, traced: bool) -> Shipped:
        from graphopt.train.evaluate import Runner, outcome_of  # evaluate.py imports this module

        runner = Runner(self.workflow, self.metric, self.params, cache=EvalCache(), namespace="remote",
                        concurrency=1, error_score=self.error_score)
        with torch.enable_grad() if traced else torch.no_grad():
            run = runner.run(example, key="")
        prediction = run.output.value if isinstance(run.output, Node) else run.output
        outcome = outcome_of(run.feedback, prediction)
        if not traced:
            return outcome, None, None
        packed = pack(run.output, self.params) if isinstance(run.output, Node) else None
        return outcome, run.feedback, packed

