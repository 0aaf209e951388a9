"""``graphopt cache stats|clear``: the LLM reply cache and the evaluation cache."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any, Callable, Optional

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from graphopt.llm.cache import shared_cache
from graphopt.llm.config import load_settings
from graphopt.train.cache import EvalCache

app = typer.Typer(name="cache", no_args_is_help=True, rich_markup_mode=None,
                  help="Inspect or empty graphopt's caches.")


def _caches(cache_dir: Optional[str]) -> dict[str, tuple[str, Callable[[], Any]]]:
    settings = load_settings(cache_dir=cache_dir)
    return {"llm replies": (str(settings.llm_cache_dir), lambda: shared_cache(settings.llm_cache_dir)),
            "evaluations": (str(settings.cache_dir / "eval"), lambda: EvalCache(settings.cache_dir / "eval"))}


def _use(name: str, directory: str, action: Callable[[], Any]) -> Any:
    """``action()``, with a corrupt or unreadable cache database named in one line."""
    try:
        return action()
    except sqlite3.DatabaseError as err:
        raise ValueError(f"{name} cache {directory!r}: its database is unreadable ({err}); remove the "
                         f"directory to start afresh") from err


@app.command()
def stats(cache_dir: Optional[str] = typer.Option(None, help="cache root (default: $GRAPHOPT_CACHE_DIR)")) -> None:
    """Entries, size on disk and location of each cache."""
    table = Table(title="graphopt caches")
    for column in ("cache", "entries", "size", "directory"):
        table.add_column(column, overflow="fold")
    for name, (directory, open_cache) in _caches(cache_dir).items():
        entries = _use(name, directory, lambda: len(open_cache()))
        table.add_row(name, str(entries), _size(Path(directory)), escape(directory))
    Console().print(table)


def _size(directory: Path) -> str:
    """Bytes under ``directory``, in a readable unit."""
    total = float(sum(f.stat().st_size for f in directory.rglob("*") if f.is_file()))
    for unit in ("B", "kB", "MB", "GB"):
        if total < 1000 or unit == "GB":
            return f"{total:.0f} {unit}" if unit == "B" else f"{total:.1f} {unit}"
        total /= 1000
    return f"{total:.1f} GB"


@app.command()
def clear(cache_dir: Optional[str] = typer.Option(None, help="cache root (default: $GRAPHOPT_CACHE_DIR)"),
          llm: bool = typer.Option(True, "--llm/--no-llm", help="clear the LLM reply cache"),
          evaluations: bool = typer.Option(True, "--eval/--no-eval", help="clear the evaluation cache")) -> None:
    """Remove cached entries (both caches unless one is excluded)."""
    console = Console()
    for name, (directory, open_cache) in _caches(cache_dir).items():
        if (name == "llm replies" and llm) or (name == "evaluations" and evaluations):
            removed = _use(name, directory, lambda: open_cache().clear())
            console.print(f"cleared {removed} {name} from {escape(directory)}")
