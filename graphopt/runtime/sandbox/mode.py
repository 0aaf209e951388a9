"""The run-level sandbox mode, held in a ``ContextVar`` like the trace state.

Kept apart from the pool so the graph layer, which reads the mode on every call of a trainable
op, loads neither ``subprocess`` nor the pool when ``graphopt`` is imported.
"""

from __future__ import annotations

from contextvars import ContextVar
from typing import Any, Literal, Union

Mode = Union[bool, Literal["auto"]]


class SandboxSetting:
    """A mode and the pool sandboxed calls go to (``None``: the shared default pool)."""

    __slots__ = ("mode", "pool")

    def __init__(self, mode: Mode, pool: Any) -> None:
        self.mode = mode
        self.pool = pool


SETTING: ContextVar[SandboxSetting] = ContextVar("graphopt_sandbox", default=SandboxSetting("auto", None))


def check_mode(mode: Any, where: str) -> Mode:
    """``mode`` if it is ``"auto"``, ``True`` or ``False``; a ``ValueError`` naming ``where`` otherwise."""
    if mode is True or mode is False or mode == "auto":
        return mode
    raise ValueError(f"{where} expects 'auto', True or False, got {mode!r}")


def current_mode() -> Mode:
    """The run-level mode in this context."""
    return SETTING.get().mode
