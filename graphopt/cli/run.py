"""``graphopt run`` and ``graphopt resume``: train a workflow file over a dataset, or continue."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

import typer
from rich.console import Console

from graphopt.cli.runconfig import RunConfig, build_trainer, make_config, read_config_file
from graphopt.errors import GraphoptError
from graphopt.train.checkpoint import Checkpoint
from graphopt.train.result import TrainResult


def run(workflow: Optional[str] = typer.Argument(None, help="path/to/file.py:name of the workflow"),
        data: Optional[Path] = typer.Option(None, help="training examples (JSONL)"),
        val: Optional[Path] = typer.Option(None, help="validation examples (JSONL)"),
        optimizer: Optional[list[str]] = typer.Option(None, help="optimizer plugin name (repeatable)"),
        model: Optional[str] = typer.Option(None, help="model for LLM optimizers, e.g. local/smollm2"),
        metric: Optional[str] = typer.Option(None, help="'exact' or path/to/file.py:name"),
        epochs: Optional[int] = typer.Option(None), batch_size: Optional[int] = typer.Option(None),
        seed: Optional[int] = typer.Option(None), concurrency: Optional[int] = typer.Option(None),
        patience: Optional[int] = typer.Option(None), max_calls: Optional[int] = typer.Option(None),
        max_usd: Optional[float] = typer.Option(None),
        checkpoint: Optional[Path] = typer.Option(None, help="checkpoint written after every step"),
        history: Optional[Path] = typer.Option(None, help="JSONL history, one line per step"),
        config: Optional[Path] = typer.Option(None, help="settings from a YAML or TOML file"),
        quiet: bool = typer.Option(False, "--quiet", "-q", help="no progress bar")) -> None:
    """Optimize a workflow's parameters over a dataset; options override the --config file."""
    settings: dict[str, Any] = read_config_file(config) if config is not None else {}
    given = {"workflow": workflow, "data": data, "val": val, "model": model, "metric": metric,
             "epochs": epochs, "batch_size": batch_size, "seed": seed, "concurrency": concurrency,
             "patience": patience, "max_calls": max_calls, "max_usd": max_usd,
             "checkpoint": checkpoint, "history": history, "optimizers": optimizer or None}
    settings.update({k: str(v) if isinstance(v, Path) else v for k, v in given.items() if v is not None})
    settings.setdefault("checkpoint", "graphopt-run.ckpt.json")
    console = Console()
    try:
        trainer = build_trainer(make_config(settings), quiet=quiet)
        result = trainer.fit()
    except (GraphoptError, ValueError) as err:
        console.print(f"[red]error:[/red] {err}")
        raise typer.Exit(1) from err
    report(result, console)


def resume(checkpoint: Path = typer.Argument(..., help="a checkpoint written by 'graphopt run'"),
           quiet: bool = typer.Option(False, "--quiet", "-q", help="no progress bar")) -> None:
    """Continue a run from its checkpoint, exactly where it stopped."""
    console = Console()
    try:
        saved = Checkpoint.load(checkpoint)
        if saved.config is None:
            raise ValueError(f"checkpoint {str(checkpoint)!r} was written by the Python API; resume it "
                             f"with go.optimize(..., resume=path)")
        config = RunConfig.model_validate(saved.config).model_copy(update={"checkpoint": str(checkpoint)})
        result = build_trainer(config, resume=checkpoint, quiet=quiet).fit()
    except (GraphoptError, ValueError) as err:
        console.print(f"[red]error:[/red] {err}")
        raise typer.Exit(1) from err
    report(result, console)


def report(result: TrainResult, console: Console) -> None:
    """Scores, usage and where the checkpoint is."""
    def number(value: float | None) -> str:
        return "-" if value is None else f"{value:.3f}"

    console.print(f"validation score: {number(result.initial_score)} -> best {number(result.best_score)} "
                  f"(step {result.best_step} of {result.steps}, {result.stopped})")
    console.print(f"usage: {result.usage.calls} model calls, {result.usage.cached_calls} cached, "
                  f"{result.usage.tokens} tokens, ${result.usage.cost:.4f}")
    if result.checkpoint:
        console.print(f"checkpoint: {result.checkpoint}")
