"""One evaluation shipped to another process (a Ray worker): the workflow, metric and params
travel together, the outcome and (for training examples) the packed traced run come back.

The workflow's and the metric's own modules are pickled by value with them (cloudpickle), so
the params the workflow uses on the worker are the very ones that travelled, holding the values
being scored, and a script or test module need not be importable on the workers; everything
those modules import (graphopt, the user's libraries) must be.

Torch autograd runs data-parallel: a training run whose feedback carries a loss (or whose output
is a scalar tensor requiring grad) runs its ``backward`` on the worker, onto the worker's copies
of the tensor params, and each param's ``.grad`` comes back by name. ``carried`` turns them into
a loss on the driver whose ``backward`` adds them to the driver's params' ``.grad``.
"""

from __future__ import annotations

import importlib
import pickle
import sys
from typing import Any, Mapping

import torch

from graphopt.feedback.feedback import Feedback
from graphopt.graph.kinds import is_tensor
from graphopt.graph.node import Node, Param
from graphopt.runtime.traced import pack
from graphopt.train.cache import EvalCache, Outcome, describe_json
from graphopt.train.data import Example

Grads = dict[str, torch.Tensor]
Shipped = tuple[Outcome, Feedback | None, bytes | None, Grads | None]


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
    """Called on a worker as ``task(example, traced)``; returns ``(outcome, feedback, packed,
    grads)``, the last three ``None`` for a run not traced (``grads`` also when no loss).

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
            return outcome, None, None, None
        if not isinstance(run.output, Node):
            return outcome, _detached(run.feedback), None, None
        grads = _backward_here(run.output, run.feedback, self.runner.params)
        return outcome, _detached(run.feedback), pack(run.output, self.runner.params), grads


def _backward_here(output: Node, feedback: Feedback, params: Mapping[str, Param]) -> Grads | None:
    """Torch autograd of this run onto the worker's tensor params, as ``backward`` would run it
    on the driver: each param's gradient by name (``None``: no loss with grad)."""
    loss = feedback.loss
    if loss is None and is_tensor(output.value) and output.value.numel() == 1:
        loss = output.value
    if loss is None or not loss.requires_grad:
        return None
    tensors = {name: p.value for name, p in params.items()
               if isinstance(p.value, torch.Tensor) and p.value.requires_grad}
    for tensor in tensors.values():
        tensor.grad = None  # this run's own gradient: a chunk runs several examples on one copy
    with torch.enable_grad():
        loss.backward()
    return {name: tensor.grad for name, tensor in tensors.items() if tensor.grad is not None}


def _detached(feedback: Feedback) -> Feedback:
    """``feedback`` with its loss detached: a tensor in a graph does not pickle."""
    if feedback.loss is None or not feedback.loss.requires_grad:
        return feedback
    return feedback.model_copy(update={"loss": feedback.loss.detach()})


class _Carried(torch.autograd.Function):
    """A loss computed on a worker: its value, and on backward the gradients found there."""

    @staticmethod
    def forward(ctx: Any, value: torch.Tensor, grads: tuple[torch.Tensor, ...],
                *tensors: torch.Tensor) -> torch.Tensor:
        ctx.grads = tuple(g.to(device=t.device, dtype=t.dtype) for g, t in zip(grads, tensors))
        return value.clone()

    @staticmethod
    def backward(ctx: Any, upstream: torch.Tensor) -> tuple[Any, ...]:
        return (None, None, *(g * upstream for g in ctx.grads))


def carried(output: Node, feedback: Feedback, grads: Grads, params: Mapping[str, Param]
            ) -> tuple[Node, Feedback]:
    """The rebuilt run's output and feedback, its loss (the feedback's, else the output's value)
    now one whose ``backward`` adds ``grads`` to the driver's params of those names."""
    for name in grads:
        if name not in params or not isinstance(params[name].value, torch.Tensor):
            raise KeyError(f"a run on a worker sent a gradient for param {name!r}, which is not a "
                           f"tensor param on the driver")
    names = list(grads)
    tensors = [params[n].value for n in names]
    source = feedback.loss if feedback.loss is not None else output.value
    with torch.enable_grad():
        loss = _Carried.apply(source.detach(), tuple(grads[n] for n in names), *tensors)
    if feedback.loss is not None:
        return output, feedback.model_copy(update={"loss": loss})
    object.__setattr__(output, "value", loss)
    return output, feedback
