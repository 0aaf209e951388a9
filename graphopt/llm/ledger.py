"""Usage ledger and budgets: every call is recorded; a budget refuses the call that would overrun it.

Budgets are active per thread and per asyncio task (a ``ContextVar``), nest, and are checked after
the cache lookup and before the backend call: a cache hit is free and always served. A call
reserves its place, its most tokens and its estimated cost first, so concurrent calls cannot
slip past any limit together.
"""

from __future__ import annotations

import contextvars
import math
import threading
import time
from collections import deque
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Iterator

from graphopt.errors import BudgetExceeded
from graphopt.llm.reply import Reply


@dataclass(frozen=True, slots=True)
class UsageRecord:
    """One call as the ledger saw it."""

    model: str
    prompt_tokens: int
    completion_tokens: int
    cost: float
    cached: bool
    latency: float
    tag: str | None
    time: float

    @classmethod
    def of(cls, reply: Reply, tag: str | None) -> UsageRecord:
        return cls(reply.model, reply.usage.prompt_tokens, reply.usage.completion_tokens,
                   reply.cost, reply.cached, reply.latency, tag, time.time())


class Ledger:
    """Running totals of every call plus the most recent ``keep`` records."""

    __slots__ = ("records", "calls", "cached_calls", "prompt_tokens", "completion_tokens", "cost",
                 "_lock")

    def __init__(self, keep: int = 100_000) -> None:
        self.records: deque[UsageRecord] = deque(maxlen=keep)
        self.calls = self.cached_calls = self.prompt_tokens = self.completion_tokens = 0
        self.cost = 0.0
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return (f"Ledger(calls={self.calls}, cached_calls={self.cached_calls}, "
                f"tokens={self.prompt_tokens + self.completion_tokens}, cost={self.cost:.6f})")

    def record(self, reply: Reply, tag: str | None = None) -> UsageRecord:
        """Add one call; cache hits count as ``cached_calls`` and cost nothing."""
        entry = UsageRecord.of(reply, tag)
        with self._lock:
            self.records.append(entry)
            if entry.cached:
                self.cached_calls += 1
                return entry
            self.calls += 1
            self.prompt_tokens += entry.prompt_tokens
            self.completion_tokens += entry.completion_tokens
            self.cost += entry.cost
        return entry

    def totals(self) -> dict[str, float]:
        with self._lock:
            return {"calls": self.calls, "cached_calls": self.cached_calls,
                    "prompt_tokens": self.prompt_tokens, "completion_tokens": self.completion_tokens,
                    "cost": self.cost}

    def by_tag(self) -> dict[str | None, dict[str, float]]:
        """Calls, tokens and cost of the kept records, grouped by caller tag."""
        groups: dict[str | None, dict[str, float]] = {}
        with self._lock:
            records = list(self.records)
        for entry in records:
            group = groups.setdefault(entry.tag, {"calls": 0, "cached_calls": 0, "tokens": 0,
                                                  "cost": 0.0})
            if entry.cached:
                group["cached_calls"] += 1
            else:
                group["calls"] += 1
                group["tokens"] += entry.prompt_tokens + entry.completion_tokens
                group["cost"] += entry.cost
        return groups


def _check_limit(name: str, limit: Any, number: type) -> None:
    """``TypeError``/``ValueError`` naming the option unless ``limit`` is None or a finite number >= 0."""
    if limit is None:
        return
    allowed = (int,) if number is int else (int, float)
    if isinstance(limit, bool) or not isinstance(limit, allowed):
        expected = "an int" if number is int else "a number"
        raise TypeError(f"Budget {name} expects {expected} >= 0 or None, got "
                        f"{type(limit).__name__} {limit!r}")
    if not math.isfinite(limit) or limit < 0:
        raise ValueError(f"Budget {name} expects a number >= 0 or None, got {limit!r}")


