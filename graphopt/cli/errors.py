"""How the command line fails: one line on stderr and an exit code, the traceback only with ``--debug``.

Exit codes: 0 success, 1 a failure that is not the input's fault (a model call that failed, a
graphopt bug, plugins that failed to load), 2 bad input (a config, file, option or workflow that
is not what was expected), 130/143 interrupted by SIGINT/SIGTERM.
"""

from __future__ import annotations

import errno
import sqlite3
import sys
import traceback
from dataclasses import dataclass
from typing import Any, Sequence

import typer
from typer.core import TyperGroup

from graphopt.errors import GraphoptError, LLMError

BAD_INPUT = 2
FAILURE = 1


@dataclass
class CliState:
    """Per-invocation settings of the root command, handed to commands as ``ctx.obj``."""

    debug: bool = False


def one_line(text: str) -> str:
    """``text`` with every run of whitespace (newlines included) made one space."""
    return " ".join(str(text).split())


def describe(err: BaseException) -> tuple[str, int]:
    """The one-line message and exit code for ``err``."""
    if isinstance(err, LLMError):
        return one_line(str(err)), FAILURE
    if isinstance(err, (GraphoptError, ValueError)):
        return one_line(str(err)), BAD_INPUT
    if isinstance(err, sqlite3.DatabaseError):
        return one_line(f"a cache database is unreadable ({err}); remove the cache directory "
                        f"or pass another --cache-dir"), BAD_INPUT
    if isinstance(err, OSError):
        where = f"{err.filename!r}: " if err.filename else ""
        reason = err.strerror or str(err)
        if err.errno == errno.ENOSPC:
            reason = "no space left on device; free some space or choose another path"
        return one_line(f"{where}{reason}"), BAD_INPUT
    return one_line(f"internal error {type(err).__name__}: {err} (rerun with --debug for the "
                    f"traceback)"), FAILURE


def fail(err: BaseException, *, debug: bool) -> int:
    """Print ``err`` as one line on stderr (and its traceback when ``debug``); its exit code."""
    message, code = describe(err)
    if debug:
        traceback.print_exception(err, file=sys.stderr)
    typer.echo(f"error: {message}", err=True)
    return code


class GraphoptGroup(TyperGroup):
    """The root command: every failure below it ends as one line and an exit code."""

    def main(self, args: Sequence[str] | None = None, prog_name: str | None = None,
             complete_var: str | None = None, standalone_mode: bool = True, **extra: Any) -> Any:
        state = extra.setdefault("obj", CliState())
        try:
            returned = super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
            code = returned if isinstance(returned, int) else 0
        except typer.TyperException as err:  # a bad option or argument, found by click
            ctx = getattr(err, "ctx", None)
            hint = f" (see '{ctx.command_path} --help')" if ctx is not None else ""
            message = err.format_message() if hasattr(err, "format_message") else str(err)
            typer.echo(f"error: {one_line(message)}{hint}", err=True)
            code = getattr(err, "exit_code", BAD_INPUT)
        except typer.Abort:
            typer.echo("error: aborted", err=True)
            code = 130
        except Exception as err:  # the commands' own failures
            code = fail(err, debug=getattr(state, "debug", False))
        if standalone_mode:
            sys.exit(code)
        return code
