"""Per-run trace settings, held in a ``ContextVar`` so threads and asyncio tasks stay independent."""

from __future__ import annotations

from contextlib import contextmanager
from contextvars import ContextVar, Token
from typing import Iterator


class TraceState:
    """Whether ops record nodes, and the frame collecting nodes made inside the running op."""

    __slots__ = ("enabled", "frame")

    def __init__(self, enabled: bool, frame: list | None) -> None:
        self.enabled = enabled
        self.frame = frame


_DEFAULT = TraceState(True, None)
_STATE: ContextVar[TraceState] = ContextVar("graphopt_trace", default=_DEFAULT)

current = _STATE.get


def is_tracing() -> bool:
    """True unless inside ``no_trace()``."""
    return _STATE.get().enabled


@contextmanager
def no_trace() -> Iterator[None]:
    """Run ops on raw values without recording nodes, as ``torch.no_grad()`` does for autograd.

    Ops called inside return plain values. Nests, and holds per thread and per asyncio task.
    """
    token = _STATE.set(TraceState(False, None))
    try:
        yield
    finally:
        _STATE.reset(token)


def enter(frame: list) -> Token[TraceState]:
    """Collect the nodes that nested ops make into ``frame``, until ``leave(token)``."""
    return _STATE.set(TraceState(True, frame))


leave = _STATE.reset