class Budget:
    """Limits on model calls, tokens and USD for a block; ``None`` means unlimited.

    A call reserves before it is sent: one call, the most tokens it can use (its prompt's bound
    plus its ``max_tokens``) and its estimated cost. Reservations in flight count against the
    limits, so concurrent calls can never spend past them together; settling replaces the
    reservation by what the reply actually used.
    """

    __slots__ = ("max_calls", "max_tokens", "max_usd", "calls", "tokens", "usd", "pending",
                 "pending_tokens", "pending_usd", "_lock")

    def __init__(self, *, max_calls: int | None = None, max_tokens: int | None = None,
                 max_usd: float | None = None) -> None:
        _check_limit("max_calls", max_calls, int)
        _check_limit("max_tokens", max_tokens, int)
        _check_limit("max_usd", max_usd, float)
        self.max_calls = max_calls
        self.max_tokens = max_tokens
        self.max_usd = max_usd
        self.calls = self.tokens = self.pending = self.pending_tokens = 0
        self.usd = self.pending_usd = 0.0
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return (f"Budget(calls={self.calls}/{self.max_calls}, tokens={self.tokens}/{self.max_tokens}"
                f", usd={self.usd:.6f}/{self.max_usd})")

    def _overrun(self, tokens: int, usd: float) -> str | None:
        if self.max_calls is not None and self.calls + self.pending >= self.max_calls:
            return f"max_calls={self.max_calls} reached ({self.calls} made, {self.pending} in flight)"
        if self.max_tokens is not None:
            if self.tokens >= self.max_tokens:
                return f"max_tokens={self.max_tokens} reached ({self.tokens} used)"
            if self.tokens + self.pending_tokens + tokens > self.max_tokens:
                return (f"max_tokens={self.max_tokens} would be exceeded ({self.tokens} used, "
                        f"{self.pending_tokens} reserved in flight, this call may use up to {tokens})")
        if self.max_usd is not None:
            if self.usd >= self.max_usd:
                return f"max_usd={self.max_usd} reached ({self.usd:.6f} spent)"
            if self.usd + self.pending_usd + usd > self.max_usd:
                return (f"max_usd={self.max_usd} would be exceeded ({self.usd:.6f} spent, "
                        f"{self.pending_usd:.6f} reserved in flight, this call may cost up to {usd:.6f})")
        return None

    def token_room(self) -> int | None:
        """Tokens neither used nor reserved (``None`` without a token limit)."""
        with self._lock:
            if self.max_tokens is None:
                return None
            return max(0, self.max_tokens - self.tokens - self.pending_tokens)

    def reserve(self, model: str, *, tokens: int = 0, usd: float = 0.0) -> None:
        """Claim one call, ``tokens`` and ``usd`` for a call to ``model``, or raise
        ``BudgetExceeded`` sending nothing."""
        with self._lock:
            reason = self._overrun(tokens, usd)
            if reason is not None:
                raise BudgetExceeded(f"budget refuses a call to {model!r}: {reason}", budget=self)
            self.pending += 1
            self.pending_tokens += tokens
            self.pending_usd += usd

    def settle(self, reply: Reply, *, tokens: int = 0, usd: float = 0.0) -> None:
        """Turn a reservation of ``tokens`` and ``usd`` into what ``reply`` spent."""
        with self._lock:
            self._unreserve(tokens, usd)
            self.calls += 1
            self.tokens += reply.usage.total_tokens
            self.usd += reply.cost

    def release(self, *, tokens: int = 0, usd: float = 0.0) -> None:
        """Give back a reservation whose call failed."""
        with self._lock:
            self._unreserve(tokens, usd)

    def _unreserve(self, tokens: int, usd: float) -> None:
        self.pending -= 1
        self.pending_tokens -= tokens
        self.pending_usd = max(0.0, self.pending_usd - usd)

    @property
    def remaining_calls(self) -> int | None:
        return None if self.max_calls is None else max(0, self.max_calls - self.calls)


class Hold:
    """What one call reserved in every active budget; settled or released exactly once."""

    __slots__ = ("budgets", "tokens", "usd")

    def __init__(self, budgets: tuple[Budget, ...], tokens: int, usd: float) -> None:
        self.budgets = budgets
        self.tokens = tokens
        self.usd = usd

    def settle(self, reply: Reply) -> None:
        for limits in self.budgets:
            limits.settle(reply, tokens=self.tokens, usd=self.usd)

    def release(self) -> None:
        for limits in self.budgets:
            limits.release(tokens=self.tokens, usd=self.usd)


_active: contextvars.ContextVar[tuple[Budget, ...]] = contextvars.ContextVar(
    "graphopt_budgets", default=())


def active_budgets() -> tuple[Budget, ...]:
    """Budgets in force here, outermost first."""
    return _active.get()


@contextmanager
def budget(limits: Budget | None = None, /, *, max_calls: int | None = None,
           max_tokens: int | None = None, max_usd: float | None = None) -> Iterator[Budget]:
    """Apply a budget to the block: ``with go.budget(max_calls=20) as spent: ...``.

    Pass an existing ``Budget`` to keep counting across several blocks.
    """
    if limits is None:
        limits = Budget(max_calls=max_calls, max_tokens=max_tokens, max_usd=max_usd)
    elif any(v is not None for v in (max_calls, max_tokens, max_usd)):
        raise TypeError("budget() takes either a Budget or limits, not both")
    token = _active.set(_active.get() + (limits,))
    try:
        yield limits
    finally:
        _active.reset(token)


def token_room() -> int | None:
    """The fewest tokens any active budget has left unreserved (``None``: no token limit)."""
    rooms = [room for room in (b.token_room() for b in active_budgets()) if room is not None]
    return min(rooms) if rooms else None


def reserve_all(model: str, *, tokens: int = 0, usd: float = 0.0) -> Hold:
    """Reserve one call, ``tokens`` and ``usd`` in every active budget, all or none."""
    reserved: list[Budget] = []
    try:
        for limits in active_budgets():
            limits.reserve(model, tokens=tokens, usd=usd)
            reserved.append(limits)
    except BudgetExceeded:
        for limits in reserved:
            limits.release(tokens=tokens, usd=usd)
        raise
    return Hold(tuple(reserved), tokens, usd)
