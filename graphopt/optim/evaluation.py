"""What a search optimizer may ask of the loop that drives it: scores of candidate values.

``step(closure)`` receives either a plain closure (run the workflow with the current values,
return a loss, score or ``Feedback``) or an ``Evaluation``, which is also such a closure and can
score candidate values on examples one by one, as racing needs. ``as_evaluation`` turns a plain
closure into an ``Evaluation`` with one "example": the closure's whole result.

A search optimizer keeps an ``EvaluationMemo`` across its steps: results by (values, example),
so values already scored are never run again, and the count of real runs and distinct points.
"""

from __future__ import annotations

import hashlib
import json
import sys
from collections import OrderedDict
from contextlib import contextmanager
from typing import Any, Callable, Iterator, Mapping, Protocol, Sequence, runtime_checkable

from graphopt.errors import OptimizerStepError
from graphopt.graph.kinds import is_tensor
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


def is_evaluation(closure: Any) -> bool:
    """``isinstance(closure, Evaluation)`` at the cost of two attribute lookups: a
    ``runtime_checkable`` protocol's own check walks the protocol's members on every call
    (about 0.1 ms in Python 3.11), too slow for a search optimizer's every step."""
    return hasattr(closure, "scores") and hasattr(closure, "size")


class EvaluationMemo:
    """Results by (parameter values, example), bounded, with counts of real runs.

    ``evaluations`` counts the runs made through the memo, ``distinct_points`` the (values,
    example) pairs among them seen for the first time; the two are equal when nothing was run
    twice. The newest ``capacity`` results are kept (least recently used dropped first), so
    ``distinct_points`` is exact while fewer than ``capacity`` pairs were run. ``capacity=0``
    keeps nothing and only counts: for a closure whose result for the same values changes from
    step to step (a new minibatch each time).
    """

    __slots__ = ("capacity", "entries", "evaluations", "distinct_points")

    def __init__(self, capacity: int = 10_000) -> None:
        if isinstance(capacity, bool) or not isinstance(capacity, int) or capacity < 0:
            raise ValueError(f"EvaluationMemo capacity expects an int >= 0, got {capacity!r}")
        self.capacity = capacity
        self.entries: OrderedDict[str, Any] = OrderedDict()
        self.evaluations = 0
        self.distinct_points = 0

    def lookup(self, key: str) -> Any | None:
        """The result stored under ``key``, or ``None``."""
        found = self.entries.get(key)
        if found is not None:
            self.entries.move_to_end(key)
        return found

    def record(self, key: str, result: Any) -> None:
        """Store the result of a real run (JSON data, not ``None``) and count it."""
        self.evaluations += 1
        if key not in self.entries:
            self.distinct_points += 1
        self.entries[key] = result
        self.entries.move_to_end(key)
        while len(self.entries) > self.capacity:
            self.entries.popitem(last=False)

    def run(self, key: str, compute: Callable[[], Any]) -> Any:
        """The stored result under ``key``, else ``compute()``'s, recorded."""
        found = self.lookup(key)
        if found is None:
            found = compute()
            self.record(key, found)
        return found

    def state_dict(self) -> dict[str, Any]:
        return {"capacity": self.capacity, "evaluations": self.evaluations,
                "distinct_points": self.distinct_points, "entries": [[k, v] for k, v in self.entries.items()]}

    def load_state_dict(self, data: Mapping[str, Any]) -> None:
        self.capacity = int(data["capacity"])
        self.evaluations = int(data["evaluations"])
        self.distinct_points = int(data["distinct_points"])
        self.entries = OrderedDict((str(k), v) for k, v in data["entries"])


class Counted:
    """Mixin for optimizers that evaluate through an ``EvaluationMemo`` named ``memo``: how many
    closure runs they made and how many distinct values those were."""

    memo: EvaluationMemo

    @property
    def evaluations(self) -> int:
        """Closure runs made through the memo (steps scored by feedback alone are not counted)."""
        return self.memo.evaluations

    @property
    def distinct_points(self) -> int:
        """Distinct values among ``evaluations``."""
        return self.memo.distinct_points


