"""``go.llm.stats()``: cache counters and usage totals of this process, in one snapshot."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

from graphopt.llm.cache import cache_counters
from graphopt.llm.registry import usage_ledger


class Stats(BaseModel):
    """Cache hits, misses, errors (timeouts, unreadable entries) and what the models consumed."""

    model_config = ConfigDict(frozen=True)

    hits: int
    misses: int
    errors: int
    writes: int
    bypassed: int
    calls: int
    cached_calls: int
    prompt_tokens: int
    completion_tokens: int
    cost: float


def stats() -> Stats:
    """A snapshot of this process's LLM cache counters and usage ledger totals."""
    return Stats(**cache_counters(), **usage_ledger().totals())
