"""Checkpoints: everything a run needs to continue exactly, written atomically after every step.

Parameter values, optimizer states, the trainer's position (epoch, offset into the epoch's
order, step), random states, best values, the history, usage, and the run's configuration when
the command line started it. The file is JSON (pydantic), replaced by rename, so a kill at any
moment leaves the previous complete checkpoint. Every field is checked on load (counts are not
negative, the position lies inside its order, the history counts the steps, random states have
their shape); a file that fails gets a ``CheckpointError`` naming the file and the field.
"""

from __future__ import annotations

import math
import os
import random
from pathlib import Path
from typing import Any, Literal

import torch
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from graphopt.errors import CheckpointError
from graphopt.graph.serialize import atomic_write_bytes
from graphopt.train.history import StepRecord, UsageTotals

FORMAT = "graphopt.checkpoint/1"


class Position(BaseModel):
    """Where the run stands: the next step continues epoch ``epoch`` at ``offset`` of ``order``."""

    model_config = ConfigDict(extra="forbid")

    epoch: int = Field(default=0, ge=0)
    offset: int = Field(default=0, ge=0)
    step: int = Field(default=0, ge=0)
    order: list[str] = Field(default_factory=list)
    stale_rounds: int = Field(default=0, ge=0)

    @model_validator(mode="after")
    def _inside_order(self) -> Position:
        if self.offset > len(self.order):
            raise ValueError(f"offset {self.offset} lies past the order's {len(self.order)} examples")
        if len(set(self.order)) != len(self.order):
            raise ValueError("order repeats an example id")
        return self


class Best(BaseModel):
    """The best validated values so far; ``score`` is ``None`` when none was finite (old files)."""

    model_config = ConfigDict(extra="forbid")

    score: float | None
    step: int = Field(ge=0)
    values: dict[str, Any]

    @field_validator("score")
    @classmethod
    def _finite(cls, score: float | None) -> float | None:
        return score if score is not None and math.isfinite(score) else None


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
    finished: Literal["completed", "early_stop"] | None = None
    # Why an unfinished run stopped (``"Type: message"``), when an error stopped it; the run
    # stays resumable from its last complete step, and the next step's checkpoint clears it.
    error: str | None = None
    config: dict[str, Any] | None = None
    # One traced run of the workflow (networkx node-link data, short values), for reports.
    graph: dict[str, Any] | None = None

    @field_validator("rng")
    @classmethod
    def _rng_shape(cls, rng: dict[str, Any]) -> dict[str, Any]:
        python, state = rng.get("python"), rng.get("torch")
        if not (isinstance(python, list) and len(python) == 3 and isinstance(python[1], list)
                and len(python[1]) == 625 and all(type(v) is int and 0 <= v < 2**32 for v in python[1])
                and (python[2] is None or isinstance(python[2], float))):
            raise ValueError("rng.python expects [version, 625 ints, gauss] as random.getstate() gives")
        if not (isinstance(state, list) and state and all(type(v) is int and 0 <= v < 256 for v in state)):
            raise ValueError("rng.torch expects the bytes of torch.get_rng_state() as ints 0..255")
        return rng

    @model_validator(mode="after")
    def _consistent(self) -> Checkpoint:
        if set(self.params) != set(self.kinds):
            raise ValueError(f"params {sorted(self.params)} and kinds {sorted(self.kinds)} name "
                             f"different parameters")
        steps = [r.step for r in self.history]
        if steps != list(range(len(steps))):
            raise ValueError("history expects one record per step, numbered from 0")
        if steps and self.position.step != steps[-1]:
            raise ValueError(f"position.step {self.position.step} does not match the history's "
                             f"last step {steps[-1]}")
        if self.best is not None and self.best.step > self.position.step:
            raise ValueError(f"best.step {self.best.step} lies after position.step {self.position.step}")
        return self

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write atomically: a temporary file, fsync, then a rename over ``path``."""
        atomic_write_bytes(path, self.model_dump_json().encode())

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Checkpoint:
        """Read a checkpoint, naming the file and the problem if it is not one."""
        where = os.fspath(path)
        try:
            text = Path(path).read_text(encoding="utf-8")
        except (OSError, UnicodeError) as err:
            raise CheckpointError(f"checkpoint {where!r}: cannot read it: {err}", path=where) from err
        try:
            return cls.model_validate_json(text)
        except ValidationError as err:
            first = err.errors()[0]
            field = ".".join(str(part) for part in first["loc"]) or "(the file)"
            raise CheckpointError(f"checkpoint {where!r}: field {field}: {first['msg']} (expected a "
                                  f"{FORMAT} file)", path=where) from err
        except (ValueError, RecursionError) as err:
            raise CheckpointError(f"checkpoint {where!r}: not a {FORMAT} file: {err}", path=where) from err


def rng_state(rng: random.Random) -> dict[str, Any]:
    """The trainer's Python RNG and torch's global CPU RNG, as JSON data."""
    version, internal, gauss = rng.getstate()
    return {"python": [version, list(internal), gauss], "torch": torch.get_rng_state().tolist()}


def set_rng_state(rng: random.Random, data: dict[str, Any]) -> None:
    """Restore what ``rng_state`` wrote."""
    version, internal, gauss = data["python"]
    rng.setstate((version, tuple(internal), gauss))
    torch.set_rng_state(torch.tensor(data["torch"], dtype=torch.uint8))