def point_key(values: Mapping[Param, Any], names: Mapping[Param, str], example: int = 0) -> str:
    """A digest of ``values`` (by parameter name: its JSON form, tensors by their bytes) and
    ``example``: equal for equal values, whatever their order."""
    digest = hashlib.sha256()
    plain = []
    for name, target in sorted((names[p], p) for p in values):
        value = values[target]
        if is_tensor(value):
            tensor = value.detach().cpu().contiguous()
            digest.update(f"{name}\0{tensor.dtype}{tuple(tensor.shape)}\0".encode())
            digest.update(tensor.view(sys.modules["torch"].uint8).numpy().tobytes() if tensor.numel() else b"")
        else:
            plain.append([name, target.kind.to_json(value)])
    digest.update(json.dumps([plain, example], sort_keys=True).encode())
    return digest.hexdigest()[:32]


def current_values(params: Sequence[Param]) -> dict[Param, Any]:
    """Each param's value now (tensors as they are: ``point_key`` reads their bytes)."""
    return {p: p.value for p in params}


class ClosureEvaluation:
    """A plain closure as an ``Evaluation`` of size 1: its result, negated if a loss.

    Given a ``memo`` (and the params' ``names``), ``scores`` runs the closure once per values:
    candidates scored before, in this step or an earlier one, are read back.
    """

    def __init__(self, closure: Callable[[], Any], *, memo: EvaluationMemo | None = None,
                 names: Mapping[Param, str] | None = None) -> None:
        if memo is not None and names is None:
            raise ValueError("ClosureEvaluation with a memo needs the params' names to key it")
        self.closure = closure
        self.memo = memo
        self.names = names

    def __call__(self) -> Any:
        return self.closure()

    @property
    def size(self) -> int:
        return 1

    def scores(self, values: Mapping[Param, Any], indices: Sequence[int]) -> list[float]:
        if not indices:
            return []
        if self.memo is None or self.names is None:
            return [self._score(values)]
        return [self.memo.run(point_key(values, self.names), lambda: self._score(values))]

    def _score(self, values: Mapping[Param, Any]) -> float:
        with assigned(values):
            return -to_loss(self.closure())


def as_evaluation(closure: Callable[[], Any] | None, *, memo: EvaluationMemo | None = None,
                  names: Mapping[Param, str] | None = None) -> Evaluation | None:
    """``closure`` itself if it is an ``Evaluation``, else wrapped (scoring through ``memo``,
    keyed by ``names``, when given); ``None`` stays ``None``."""
    if closure is None or is_evaluation(closure):
        return closure
    return ClosureEvaluation(closure, memo=memo, names=names)


def require_evaluation(optimizer: Any, closure: Callable[[], Any] | None, *,
                       memo: EvaluationMemo | None = None,
                       names: Mapping[Param, str] | None = None) -> Evaluation:
    """``as_evaluation(closure, ...)``, or ``OptimizerStepError`` naming ``optimizer`` (which
    scores candidates, so cannot step without a closure) when there is none."""
    evaluation = as_evaluation(closure, memo=memo, names=names)
    if evaluation is None:
        raise OptimizerStepError(f"optimizer {optimizer.name!r} needs step(closure): a function that "
                                 "runs the workflow and returns its score", optimizer=optimizer)
    return evaluation


@contextmanager
def assigned(values: Mapping[Param, Any]) -> Iterator[None]:
    """Give params ``values`` (already validated) for the block, then restore the previous ones."""
    previous = {p: p.value.detach().clone() if is_tensor(p.value) else p.value
                for p in values}
    try:
        for target, value in values.items():
            _set(target, value)
        yield
    finally:
        for target, value in previous.items():
            _set(target, value)


def _set(target: Param, value: Any) -> None:
    if is_tensor(target.value):
        with sys.modules["torch"].no_grad():  # a tensor exists, so torch is loaded
            target.value.copy_(value)
    else:
        target.value = value
