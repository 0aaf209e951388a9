"""The evaluation cache: one example's outcome under one set of parameter values.

Keyed by (namespace, hash of every parameter value, example key): the namespace names the
workflow's and the metric's code (``graphopt.train.identity``), the example key its id and
content, so a candidate whose values did not change is never run again on an example it has
seen, and changed code or targets never get a stale score. Entries live in memory and, given a
directory, in a diskcache shared by processes and later runs. They are JSON text only: anything
else on disk (a pickle, a corrupt entry) is a miss counted in ``errors``, never loaded.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import sqlite3
import threading
from pathlib import Path
from typing import Any

import diskcache
from diskcache.core import MODE_PICKLE
from pydantic import BaseModel, ConfigDict, ValidationError, field_validator


class Outcome(BaseModel):
    """What one run of the workflow on one example came to, as the metric judged it."""

    model_config = ConfigDict(frozen=True)

    score: float | None = None
    loss: float | None = None
    text: str | None = None
    error: str | None = None
    output: str = ""

    @field_validator("score", "loss")
    @classmethod
    def _finite(cls, number: float | None) -> float | None:
        if number is not None and not math.isfinite(number):
            raise ValueError(f"expects a finite number, got {number}")
        return number

    @property
    def value(self) -> float:
        """The number to maximize: the score, else the negated loss, else 0."""
        if self.score is not None:
            return self.score
        if self.loss is not None:
            return -self.loss
        return 0.0


class JSONDisk(diskcache.Disk):
    """A diskcache ``Disk`` that stores only text and never unpickles what it reads."""

    def store(self, value: Any, read: bool, key: Any = diskcache.UNKNOWN) -> Any:
        if type(value) is not str:
            raise TypeError(f"evaluation cache stores JSON text, got {type(value).__name__}")
        return super().store(value, read, key=key)

    def fetch(self, mode: int, filename: Any, value: Any, read: bool) -> Any:
        if mode == MODE_PICKLE:
            raise TypeError("evaluation cache entry is a pickle; refusing to load it")
        return super().fetch(mode, filename, value, read)


_DISK_ERRORS = (diskcache.Timeout, sqlite3.Error, OSError, TypeError, ValueError, UnicodeError)


class EvalCache:
    """Outcomes by (namespace, values hash, example key); counts hits, misses, writes, errors."""

    def __init__(self, directory: str | os.PathLike[str] | None = None) -> None:
        self.directory = Path(directory) if directory is not None else None
        self.hits = self.misses = self.writes = self.errors = 0
        self._memory: dict[str, Outcome] = {}
        self._store: Any = None
        self._pid = 0
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        where = str(self.directory) if self.directory else "memory"
        return f"EvalCache({where!r}, hits={self.hits}, misses={self.misses})"

    @staticmethod
    def key(namespace: str, values: str, example_key: str) -> str:
        return hashlib.sha256(f"{namespace}\0{values}\0{example_key}".encode()).hexdigest()

    def _disk(self) -> Any:
        if self.directory is None:
            return None
        with self._lock:
            if self._store is None or self._pid != os.getpid():
                self._store = diskcache.Cache(str(self.directory), timeout=5.0, disk=JSONDisk)
                self._pid = os.getpid()
            return self._store

    def get(self, key: str) -> Outcome | None:
        with self._lock:
            found = self._memory.get(key)
        if found is None and self.directory is not None:
            found = self._read(key)
            if found is not None:
                with self._lock:
                    self._memory[key] = found
        with self._lock:
            if found is None:
                self.misses += 1
            else:
                self.hits += 1
        return found

    def _read(self, key: str) -> Outcome | None:
        """The entry on disk, or ``None``; an entry that is not an outcome's JSON counts an error."""
        try:
            text = self._disk().get(key, default=None, retry=True)
            if text is None:
                return None
            if not isinstance(text, str):
                raise TypeError(f"expected JSON text, got {type(text).__name__}")
            return Outcome.model_validate_json(text)
        except (*_DISK_ERRORS, ValidationError):
            with self._lock:
                self.errors += 1
            return None

    def set(self, key: str, outcome: Outcome) -> None:
        with self._lock:
            self._memory[key] = outcome
            self.writes += 1
        if self.directory is not None:
            try:
                self._disk().set(key, outcome.model_dump_json(), retry=True)
            except _DISK_ERRORS:
                with self._lock:
                    self.errors += 1  # the memory copy still serves this run

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
        return {"hits": self.hits, "misses": self.misses, "writes": self.writes, "errors": self.errors}

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
