"""The persistent reply cache: diskcache (SQLite) holding replies as JSON text, opened lazily.

One ``ReplyCache`` per directory and process is shared by every client using that directory, so
its counters tell the whole story (``go.llm.stats()``). diskcache makes one directory safe for
many threads and processes; a cache that cannot answer in time (a locked database) counts an
error and the call goes on to the model, as if it had missed.
"""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

import diskcache
from diskcache.core import MODE_PICKLE

from graphopt.llm.config import load_settings
from graphopt.llm.reply import Reply

DEFAULT_TIMEOUT = 5.0


class JSONTextDisk(diskcache.Disk):
    """A diskcache ``Disk`` that stores only text and never unpickles what it reads."""

    def store(self, value: Any, read: bool, key: Any = diskcache.UNKNOWN) -> Any:
        if type(value) is not str:
            raise TypeError(f"reply cache stores JSON text, got {type(value).__name__}")
        return super().store(value, read, key=key)

    def fetch(self, mode: int, filename: Any, value: Any, read: bool) -> Any:
        if mode == MODE_PICKLE:
            raise TypeError("reply cache entry is a pickle; refusing to load it")
        return super().fetch(mode, filename, value, read)


_CACHE_ERRORS = (diskcache.Timeout, sqlite3.Error, OSError, TypeError, ValueError)


class ReplyCache:
    """Replies by request key in one directory; opened on first use, reopened after a fork."""

    __slots__ = ("directory", "timeout", "hits", "misses", "errors", "writes", "bypassed",
                 "_store", "_pid", "_lock")

    def __init__(self, directory: str | os.PathLike[str], *, timeout: float = DEFAULT_TIMEOUT) -> None:
        self.directory = Path(directory)
        self.timeout = timeout
        self.hits = self.misses = self.errors = self.writes = self.bypassed = 0
        self._store: diskcache.Cache | None = None
        self._pid = 0
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"ReplyCache({str(self.directory)!r}, hits={self.hits}, misses={self.misses})"

    def _open(self) -> diskcache.Cache:
        with self._lock:
            if self._store is None or self._pid != os.getpid():
                # SQLite handles must not cross a fork: a child opens its own.
                self._store = diskcache.Cache(str(self.directory), timeout=self.timeout,
                                              disk=JSONTextDisk, size_limit=2**32)
                self._pid = os.getpid()
            return self._store

    def _count(self, counter: str) -> None:
        with self._lock:
            setattr(self, counter, getattr(self, counter) + 1)

    def get(self, key: str) -> Reply | None:
        """The cached reply for ``key`` (marked ``cached``, costing nothing), or ``None``.

        Its usage keeps the original token counts; its latency is the lookup's.
        """
        started = time.perf_counter()
        try:
            text = self._open().get(key, default=None, retry=True)
            reply = None if text is None else Reply.model_validate_json(text)
        except _CACHE_ERRORS:
            self._count("errors")
            return None
        self._count("misses" if reply is None else "hits")
        if reply is None:
            return None
        return reply.model_copy(update={"cached": True, "cost": 0.0,
                                        "latency": time.perf_counter() - started})

    def set(self, key: str, reply: Reply) -> None:
        """Store ``reply`` under ``key`` as JSON; a failure is counted, not raised."""
        text = reply.model_copy(update={"cached": False}).model_dump_json()
        try:
            self._open().set(key, text, retry=True)
        except _CACHE_ERRORS:
            self._count("errors")
            return
        self._count("writes")

    def bypass(self) -> None:
        """Count a request that was deliberately not looked up (cache off, sampled reply)."""
        self._count("bypassed")

    def __len__(self) -> int:
        return len(self._open())

    def clear(self) -> int:
        """Remove every entry; returns how many were removed."""
        return int(self._open().clear(retry=True))

    def close(self) -> None:
        with self._lock:
            if self._store is not None:
                self._store.close()
                self._store = None

    def counters(self) -> dict[str, int]:
        return {"hits": self.hits, "misses": self.misses, "errors": self.errors,
                "writes": self.writes, "bypassed": self.bypassed}


_caches: dict[Path, ReplyCache] = {}
_caches_lock = threading.Lock()


def shared_cache(directory: str | os.PathLike[str]) -> ReplyCache:
    """The process's one ``ReplyCache`` for ``directory`` (created unopened on first request)."""
    path = Path(directory).expanduser().resolve()
    with _caches_lock:
        cache = _caches.get(path)
        if cache is None:
            cache = _caches[path] = ReplyCache(path)
        return cache


def cache_counters() -> dict[str, int]:
    """Hits, misses, errors, writes and bypasses summed over every cache this process used."""
    totals = {"hits": 0, "misses": 0, "errors": 0, "writes": 0, "bypassed": 0}
    with _caches_lock:
        caches = list(_caches.values())
    for cache in caches:
        for name, value in cache.counters().items():
            totals[name] += value
    return totals


def clear_cache(directory: str | os.PathLike[str] | None = None) -> int:
    """Delete every cached reply under ``directory`` (default: the configured cache); the count."""
    if directory is None:
        directory = load_settings().llm_cache_dir
    return shared_cache(directory).clear()
