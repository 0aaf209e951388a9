"""``TrainResult``: what ``go.optimize`` returns."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from graphopt.train.history import StepRecord, UsageTotals


class TrainResult(BaseModel):
    """Best values by validation score, the history, usage, and why the run ended."""

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
    def improved(self) -> bool:
        """Whether the best validation score beats the starting one."""
        return (self.best_score is not None and self.initial_score is not None
                and self.best_score > self.initial_score)
