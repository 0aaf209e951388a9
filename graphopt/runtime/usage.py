"""Model usage across a process boundary: what a worker's calls recorded, added on the driver.

Each process has its own usage ledger (``go.llm.usage_ledger()``), which every client from
``go.llm.get`` records into, reply-cache hits as ``cached_calls``. A worker takes ``mark``
before a batch of calls and sends ``since(mark)`` back; the driver's ``add`` records those calls
into its own ledger, so its counts (calls, cached calls, tokens, cost, by tag) are what they
would be had the calls run in its threads.
"""

from __future__ import annotations

from graphopt.llm.ledger import Ledger, UsageRecord
from graphopt.llm.registry import usage_ledger
from graphopt.llm.reply import Reply, Usage


def mark(ledger: Ledger | None = None) -> int:
    """How many calls (cache hits included) ``ledger`` (this process's) has recorded so far."""
    ledger = ledger if ledger is not None else usage_ledger()
    return ledger.calls + ledger.cached_calls


def since(start: int, ledger: Ledger | None = None) -> list[UsageRecord]:
    """The calls ``ledger`` (this process's) recorded after ``mark`` gave ``start``."""
    ledger = ledger if ledger is not None else usage_ledger()
    count = mark(ledger) - start
    if count <= 0:
        return []
    records = list(ledger.records)
    return records[max(0, len(records) - count):]


def add(records: list[UsageRecord], ledger: Ledger | None = None) -> None:
    """Record calls made in another process into ``ledger`` (this process's)."""
    ledger = ledger if ledger is not None else usage_ledger()
    for entry in records:
        reply = Reply(text="", model=entry.model, cost=entry.cost, latency=entry.latency,
                      cached=entry.cached, usage=Usage(prompt_tokens=entry.prompt_tokens,
                                                       completion_tokens=entry.completion_tokens))
        ledger.record(reply, entry.tag)
