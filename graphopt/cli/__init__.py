"""The ``graphopt`` command line (typer, rich); ``graphopt.cli.app:main`` is the entry point."""

from graphopt.cli.app import app, main

__all__ = ["app", "main"]
