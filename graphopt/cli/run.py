"""``graphopt run`` and ``graphopt resume``: train a workflow file over a dataset, or continue."""

from __future__ import annotations

import contextlib
import shlex
import signal
import threading
from pathlib import Path
from typing import Any, Iterator, Optional

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.markup import escape

from graphopt.cli.export import save_result
from graphopt.cli.runconfig import RunConfig, build_trainer, make_config, read_config_file
from graphopt.errors import CheckpointError
from graphopt.train.checkpoint import Checkpoint
from graphopt.train.result import TrainResult
from graphopt.train.trainer import Trainer


def run(workflow: Optional[str] = typer.Argument(None, help="path/to/file.py:name of the workflow"),
        data: Optional[Path] = typer.Option(None, help="training examples (JSONL)"),
        val: Optional[Path] = typer.Option(None, help="validation examples (JSONL)"),
        optimizer: Optional[list[str]] = typer.Option(None, help="optimizer plugin name (repeatable)"),
        model: Optional[str] = typer.Option(None, help="model for LLM optimizers, e.g. local/smollm2"),
        metric: Optional[str] = typer.Option(None, help="'exact' or path/to/file.py:name"),
        epochs: Optional[int] = typer.Option(None, help="passes over the training data (default 1)"),
        batch_size: Optional[int] = typer.Option(None, help="examples per step (default 8)"),
        seed: Optional[int] = typer.Option(None, help="seed of shuffling and sampling (default 0)"),
        concurrency: Optional[int] = typer.Option(None, help="examples run at once (default 4)"),
        executor: Optional[str] = typer.Option(None, help="where evaluations run: threads (default) "
                                                          "or ray (docs/ray.md)"),
        address: Optional[str] = typer.Option(None, help="Ray cluster address (with --executor ray; "
                                                         "default: RAY_ADDRESS or a local Ray)"),
        patience: Optional[int] = typer.Option(None, help="stop after this many validations without "
                                                           "improvement"),
        max_calls: Optional[int] = typer.Option(None, help="budget: most model calls"),
        max_usd: Optional[float] = typer.Option(None, help="budget: most US dollars spent"),
        checkpoint: Optional[Path] = typer.Option(None, help="checkpoint written after every step"),
        history: Optional[Path] = typer.Option(None, help="JSONL history, one line per step"),
        config: Optional[Path] = typer.Option(None, help="settings from a YAML or TOML file"),
        save: Optional[Path] = typer.Option(None, help="write the best values here as a parameter "
                                                       "file (for Module.load)"),
        quiet: bool = typer.Option(False, "--quiet", "-q", help="no progress bar")) -> None:
    """Optimize a workflow's parameters over a dataset; options override the --config file."""
    settings: dict[str, Any] = read_config_file(config) if config is not None else {}
    origin = {key: f"config {str(config)!r}" for key in settings}
    given = {"workflow": workflow, "data": data, "val": val, "model": model, "metric": metric,
             "epochs": epochs, "batch_size": batch_size, "seed": seed, "concurrency": concurrency,
             "executor": executor, "address": address, "patience": patience, "max_calls": max_calls, "max_usd": max_usd,
             "checkpoint": checkpoint, "history": history, "optimizers": optimizer or None}
    for key, value in given.items():
        if value is not None:
            settings[key] = str(value) if isinstance(value, Path) else value
            origin[key] = "argument WORKFLOW" if key == "workflow" else \
                f"option --{'optimizer' if key == 'optimizers' else key.replace('_', '-')}"
    settings.setdefault("checkpoint", "graphopt-run.ckpt.json")
    run_config = make_config(settings, origin=origin)
    trainer = build_trainer(run_config, quiet=quiet)
    finish(trainer, fit(trainer, run_config.checkpoint), save)


