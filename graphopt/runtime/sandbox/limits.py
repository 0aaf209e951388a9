"""What a sandboxed call may use: time, memory, CPU, file sizes, and which paths it may read."""

from __future__ import annotations

import math
import os
import site
import sys
import sysconfig
from dataclasses import asdict, dataclass, field
from typing import Any

DEFAULT_TIMEOUT = 10.0
# System files that libraries read while running (time zones, certificates, CPU facts).
SYSTEM_READ_ROOTS = ("/usr", "/lib", "/lib64", "/etc/ssl", "/etc/localtime", "/etc/mime.types",
                     "/proc/self", "/proc/cpuinfo", "/proc/meminfo", "/sys/devices/system/cpu",
                     "/sys/fs/cgroup", "/dev/null", "/dev/urandom", "/dev/zero")
# Environment variables a worker inherits (nothing else; HOME and TMPDIR point at its temp dir).
ENV_ALLOWED = ("PATH", "LANG", "LANGUAGE", "TZ", "LD_LIBRARY_PATH", "OMP_NUM_THREADS",
               "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "CUDA_VISIBLE_DEVICES", "SYSTEMROOT")
SECRET_MARKERS = ("KEY", "TOKEN", "SECRET", "PASSWORD", "PASSWD", "CREDENTIAL", "AUTH", "COOKIE",
                  "SESSION")


@dataclass(frozen=True)
class Limits:
    """Limits of one sandbox pool's workers.

    ``timeout`` (seconds of wall clock) applies to calls of ops without their own ``timeout=``;
    past it the worker is killed. ``memory_mb`` caps private writable memory (``RLIMIT_DATA``:
    heap and anonymous maps, not mapped libraries), ``cpu_s`` the CPU seconds of one call,
    ``file_mb`` the size of any file written; ``None`` turns a limit off.
    ``allow_read`` adds directories or files candidates may read (data files, say).
    """

    timeout: float = DEFAULT_TIMEOUT
    memory_mb: int | None = 2048
    cpu_s: float | None = 60.0
    file_mb: int | None = 64
    open_files: int | None = 256
    max_result_mb: int = 64
    setup_timeout: float = 120.0
    allow_read: tuple[str, ...] = field(default=())
    network_namespace: bool = True

    def __post_init__(self) -> None:
        for name in ("timeout", "setup_timeout"):
            _require_positive(name, getattr(self, name), optional=False)
        for name in ("memory_mb", "cpu_s", "file_mb", "open_files"):
            _require_positive(name, getattr(self, name), optional=True)
        _require_positive("max_result_mb", self.max_result_mb, optional=False)
        if isinstance(self.allow_read, (str, bytes)) or not all(isinstance(p, str) for p in self.allow_read):
            raise TypeError(f"sandbox option 'allow_read' expects a tuple of paths, got {self.allow_read!r}")
        object.__setattr__(self, "allow_read", tuple(self.allow_read))

    def for_worker(self) -> dict[str, Any]:
        """The limits the worker applies to itself, as data."""
        data = asdict(self)
        del data["allow_read"], data["timeout"], data["setup_timeout"], data["network_namespace"]
        return data


def _require_positive(name: str, value: Any, *, optional: bool) -> None:
    if value is None and optional:
        return
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
        expected = "a positive number or None" if optional else "a positive number"
        raise ValueError(f"sandbox option {name!r} expects {expected}, got {value!r}")


def read_roots(limits: Limits) -> list[str]:
    """Where candidates may read any file: Python's own directories, system libraries, extras."""
    roots = {sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix}
    paths = sysconfig.get_paths()
    roots.update(paths[k] for k in ("stdlib", "platstdlib", "purelib", "platlib") if k in paths)
    try:
        roots.update(site.getsitepackages())
    except AttributeError:  # pragma: no cover - virtualenv's old site module
        pass
    roots.update(SYSTEM_READ_ROOTS)
    roots.update(os.path.abspath(p) for p in limits.allow_read)
    return sorted(r for r in roots if r and os.path.exists(r))


def import_path() -> list[str]:
    """The parent's ``sys.path`` as absolute existing paths; Python files there are readable."""
    cwd = os.getcwd()
    entries = []
    for entry in sys.path:
        path = os.path.abspath(entry or cwd)
        if os.path.exists(path) and path not in entries:
            entries.append(path)
    return entries


def package_roots() -> list[str]:
    """Folders holding the parent's loaded top-level packages (editable installs live outside
    ``sys.path``); Python files there are readable too."""
    roots = set()
    for name, module in list(sys.modules.items()):
        path = getattr(module, "__path__", None) if "." not in name else None
        if path:
            for entry in list(path)[:1]:
                roots.add(os.path.dirname(os.path.abspath(entry)))
    return sorted(r for r in roots if os.path.isdir(r))


def scrubbed_environment(home: str) -> dict[str, str]:
    """The allowed variables of this process's environment, none that looks like a secret."""
    env = {k: v for k, v in os.environ.items()
           if (k in ENV_ALLOWED or k.startswith("LC_")) and not any(m in k.upper() for m in SECRET_MARKERS)}
    env.update(HOME=home, TMPDIR=home, PYTHONDONTWRITEBYTECODE="1", PYTHONNOUSERSITE="1")
    for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        env.setdefault(name, "1")  # a candidate is one small function: no thread pools competing
    return env
