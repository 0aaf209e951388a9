"""``graphopt show``: a checkpoint's history as a table, and its best values."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from graphopt.train.checkpoint import Checkpoint


def show(checkpoint: Path = typer.Argument(..., help="a checkpoint file"),
         values: bool = typer.Option(False, "--values", help="also print the best values")) -> None:
    """Print one row per step: scores, usage and what each optimizer changed."""
    console = Console()
    saved = Checkpoint.load(checkpoint)
    console.print(history_table(saved))
    state = saved.finished or (f"failed (resumable): {escape(saved.error)}" if saved.error
                               else "in progress (resumable)")
    best = "-" if saved.best is None or saved.best.score is None else \
        f"{saved.best.score:.3f} at step {saved.best.step}"
    console.print(f"status: {state}; best validation score: {best}")
    if values and saved.best is not None:
        for name, value in saved.best.values.items():
            # Values are the user's text: brackets in a prompt are not rich markup.
            console.print(f"[bold]{escape(name)}[/bold]: {escape(repr(value))}", soft_wrap=True)


def history_table(saved: Checkpoint) -> Table:
    """The history of ``saved`` as a rich table."""
    table = Table(title="graphopt history")
    for column in ("step", "epoch", "train", "val", "best", "calls", "tokens", "cost", "changed"):
        table.add_column(column, overflow="fold")

    def number(value: float | None) -> str:
        return "-" if value is None else f"{value:.3f}"

    for record in saved.history:
        changed = "; ".join(f"{o.name}: {', '.join(o.committed) or ('refused' if o.refused else '-')}"
                            for o in record.optimizers)
        table.add_row(str(record.step), str(record.epoch), number(record.train_score),
                      number(record.val_score), number(record.best_score), str(record.usage.calls),
                      str(record.usage.tokens), f"{record.usage.cost:.4f}", escape(changed) or "-")
    return table
