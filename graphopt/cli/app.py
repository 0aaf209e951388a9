"""The ``graphopt`` typer app and its ``plugins`` command; the other commands live one group per module."""

from __future__ import annotations

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from graphopt.cli import cache, demo, evaluate, export, report, run, serve, show
from graphopt.cli.errors import CliState, GraphoptGroup
from graphopt.plugins.manager import PluginManager, get_plugin_manager

app = typer.Typer(name="graphopt", cls=GraphoptGroup, no_args_is_help=True, add_completion=False,
                  rich_markup_mode=None,
                  pretty_exceptions_enable=False,
                  help="Optimize AI workflows the way PyTorch optimizes neural networks.")


app.command()(demo.demo)
app.command()(run.run)
app.command()(run.resume)
app.command("eval")(evaluate.eval_command)
app.command()(export.export)
app.command()(report.report)
app.command()(show.show)
app.command("serve-local")(serve.serve_local)
app.add_typer(cache.app, name="cache")


@app.callback()
def root(ctx: typer.Context,
         debug: bool = typer.Option(False, "--debug", help="print the traceback of a failure")) -> None:
    """Optimize AI workflows the way PyTorch optimizes neural networks."""
    ctx.ensure_object(CliState).debug = debug


@app.command()
def plugins() -> None:
    """List optimizers, propagators and LLM backends with the distribution providing each,
    then any plugin that failed to load (the exit code is then 1)."""
    if not show_plugins(get_plugin_manager(), Console()):
        raise typer.Exit(1)


def show_plugins(manager: PluginManager, console: Console) -> bool:
    """Print what ``manager`` provides, and its load failures, to ``console``; False on failures."""
    console.print(plugins_table(manager))
    if manager.failures:
        console.print(failures_table(manager))
    return not manager.failures


def plugins_table(manager: PluginManager) -> Table:
    """One row per contribution: its table, name, plugin and distribution."""
    table = Table(title="graphopt plugins")
    for column in ("table", "name", "plugin", "distribution"):
        table.add_column(column, overflow="fold")
    for table_name, entries in manager.tables().items():
        for name, entry in sorted(entries.items()):
            table.add_row(table_name, escape(name), escape(entry.plugin), escape(entry.distribution or "-"))
    return table


def failures_table(manager: PluginManager) -> Table:
    """One row per plugin that could not be imported or registered, with the error."""
    table = Table(title="plugins that failed to load", style="red")
    for column in ("plugin", "distribution", "entry point", "error"):
        table.add_column(column, overflow="fold")
    for failure in manager.failures:
        table.add_row(escape(failure.name), escape(failure.distribution or "-"),
                      escape(failure.entry_point or "-"), escape(failure.reason))
    return table


def main() -> None:
    """Run the command line (the ``graphopt`` console script)."""
    app()
