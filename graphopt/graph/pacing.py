"""Garbage-collector pacing while a large graph is alive.

Nodes are long-lived, acyclic and freed by reference counting, yet every full (generation 2)
collection walks all of them again: with CPython's default thresholds a graph that grows to a
million nodes is rescanned about five times over, and the walks miss the cache more as it grows.
Every ``PACE_EVERY``-th node is watched (a weak reference): while ``k`` of them are alive, generation
2's threshold is raised so that a full collection waits for about ``ALLOCATIONS_PER_NODE × k ×
PACE_EVERY`` allocations, several times the live graph, instead of coming at every 25 % of growth.
As watched nodes are freed the threshold follows ``k`` down, and at zero the thresholds the process
had are put back (or kept, if something else set them meanwhile). A small graph held for good
costs at most one watched node: a bounded, modest raise. Process-wide state behind one lock, so
threads, asyncio tasks and nested graphs share it safely; graphs below ``PACE_EVERY`` nodes rarely
meet it at all.
"""

from __future__ import annotations

import gc
import threading
import weakref
from typing import Any

PACE_EVERY = 1 << 16
PACE_MASK = PACE_EVERY - 1
ALLOCATIONS_PER_NODE = 4
"""Generation-2 collections wait for this many allocations per node made since pacing began."""

# Re-entrant: a collection inside ``grown`` may free a watched node and call ``_released``.
_lock = threading.RLock()
_saved: tuple[int, int, int] | None = None  # the thresholds to put back
_applied: tuple[int, int, int] | None = None  # what pacing last set
_watched = 0


def grown(node: Any) -> None:
    """Called with every ``PACE_EVERY``-th node: watch it and pace collections while it lives."""
    global _watched
    weakref.finalize(node, _released)
    with _lock:
        _watched += 1
        _apply()


def _released() -> None:
    global _watched
    with _lock:
        _watched -= 1
        _apply()


def _apply() -> None:
    global _saved, _applied
    current = gc.get_threshold()
    if _saved is None or current != _applied:  # first use, or someone set thresholds meanwhile
        _saved = current
    if _watched <= 0:
        gc.set_threshold(*_saved)
        _saved = _applied = None
        return
    gen0, gen1, gen2 = _saved
    wanted = max(gen2, ALLOCATIONS_PER_NODE * _watched * PACE_EVERY // max(1, gen0 * gen1))
    _applied = (gen0, gen1, wanted)
    gc.set_threshold(*_applied)


def pacing() -> bool:
    """Whether a watched node is alive and the thresholds are paced."""
    return _saved is not None
