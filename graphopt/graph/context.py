"""Per-run trace settings, held in a ``ContextVar`` so threads and asyncio tasks stay independent.

A ``TraceState`` says whether ops record nodes and which frame collects the nodes made inside
the running op. A synchronous op swaps the frame of its thread's own state in place for the
length of its call (two attribute writes, where a ``ContextVar.set``/``reset`` pair costs a new
context mapping and a token per call): nothing else runs in that thread and context meanwhile.
A state reached from another thread (a copied context) or the shared default is first replaced,
in the current context only, by a copy this thread owns (``owned``), once per context and thread.
Async ops, which other tasks interleave with, still set a fresh state for their call.
"""

from __future__ import annotations

from contextlib import contextmanager
from contextvars import ContextVar, Token
from threading import get_ident
from typing import Iterator


class TraceState:
    """Whether ops record nodes, the frame collecting nodes made inside the running op, and the
    thread allowed to swap that frame in place (``None``: none, copy it first)."""

    __slots__ = ("enabled", "frame", "owner")

    def __init__(self, enabled: bool, frame: list | None, owner: int | None = None) -> None:
        self.enabled = enabled
        self.frame = frame
        self.owner = owner


_DEFAULT = TraceState(True, None)
_STATE: ContextVar[TraceState] = ContextVar("graphopt_trace", default=_DEFAULT)

current = _STATE.get


def owned(state: TraceState) -> TraceState:
    """``state`` if this thread owns it, else an owned copy installed in the current context."""
    thread = get_ident()
    if state.owner == thread:
        return state
    mine = TraceState(state.enabled, state.frame, thread)
    _STATE.set(mine)  # kept: later calls in this context and thread find it and pay nothing
    return mine


def detach() -> None:
    """Give the current context a state of its own holding the current frame; for a copied
    context handed to a thread that may outlive the op it runs for, so its late nodes land in
    that op's frame, not in whatever frame the caller's thread has moved on to."""
    state = _STATE.get()
    _STATE.set(TraceState(state.enabled, state.frame))


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
    """Collect the nodes that nested ops make into ``frame``, until ``leave(token)``; for async
    ops, whose calls interleave with other tasks sharing the caller's state."""
    return _STATE.set(TraceState(True, frame, get_ident()))


leave = _STATE.reset
