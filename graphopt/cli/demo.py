"""``graphopt demo``: the main job, offline on the embedded model."""

from __future__ import annotations

import signal
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console

from graphopt.cli.run import signals_interrupt
from graphopt.demo.run import run_demo


def demo(quick: bool = typer.Option(False, "--quick", help="a smaller run, for tests"),
         model: Optional[str] = typer.Option(None, help="model (default: $GRAPHOPT_MODEL, else local/smollm2)"),
         cache_dir: Optional[Path] = typer.Option(None, help="cache root (default: $GRAPHOPT_CACHE_DIR)"),
         out: Optional[Path] = typer.Option(None, help="where the report and checkpoint go"),
         search: str = typer.Option("auto", help="instruction optimizer: auto, optoprime or evolution"),
         quiet: bool = typer.Option(False, "--quiet", "-q", help="no progress bar")) -> None:
    """Optimize a hybrid review-triage workflow (LLM, trainable parser, torch head) offline."""
    console = Console()
    console.print("graphopt demo: review triage with an LLM step, trainable parsing and a torch head")
    with signals_interrupt() as received:
        try:
            summary = run_demo(quick=quick, model=model, cache_dir=cache_dir, out=out, search=search,
                               quiet=quiet, console=console)
        except KeyboardInterrupt:
            received.append(received[-1] if received else signal.SIGINT)
    if received:
        typer.echo("interrupted; run graphopt demo again: model calls already made come from the cache",
                   err=True)
        raise typer.Exit(128 + received[-1])
    console.print(f"validation score (confident accuracy): before {summary.before:.3f}, "
                  f"after {summary.after:.3f}")
    console.print(f"usage: {summary.calls} model calls, {summary.cached_calls} served from cache, "
                  f"{summary.tokens} tokens, ${summary.cost:.4f}, {summary.steps} steps in "
                  f"{summary.seconds:.1f} s (instruction optimizer: {summary.instruction_optimizer})")
    console.print(f"report: {summary.report}")
    console.print(f"checkpoint: {summary.checkpoint} (try: graphopt show {summary.checkpoint})")
