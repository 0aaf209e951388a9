"""``graphopt report``: the HTML report of a run, drawn from its checkpoint."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.markup import escape

from graphopt.train.checkpoint import Checkpoint
from graphopt.train.report import write_run_report


def report(checkpoint: Path = typer.Argument(..., help="a checkpoint written by a run"),
           output: Optional[Path] = typer.Option(None, "--output", "-o",
                                                 help="the HTML file to write (default: next to the "
                                                      "checkpoint, named report.html)"),
           title: Optional[str] = typer.Option(None, help="the page title (default: the checkpoint's name)")
           ) -> None:
    """Write a run's report: graph, score curves, each step's parameter diffs, rejections, usage."""
    saved = Checkpoint.load(checkpoint)
    target = output if output is not None else checkpoint.with_name("report.html")
    write_run_report(target, saved, title=title or f"graphopt run: {checkpoint.name}")
    Console().print(f"wrote the report of {saved.position.step} steps to {escape(os.fspath(target))}")
