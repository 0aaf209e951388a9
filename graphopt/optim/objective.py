"""Reading a number to minimize out of feedback, closures' results and accumulated feedback."""

from __future__ import annotations

import math
from typing import Any, Iterable

from graphopt.feedback.feedback import Feedback
from graphopt.feedback.propagators import ParamFeedback
from graphopt.graph.kinds import is_tensor
from graphopt.graph.node import Node, Param


def to_loss(result: Any) -> float:
    """A closure's result as a loss: numbers and tensors as they are, a ``Feedback``'s loss,
    else its negated score (scores are maximized)."""
    if isinstance(result, Node):
        result = result.value
    if isinstance(result, Feedback):
        if result.loss is not None:
            return float(result.loss.detach())
        if result.score is not None:
            return -result.score
        raise ValueError(f"feedback {result.describe()!r} has neither loss nor score")
    if is_tensor(result):
        return float(result.detach())
    if isinstance(result, bool) or not isinstance(result, (int, float)):
        raise ValueError(f"expected a number, tensor or Feedback, got {type(result).__name__}")
    return float(result)


def distinct_feedback(params: Iterable[Param]) -> list[Feedback]:
    """Each feedback once, though it may have reached several of ``params``."""
    seen: set[int] = set()
    found: list[Feedback] = []
    for target in params:
        for item in target.feedback:
            if isinstance(item, ParamFeedback) and id(item.feedback) not in seen:
                seen.add(id(item.feedback))
                found.append(item.feedback)
    return found


def mean_score(feedbacks: Iterable[Feedback]) -> float | None:
    """Mean score (losses count as negated scores); ``None`` without any number to average."""
    values = []
    for feedback in feedbacks:
        if feedback.score is not None:
            values.append(feedback.score)
        elif feedback.loss is not None:
            values.append(-float(feedback.loss.detach()))
    values = [v for v in values if not math.isnan(v)]
    return sum(values) / len(values) if values else None
