"""The training history: one ``StepRecord`` per step, kept in the checkpoint and as JSONL."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Sequence

from pydantic import BaseModel, ConfigDict, Field

from graphopt.graph.serialize import atomic_write_bytes


class UsageTotals(BaseModel):
    """Model calls (cache hits apart), tokens and USD."""

    model_config = ConfigDict(frozen=True)

    calls: int = 0
    cached_calls: int = 0
    tokens: int = 0
    cost: float = 0.0

    def __add__(self, other: UsageTotals) -> UsageTotals:
        return UsageTotals(calls=self.calls + other.calls,
                           cached_calls=self.cached_calls + other.cached_calls,
                           tokens=self.tokens + other.tokens, cost=self.cost + other.cost)


class OptimizerRecord(BaseModel):
    """What one optimizer did in a step."""

    model_config = ConfigDict(frozen=True)

    name: str
    committed: list[str] = Field(default_factory=list)
    refused: str | None = None


class StepRecord(BaseModel):
    """One line of the history: step 0 is the starting point, validated before any update."""

    model_config = ConfigDict(frozen=True)

    step: int
    epoch: int
    values_hash: str
    train_score: float | None = None
    val_score: float | None = None
    best_score: float | None = None
    optimizers: list[OptimizerRecord] = Field(default_factory=list)
    usage: UsageTotals = Field(default_factory=UsageTotals)
    seconds: float = 0.0
    time: float = 0.0


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
