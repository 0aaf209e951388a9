"""``graphopt eval``: score a workflow (its own values, or a run's) on a dataset; table and JSON."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from graphopt.cli.runconfig import load_metric, load_workflow
from graphopt.graph.serialize import atomic_write_bytes, read_values
from graphopt.llm.config import load_settings
from graphopt.train.evaluation import EvaluationResult, evaluate
from graphopt.train.values import restore


def eval_command(workflow: str = typer.Argument(..., help="path/to/file.py:name of the workflow"),
                 data: Path = typer.Option(..., help="examples to score (JSONL)"),
                 metric: str = typer.Option("exact", help="'exact' or path/to/file.py:name"),
                 params: Optional[Path] = typer.Option(
                     None, help="values to score: a parameter file, or a checkpoint (see --values)"),
                 values: str = typer.Option("best", help="from a checkpoint: 'best' or 'last' values"),
                 concurrency: int = typer.Option(4, min=1, help="examples run at once"),
                 executor: str = typer.Option("threads", help="where examples run: threads or ray "
                                                              "(docs/ray.md)"),
                 address: Optional[str] = typer.Option(None, help="Ray cluster address (with "
                                                                  "--executor ray)"),
                 eval_cache: Optional[Path] = typer.Option(
                     None, help="evaluation cache directory (default: graphopt's, as 'graphopt "
                                "cache stats' shows it)"),
                 no_eval_cache: bool = typer.Option(False, "--no-eval-cache",
                                                    help="run every example, keep nothing"),
                 target_key: str = typer.Option("target", help="the target's field in each row"),
                 output: Optional[Path] = typer.Option(None, "--output", "-o",
                                                       help="write the result as JSON here")) -> None:
    """Score a workflow on a dataset: one row per example, then the mean, errors, usage and cost."""
    found, named = load_workflow(workflow)
    if params is not None:
        restore(named, read_values(params, values=values))
    cache = None if no_eval_cache else eval_cache or load_settings().cache_dir / "eval"
    result = evaluate(found, str(data), load_metric(metric), concurrency=concurrency, cache=cache,
                      target_key=target_key, executor=executor, address=address)
    console = Console()
    console.print(result_table(result))
    console.print(escape(result.summary()))
    if output is not None:
        atomic_write_bytes(output, result.model_dump_json(indent=1).encode())
        console.print(f"result: {escape(str(output))}")


def result_table(result: EvaluationResult) -> Table:
    """One row per example: id, score, output, and the error or the metric's feedback."""
    table = Table(title="graphopt evaluation")
    for column in ("id", "score", "output", "error / feedback"):
        table.add_column(column, overflow="fold")
    for example in result.examples:
        note = example.error or example.text or ""
        table.add_row(escape(example.id), f"{example.score:.3f}", escape(example.output),
                      escape(note))
    return table
