"""The hook graphopt's plugin manager finds through the ``graphopt`` entry point ``gradients``."""

from __future__ import annotations

from graphopt.plugins import hookimpl
from graphopt_gradients.greater import Greater
from graphopt_gradients.lion import Lion
from graphopt_gradients.mezo import MeZO


@hookimpl
def graphopt_optimizers() -> list[type]:
    return [Greater, MeZO, Lion]
