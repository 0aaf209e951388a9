"""``graphopt export``: a run's best (or last) values as a parameter file ``Module.load`` reads."""

from __future__ import annotations

import os
from pathlib import Path

import typer
from rich.console import Console
from rich.markup import escape

from graphopt.graph.serialize import write_values
from graphopt.train.checkpoint import Checkpoint
from graphopt.train.result import TrainResult

VALUES = ("best", "last")


def export(checkpoint: Path = typer.Argument(..., help="a checkpoint written by a run"),
           output: Path = typer.Option(..., "--output", "-o", help="the parameter file to write"),
           values: str = typer.Option("best", help="'best' (validated) or 'last' values")) -> None:
    """Write a run's values as a parameter file for Module.load / go.Module.load_state_dict."""
    if values not in VALUES:
        raise ValueError(f"option --values expects 'best' or 'last', got {values!r}")
    saved = Checkpoint.load(checkpoint)
    if values == "best" and saved.best is not None:
        chosen, where = saved.best.values, f"best values, step {saved.best.step}"
    else:
        chosen, where = saved.params, f"last values, step {saved.position.step}"
    write_values(output, chosen, saved.kinds)
    Console().print(f"wrote {len(chosen)} params ({where}) to {escape(os.fspath(output))}")


def save_result(result: TrainResult, kinds: dict[str, str], path: str | os.PathLike[str]) -> None:
    """A finished run's best values as a parameter file (``graphopt run --save``)."""
    write_values(path, result.best_values, kinds)
