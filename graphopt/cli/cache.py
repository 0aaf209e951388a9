"""``graphopt cache stats|clear``: the LLM reply cache and the evaluation cache."""

from __future__ import annotations

from typing import Optional

import typer
from rich.console import Console
from rich.table import Table

from graphopt.llm.cache import shared_cache
from graphopt.llm.config import load_settings
from graphopt.train.cache import EvalCache

app = typer.Typer(name="cache", no_args_is_help=True, rich_markup_mode=None,
                  help="Inspect or empty graphopt's caches.")


def _caches(cache_dir: Optional[str]) -> dict[str, tuple[str, object]]:
    settings = load_settings(cache_dir=cache_dir)
    return {"llm replies": (str(settings.llm_cache_dir), shared_cache(settings.llm_cache_dir)),
            "evaluations": (str(settings.cache_dir / "eval"), EvalCache(settings.cache_dir / "eval"))}


@app.command()
def stats(cache_dir: Optional[str] = typer.Option(None, help="cache root (default: $GRAPHOPT_CACHE_DIR)")) -> None:
    """Entries and location of each cache."""
    table = Table(title="graphopt caches")
    for column in ("cache", "entries", "directory"):
        table.add_column(column)
    for name, (directory, cache) in _caches(cache_dir).items():
        table.add_row(name, str(len(cache)), directory)  # type: ignore[arg-type]
    Console().print(table)


@app.command()
def clear(cache_dir: Optional[str] = typer.Option(None, help="cache root (default: $GRAPHOPT_CACHE_DIR)"),
          llm: bool = typer.Option(True, "--llm/--no-llm", help="clear the LLM reply cache"),
          evaluations: bool = typer.Option(True, "--eval/--no-eval", help="clear the evaluation cache")) -> None:
    """Remove cached entries (both caches unless one is excluded)."""
    console = Console()
    for name, (directory, cache) in _caches(cache_dir).items():
        if (name == "llm replies" and llm) or (name == "evaluations" and evaluations):
            removed = cache.clear()  # type: ignore[attr-defined]
            console.print(f"cleared {removed} {name} from {directory}")
