"""Checkpoints: everything a run needs to continue exactly, written atomically after every step.

Parameter values, optimizer states, the trainer's position (epoch, offset into the epoch's
order, step), random states, best values, the history, usage, and the run's configuration when
the command line started it. The file is JSON (pydantic), replaced by rename, so a kill at any
moment leaves the previous complete checkpoint.
"""

from __future__ import annotations

import os
import random
from pathlib import Path
from typing import Any, Literal

import torch
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from graphopt.errors import CheckpointError
from graphopt.graph.serialize import atomic_write_bytes
from graphopt.train.history import StepRecord, UsageTotals

FORMAT = "graphopt.checkpoint/1"


class Position(BaseModel):
    """Where the run stands: the next step continues epoch ``epoch`` at ``offset`` of ``order``."""

    epoch: int = 0
    offset: int = 0
    step: int = 0
    order: list[str] = Field(default_factory=list)
    stale_rounds: int = 0


class Best(BaseModel):
    """The best validated values so far."""

    score: float
    step: int
    values: dict[str, Any]


class Checkpoint(BaseModel):
    """A resumable snapshot of a training run."""

    model_config = ConfigDict(extra="forbid")

    format: Literal["graphopt.checkpoint/1"] = FORMAT
    params: dict[str, Any]
    kinds: dict[str, str]
    optimizers: list[dict[str, Any]]
    position: Position
    rng: dict[str, Any]
    best: Best | None = None
    history: list[StepRecord] = Field(default_factory=list)
    usage: UsageTotals = Field(default_factory=UsageTotals)
    finished: str | None = None
    config: dict[str, Any] | None = None

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write atomically: a temporary file, fsync, then a rename over ``path``."""
        atomic_write_bytes(path, self.model_dump_json().encode())

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Checkpoint:
        """Read a checkpoint, naming the file and the problem if it is not one."""
        where = os.fspath(path)
        try:
            text = Path(path).read_text(encoding="utf-8")
        except OSError as err:
            raise CheckpointError(f"checkpoint {where!r}: cannot read it: {err}", path=where) from err
        try:
            return cls.model_validate_json(text)
        except ValidationError as err:
            raise CheckpointError(f"checkpoint {where!r}: expected a {FORMAT} file, got: "
                                  f"{err.errors()[0]['msg']} at {err.errors()[0]['loc']}", path=where) from err


def rng_state(rng: random.Random) -> dict[str, Any]:
    """The trainer's Python RNG and torch's global CPU RNG, as JSON data."""
    version, internal, gauss = rng.getstate()
    return {"python": [version, list(internal), gauss], "torch": torch.get_rng_state().tolist()}


def set_rng_state(rng: random.Random, data: dict[str, Any]) -> None:
    """Restore what ``rng_state`` wrote."""
    version, internal, gauss = data["python"]
    rng.setstate((version, tuple(internal), gauss))
    torch.set_rng_state(torch.tensor(data["torch"], dtype=torch.uint8))
