"""``TrainResult``: what ``go.optimize`` returns."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from graphopt.train.history import StepRecord, UsageTotals


class TrainResult(BaseModel):
    """Best values by validation score, the history, usage, and why the run ended.

    ``stopped``: ``"completed"``, ``"early_stop"`` or ``"budget"`` (a ``go.Budget`` or
    ``max_evaluations`` ran out; the checkpoint holds the last completed step).
    """

    model_config = ConfigDict(frozen=True)

    best_values: dict[str, Any]
    best_score: float | None
    best_step: int
    initial_score: float | None
    final_score: float | None
    history: list[StepRecord] = Field(default_factory=list)
    usage: UsageTotals = Field(default_factory=UsageTotals)
    steps: int = 0
    stopped: str = "completed"
    checkpoint: str | None = None

    @property
    def evaluations(self) -> int:
        """Real runs of the workflow on an example, the cut-short step of a budget stop included."""
        return self.usage.evaluations

    @property
    def distinct_points(self) -> int:
        """Distinct (parameter values, example) pairs among ``evaluations``; equal when none was rerun."""
        return self.usage.distinct_points

    @property
    def improved(self) -> bool:
        """Whether the best validation score beats the starting one."""
        return (self.best_score is not None and self.initial_score is not None
                and self.best_score > self.initial_score)
