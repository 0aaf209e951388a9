"""What a search optimizer may ask of the loop that drives it: scores of candidate values.

``step(closure)`` receives either a plain closure (run the workflow with the current values,
return a loss, score or ``Feedback``) or an ``Evaluation``, which is also such a closure and can
score candidate values on examples one by one, as racing needs. ``as_evaluation`` turns a plain
closure into an ``Evaluation`` with one "example": the closure's whole result.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Any, Callable, Iterator, Mapping, Protocol, Sequence, runtime_checkable

import torch

from graphopt.graph.node import Param
from graphopt.optim.objective import to_loss


@runtime_checkable
class Evaluation(Protocol):
    """A closure over the current values that can also score candidates example by example."""

    def __call__(self) -> Any:
        """The current values' result on the step's examples (a ``Feedback``)."""

    @property
    def size(self) -> int:
        """How many examples ``scores`` can use (indices ``0 .. size-1``, a fixed order)."""

    def scores(self, values: Mapping[Param, Any], indices: Sequence[int]) -> list[float]:
        """One score (higher is better) per example index, with ``values`` assigned meanwhile."""


class ClosureEvaluation:
    """A plain closure as an ``Evaluation`` of size 1: its result, negated if a loss."""

    def __init__(self, closure: Callable[[], Any]) -> None:
        self.closure = closure

    def __call__(self) -> Any:
        return self.closure()

    @property
    def size(self) -> int:
        return 1

    def scores(self, values: Mapping[Param, Any], indices: Sequence[int]) -> list[float]:
        if not indices:
            return []
        with assigned(values):
            return [-to_loss(self.closure())]


def as_evaluation(closure: Callable[[], Any] | None) -> Evaluation | None:
    """``closure`` itself if it is an ``Evaluation``, else wrapped; ``None`` stays ``None``."""
    if closure is None or isinstance(closure, Evaluation):
        return closure
    return ClosureEvaluation(closure)


@contextmanager
def assigned(values: Mapping[Param, Any]) -> Iterator[None]:
    """Give params ``values`` (already validated) for the block, then restore the previous ones."""
    previous = {p: p.value.detach().clone() if isinstance(p.value, torch.Tensor) else p.value
                for p in values}
    try:
        for target, value in values.items():
            _set(target, value)
        yield
    finally:
        for target, value in previous.items():
            _set(target, value)


def _set(target: Param, value: Any) -> None:
    if isinstance(target.value, torch.Tensor):
        with torch.no_grad():
            target.value.copy_(value)
    else:
        target.value = value
