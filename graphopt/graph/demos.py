"""The ``demos`` parameter kind: few-shot demonstrations a workflow shows its model.

A demonstration is one traced call of the op that consumes the parameter: its other inputs by
argument name and its output, ``{"inputs": {...}, "output": ...}``, all JSON values.
"""

from __future__ import annotations

import json
from typing import Any

from graphopt.graph.kinds import ObjectKind
from graphopt.graph.node import Param


class DemosKind(ObjectKind):
    """A list of demonstrations, at most ``max_demos`` long when that is set."""

    name = "demos"

    def __init__(self, max_demos: int | None = None) -> None:
        if max_demos is not None and (isinstance(max_demos, bool) or max_demos < 0):
            raise ValueError(f"max_demos expects an int >= 0 or None, got {max_demos!r}")
        self.max_demos = max_demos

    def describe(self) -> str:
        limit = "" if self.max_demos is None else f" (at most {self.max_demos})"
        return f"demos: list of {{inputs, output}}{limit}"

    def validate(self, value: Any, current: Any) -> list[dict[str, Any]]:
        if not isinstance(value, (list, tuple)):
            raise ValueError(f"expects a list of demonstrations, got {type(value).__name__}")
        if self.max_demos is not None and len(value) > self.max_demos:
            raise ValueError(f"expects at most {self.max_demos} demonstrations, got {len(value)}")
        checked = []
        for position, demo in enumerate(value):
            if not isinstance(demo, dict) or set(demo) != {"inputs", "output"} \
                    or not isinstance(demo["inputs"], dict):
                raise ValueError(f"demonstration {position} expects a dict with keys 'inputs' (a dict) "
                                 f"and 'output', got {demo!r}")
            try:
                json.dumps(demo)
            except (TypeError, ValueError) as err:
                raise ValueError(f"demonstration {position} is not JSON data: {err}") from err
            checked.append({"inputs": dict(demo["inputs"]), "output": demo["output"]})
        return checked


def demos(value: list[dict[str, Any]] | None = None, *, name: str | None = None,
          max_demos: int | None = None, trainable: bool = True, description: str = "") -> Param:
    """A ``demos`` parameter (empty by default), filled by the ``fewshot`` optimizer."""
    return Param([] if value is None else value, name=name, kind=DemosKind(max_demos),
                 trainable=trainable, description=description or "few-shot demonstrations")


__all__ = ["DemosKind", "demos"]
