"""The hook graphopt's plugin manager finds through the ``graphopt`` entry point ``promptsearch``."""

from __future__ import annotations

from graphopt.plugins import hookimpl
from graphopt_promptsearch.apohf import APOHF
from graphopt_promptsearch.mapelites import MAPElites
from graphopt_promptsearch.mcts import MCTS
from graphopt_promptsearch.spo import SPO


@hookimpl
def graphopt_optimizers() -> list[type]:
    return [MCTS, SPO, APOHF, MAPElites]
