"""The evaluation cache: one example's outcome under one set of parameter values.

Keyed by (namespace, hash of every parameter value, example id), so a candidate whose values did
not change is never run again on an example it has seen. Entries live in memory and, given a
directory, in a diskcache shared by processes and later runs. Stored as JSON text; opened lazily.
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import threading
from pathlib import Path
from typing import Any

import diskcache
from pydantic import BaseModel, ConfigDict


class Outcome(BaseModel):
    """What one run of the workflow on one example came to, as the metric judged it."""

    model_config = ConfigDict(frozen=True)

    score: float | None = None
    loss: float | None = None
    text: str | None = None
    error: str | None = None
    output: str = ""

    @property
    def value(self) -> float:
        """The number to maximize: the score, else the negated loss, else 0."""
        if self.score is not None:
            return self.score
        if self.loss is not None:
            return -self.loss
        return 0.0


class EvalCache:
    """Outcomes by (namespace, values hash, example id); counts hits and misses."""

    def __init__(self, directory: str | os.PathLike[str] | None = None) -> None:
        self.directory = Path(directory) if directory is not None else None
        self.hits = self.misses = self.writes = 0
        self._memory: dict[str, Outcome] = {}
        self._store: Any = None
        self._pid = 0
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        where = str(self.directory) if self.directory else "memory"
        return f"EvalCache({where!r}, hits={self.hits}, misses={self.misses})"

    @staticmethod
    def key(namespace: str, values: str, example_id: str) -> str:
        return hashlib.sha256(f"{namespace}\0{values}\0{example_id}".encode()).hexdigest()

    def _disk(self) -> Any:
        if self.directory is None:
            return None
        with self._lock:
            if self._store is None or self._pid != os.getpid():
                self._store = diskcache.Cache(str(self.directory), timeout=5.0)
                self._pid = os.getpid()
            return self._store

    def get(self, key: str) -> Outcome | None:
        with self._lock:
            found = self._memory.get(key)
        if found is None and self.directory is not None:
            try:
                text = self._disk().get(key, default=None, retry=True)
            except (sqlite3.Error, OSError, TimeoutError):
                text = None
            if isinstance(text, str):
                found = Outcome.model_validate_json(text)
                with self._lock:
                    self._memory[key] = found
        with self._lock:
            if found is None:
                self.misses += 1
            else:
                self.hits += 1
        return found

    def set(self, key: str, outcome: Outcome) -> None:
        with self._lock:
            self._memory[key] = outcome
            self.writes += 1
        if self.directory is not None:
            try:
                self._disk().set(key, outcome.model_dump_json(), retry=True)
            except (sqlite3.Error, OSError, TimeoutError):
                pass  # the memory copy still serves this run

    def __len__(self) -> int:
        if self.directory is not None:
            return len(self._disk())
        return len(self._memory)

    def clear(self) -> int:
        """Remove every entry; returns how many were removed."""
        with self._lock:
            count = len(self._memory)
            self._memory.clear()
        if self.directory is not None:
            count = int(self._disk().clear(retry=True))
        return count

    def counters(self) -> dict[str, int]:
        return {"hits": self.hits, "misses": self.misses, "writes": self.writes}

    def close(self) -> None:
        with self._lock:
            if self._store is not None:
                self._store.close()
                self._store = None


def describe_json(value: Any, limit: int = 200) -> str:
    """A short text of an output for the cache and the history."""
    try:
        text = json.dumps(value)
    except (TypeError, ValueError):
        text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."
