"""``sandbox()``: set whether candidate code is sandboxed, and in which pool, for a block.

The setting lives in ``mode.SETTING`` (a ``ContextVar``), so threads and asyncio tasks can
differ. The default is ``"auto"`` in a shared pool (``Limits()``, two workers) that starts on
first use and stops at exit.
"""

from __future__ import annotations

import threading
from contextlib import contextmanager
from typing import Any, Iterator

from graphopt.runtime.sandbox.limits import Limits
from graphopt.runtime.sandbox.mode import SETTING, Mode, SandboxSetting, check_mode, current_mode
from graphopt.runtime.sandbox.pool import SandboxPool

__all__ = ["current_mode", "current_pool", "default_pool", "sandbox"]

_shared: list[SandboxPool] = []  # the one default pool, made on first use
_shared_lock = threading.Lock()


def current_pool() -> SandboxPool:
    """The pool sandboxed calls in this context go to."""
    pool = SETTING.get().pool
    return pool if pool is not None else default_pool()


def default_pool() -> SandboxPool:
    """The shared pool (``Limits()``, two workers), made on first use."""
    if not _shared:
        with _shared_lock:
            if not _shared:
                _shared.append(SandboxPool(Limits(), workers=2))
    return _shared[0]


@contextmanager
def sandbox(mode: Mode = "auto", *, workers: int | None = None, pool: SandboxPool | None = None,
            **limits: Any) -> Iterator[SandboxPool | None]:
    """Set how trainable ops without their own ``sandbox=`` run candidate code, in this context.

    ``mode``: ``"auto"`` (default) sandboxes every code value except the function's own source,
    ``True`` sandboxes the original too, ``False`` runs everything in-process. Keyword limits
    (``timeout``, ``memory_mb``, ``cpu_s``, ``file_mb``, ``allow_read``…, see ``Limits``) or
    ``workers`` give this block a pool of its own, closed on exit; ``pool`` uses a given one.
    Yields the pool in use (``None`` when ``mode`` is ``False``).
    """
    mode = check_mode(mode, "sandbox mode")
    if pool is not None and (limits or workers is not None):
        raise ValueError("sandbox() takes either a pool or limits/workers, not both")
    own = None
    if mode is not False and pool is None and (limits or workers is not None):
        try:
            own = SandboxPool(Limits(**limits), workers=2 if workers is None else workers)
        except TypeError as err:
            raise TypeError(f"sandbox(): {err}; the options are those of Limits and 'workers'") from err
        pool = own
    token = SETTING.set(SandboxSetting(mode, pool))
    try:
        yield None if mode is False else (pool or default_pool())
    finally:
        SETTING.reset(token)
        if own is not None:
            own.close()