def resume(checkpoint: Path = typer.Argument(..., help="a checkpoint written by 'graphopt run'"),
           model: Optional[str] = typer.Option(None, help="model for LLM optimizers (default: the "
                                                          "run's own)"),
           max_calls: Optional[int] = typer.Option(None, min=0, help="budget: most model calls"),
           max_usd: Optional[float] = typer.Option(None, min=0, help="budget: most US dollars spent"),
           address: Optional[str] = typer.Option(None, help="Ray cluster to continue on (a run with "
                                                            "--executor ray; default: the run's own)"),
           save: Optional[Path] = typer.Option(None, help="write the best values here as a parameter "
                                                          "file (for Module.load)"),
           quiet: bool = typer.Option(False, "--quiet", "-q", help="no progress bar")) -> None:
    """Continue a run from its checkpoint, exactly where it stopped; model and budget options
    replace the run's own."""
    saved = Checkpoint.load(checkpoint)
    if saved.config is None:
        raise ValueError(f"checkpoint {str(checkpoint)!r} was written by the Python API; resume it "
                         f"with go.optimize(..., resume=path)")
    try:
        config = RunConfig.model_validate(saved.config)
    except ValidationError as err:
        raise CheckpointError(f"checkpoint {str(checkpoint)!r}: its run settings are not valid: "
                              f"{err.errors()[0]['msg']} at {err.errors()[0]['loc']}",
                              path=str(checkpoint)) from err
    given = {"model": model, "max_calls": max_calls, "max_usd": max_usd, "address": address}
    config = config.model_copy(update={"checkpoint": str(checkpoint),
                                       **{k: v for k, v in given.items() if v is not None}})
    trainer = build_trainer(config, resume=checkpoint, quiet=quiet)
    finish(trainer, fit(trainer, config.checkpoint), save)


def finish(trainer: Trainer, result: TrainResult, save: Path | None) -> None:
    """Report the run and, with ``--save``, write its best values as a parameter file."""
    console = Console()
    report(result, console)
    if save is not None:
        save_result(result, {n: p.kind.name for n, p in trainer.params.items()}, save)
        console.print(f"best values: {escape(str(save))}")


@contextlib.contextmanager
def signals_interrupt() -> Iterator[list[int]]:
    """SIGTERM, like SIGINT, raises ``KeyboardInterrupt`` in the main thread; yields the signals seen.

    The trainer then stops between writes: its checkpoint is always the last complete step.
    """
    received: list[int] = []
    if threading.current_thread() is not threading.main_thread():
        yield received
        return

    def interrupt(signum: int, frame: Any) -> None:
        received.append(signum)
        raise KeyboardInterrupt(signal.Signals(signum).name)

    previous = {signum: signal.signal(signum, interrupt) for signum in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield received
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def fit(trainer: Trainer, checkpoint: str | None) -> TrainResult:
    """``trainer.fit()``; on SIGINT/SIGTERM, say where it stopped and how to resume, then exit."""
    with signals_interrupt() as received:
        try:
            result = trainer.fit()
        except KeyboardInterrupt:
            if not received:  # raised without our handler (a thread that is not the main one)
                received.append(signal.SIGINT)
            result = None
    if not received:
        return result  # type: ignore[return-value]
    typer.echo(interrupted_message(checkpoint), err=True)
    raise typer.Exit(128 + received[-1])


def interrupted_message(checkpoint: str | None) -> str:
    """``interrupted at step N; resume with: graphopt resume PATH``, from the checkpoint on disk."""
    path = Path(checkpoint) if checkpoint else None
    if path is None or not path.is_file():
        return "interrupted before the first checkpoint was written; nothing to resume"
    try:
        saved = Checkpoint.load(path)
    except CheckpointError as err:
        return f"interrupted; the checkpoint cannot be resumed: {err}"
    if saved.finished is not None:
        return f"interrupted after the run {saved.finished} at step {saved.position.step}; checkpoint: {path}"
    return f"interrupted at step {saved.position.step}; resume with: graphopt resume {shlex.quote(str(path))}"


def report(result: TrainResult, console: Console) -> None:
    """Scores, usage and where the checkpoint is."""
    def number(value: float | None) -> str:
        return "-" if value is None else f"{value:.3f}"

    console.print(f"validation score: {number(result.initial_score)} -> best {number(result.best_score)} "
                  f"(step {result.best_step} of {result.steps}, {result.stopped})")
    console.print(f"usage: {result.usage.calls} model calls, {result.usage.cached_calls} cached, "
                  f"{result.usage.tokens} tokens, ${result.usage.cost:.4f}")
    if result.checkpoint:
        console.print(f"checkpoint: {escape(result.checkpoint)}")
