"""The training history: one ``StepRecord`` per step, kept in the checkpoint and as JSONL.

Every number written is finite: a NaN or infinite score is stored as ``null`` (no score), and
files written before that rule, with ``null`` where a NaN was, still load.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any, Sequence

from pydantic import BaseModel, ConfigDict, Field, field_validator


def finite_or_none(number: float | None) -> float | None:
    """``number`` if it is finite, else ``None``."""
    return number if number is not None and math.isfinite(number) else None

from graphopt.graph.serialize import atomic_write_bytes


class UsageTotals(BaseModel):
    """Model calls (cache hits apart), tokens, USD, and runs of the workflow.

    ``evaluations`` counts real runs of the workflow on an example; ``distinct_points`` counts
    the distinct (parameter values, example) pairs among them, so ``distinct_points /
    evaluations`` is 1.0 when no pair was ever run twice.
    """

    model_config = ConfigDict(frozen=True)

    calls: int = Field(default=0, ge=0)
    cached_calls: int = Field(default=0, ge=0)
    tokens: int = Field(default=0, ge=0)
    cost: float = Field(default=0.0, ge=0.0)
    evaluations: int = Field(default=0, ge=0)
    distinct_points: int = Field(default=0, ge=0)

    @field_validator("cost", mode="before")
    @classmethod
    def _finite_cost(cls, cost: Any) -> Any:
        # A provider's NaN or infinite price must not stop the run or poison the files.
        return 0.0 if isinstance(cost, float) and not math.isfinite(cost) else cost

    def __add__(self, other: UsageTotals) -> UsageTotals:
        return UsageTotals(**{f: getattr(self, f) + getattr(other, f) for f in type(self).model_fields})

    def __sub__(self, other: UsageTotals) -> UsageTotals:
        return UsageTotals(**{f: max(0, getattr(self, f) - getattr(other, f))
                              for f in type(self).model_fields})


class Rejected(BaseModel):
    """A gated proposal that was scored and not kept: the scores before and after, and why."""

    model_config = ConfigDict(frozen=True)

    reason: str
    score_before: float | None = None
    score_after: float | None = None
    params: list[str] = Field(default_factory=list)

    @field_validator("score_before", "score_after", mode="before")
    @classmethod
    def _finite(cls, number: Any) -> Any:
        return finite_or_none(number) if isinstance(number, float) else number


class OptimizerRecord(BaseModel):
    """What one optimizer did in a step: committed params, a refusal, or a rejected proposal."""

    model_config = ConfigDict(frozen=True)

    name: str
    committed: list[str] = Field(default_factory=list)
    refused: str | None = None
    rejected: Rejected | None = None
    score_before: float | None = None  # the acceptance gate's scores, when it ran
    score_after: float | None = None

    @field_validator("score_before", "score_after", mode="before")
    @classmethod
    def _finite(cls, number: Any) -> Any:
        return finite_or_none(number) if isinstance(number, float) else number


class StepRecord(BaseModel):
    """One line of the history: step 0 is the starting point, validated before any update."""

    model_config = ConfigDict(frozen=True)

    step: int = Field(ge=0)
    epoch: int = Field(ge=0)
    values_hash: str
    train_score: float | None = None
    val_score: float | None = None
    best_score: float | None = None
    optimizers: list[OptimizerRecord] = Field(default_factory=list)
    usage: UsageTotals = Field(default_factory=UsageTotals)
    seconds: float = 0.0
    time: float = 0.0
    # The values (JSON data) of the params this step changed; step 0 holds every starting value.
    # A value too large to keep (a big tensor) is a short description instead. Reports diff these.
    changes: dict[str, Any] = Field(default_factory=dict)

    @field_validator("train_score", "val_score", "best_score", mode="before")
    @classmethod
    def _finite(cls, number: Any) -> Any:
        return finite_or_none(number) if isinstance(number, float) else number

    @field_validator("seconds", "time", mode="before")
    @classmethod
    def _finite_time(cls, number: Any) -> Any:
        return number if not isinstance(number, float) or math.isfinite(number) else 0.0


def write_history(path: str | os.PathLike[str], records: Sequence[StepRecord]) -> None:
    """Rewrite the JSONL file atomically with exactly ``records`` (as after a resume)."""
    atomic_write_bytes(path, "".join(r.model_dump_json() + "\n" for r in records).encode())


def append_history(path: str | os.PathLike[str], record: StepRecord) -> None:
    """Append one line; a line cut short by a crash is dropped when a resume rewrites the file."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    with open(target, "a", encoding="utf-8") as handle:
        handle.write(record.model_dump_json() + "\n")


def read_history(path: str | os.PathLike[str]) -> list[StepRecord]:
    """Every complete line of a history file."""
    records = []
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        if line.strip():
            records.append(StepRecord.model_validate_json(line))
    return records


def scores(records: Sequence[StepRecord], field: str = "val_score") -> list[tuple[int, Any]]:
    """``(step, value)`` of ``field`` for the records that have it."""
    return [(r.step, getattr(r, field)) for r in records if getattr(r, field) is not None]
