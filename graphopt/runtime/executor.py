"""Executors: where a batch of independent evaluations runs.

One small interface, shaped like ``concurrent.futures.Executor``: ``map(function, items)`` gives
``function(*item)`` for every item, in order, and ``ships`` says whether ``function`` crosses a
process boundary (it must then be picklable and carry everything it needs). ``ThreadExecutor``
(the default) runs in this process on a bounded thread pool, each call in a copy of the caller's
context so budgets and trace settings apply; ``RayExecutor`` (``graphopt.runtime.ray_executor``, the
``graphopt[ray]`` extra) runs on a Ray cluster. ``executor_for`` turns an option into one.
"""

from __future__ import annotations

import contextvars
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable, Protocol, Sequence, runtime_checkable

EXECUTORS = ("threads", "ray")


class WorkerLost(Exception):
    """A call whose worker process died on every try: the caller records it as that item's failure."""


@runtime_checkable
class Executor(Protocol):
    """Runs ``function(*item)`` for each item; results in order. An exception a call raises
    propagates; a call that lost its worker on every allowed try gives a ``WorkerLost`` in its slot."""

    ships: bool

    def map(self, function: Callable[..., Any], items: Sequence[tuple[Any, ...]]) -> list[Any]: ...

    def close(self) -> None: ...


class ThreadExecutor:
    """At most ``concurrency`` threads of this process; an exception propagates as raised."""

    ships = False

    def __init__(self, concurrency: int = 4) -> None:
        if concurrency < 1:
            raise ValueError(f"concurrency expects an int >= 1, got {concurrency!r}")
        self.concurrency = concurrency

    def map(self, function: Callable[..., Any], items: Sequence[tuple[Any, ...]]) -> list[Any]:
        if self.concurrency == 1 or len(items) <= 1:
            return [function(*item) for item in items]
        workers = min(self.concurrency, len(items))
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="graphopt-eval") as pool:
            futures = [pool.submit(contextvars.copy_context().run, function, *item) for item in items]
            return [f.result() for f in futures]

    def close(self) -> None:
        """Nothing to release: each ``map`` owns its pool."""

    def __enter__(self) -> ThreadExecutor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def executor_for(option: str | Executor | None, *, concurrency: int = 4,
                 address: str | None = None) -> Executor:
    """The executor an option names: ``"threads"`` (default), ``"ray"``, or an ``Executor``."""
    if option is None or option == "threads":
        if address is not None:
            raise ValueError("address is a Ray cluster address; it needs executor='ray'")
        return ThreadExecutor(concurrency)
    if option == "ray":
        from graphopt.runtime.ray_executor import RayExecutor  # the optional extra, loaded only when asked

        return RayExecutor(address=address, concurrency=concurrency)
    if isinstance(option, Executor):
        return option
    raise ValueError(f"executor expects one of {', '.join(EXECUTORS)} or an Executor, got {option!r}")
