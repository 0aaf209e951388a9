"""Advisory locks on the files a run writes, and the cleanup of what killed runs left behind.

``PathLock(path)`` holds ``fcntl.flock`` on a sidecar ``<path>.lock`` holding the owner's PID,
so a second run given the same checkpoint or history path fails at once with the holder's PID
instead of interleaving its writes. The kernel drops the lock when the process dies, so a
killed run never leaves a stale lock. ``remove_stale_temporaries`` deletes the ``.<name>.*.tmp``
files an interrupted atomic write left (call it while holding the lock).
"""

from __future__ import annotations

import os
from pathlib import Path

from graphopt.errors import RunLockedError

try:
    import fcntl
except ImportError:  # no advisory locks on this platform: runs are not protected
    fcntl = None  # type: ignore[assignment]


class PathLock:
    """An exclusive advisory lock on ``path`` (through ``<path>.lock``), held until ``release``."""

    __slots__ = ("path", "label", "_handle")

    def __init__(self, path: str | os.PathLike[str], label: str = "file") -> None:
        self.path = Path(path)
        self.label = label
        self._handle: int | None = None

    @property
    def lock_path(self) -> Path:
        return self.path.with_name(self.path.name + ".lock")

    def acquire(self) -> PathLock:
        """Take the lock, or raise ``RunLockedError`` naming the process holding it."""
        if self._handle is not None or fcntl is None:
            return self
        self.lock_path.parent.mkdir(parents=True, exist_ok=True)
        handle = os.open(self.lock_path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as err:
            holder = _read_pid(handle)
            os.close(handle)
            raise RunLockedError(f"{self.label} {os.fspath(self.path)!r} is in use by another run "
                                 f"(pid {holder if holder is not None else 'unknown'}); give this run "
                                 f"another path or wait for that one to end",
                                 path=os.fspath(self.path), pid=holder) from err
        os.ftruncate(handle, 0)
        os.write(handle, str(os.getpid()).encode())
        self._handle = handle
        return self

    def release(self) -> None:
        """Drop the lock (the sidecar file stays: removing it would race a waiting run)."""
        if self._handle is not None:
            handle, self._handle = self._handle, None
            os.close(handle)  # closing the descriptor releases the flock

    def __enter__(self) -> PathLock:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()


def _read_pid(handle: int) -> int | None:
    try:
        text = os.pread(handle, 32, 0).decode().strip()
        return int(text) if text else None
    except (OSError, ValueError):
        return None


def remove_stale_temporaries(path: str | os.PathLike[str]) -> list[Path]:
    """Delete the temporary files an interrupted atomic write of ``path`` left; returns them."""
    target = Path(path)
    if not target.parent.is_dir():
        return []
    removed = []
    for stale in target.parent.glob(f".{target.name}.*.tmp"):
        try:
            stale.unlink()
            removed.append(stale)
        except OSError:
            continue
    return removed
