"""The guard inside a sandbox worker: a PEP 578 audit hook that refuses what candidates may not do.

Refused for untrusted code: network (``socket.connect``/``bind``/``sendto``, name lookups),
new processes (``subprocess.Popen``, ``os.system``, ``os.exec*``, ``os.spawn*``,
``os.posix_spawn``, ``os.fork``), signals to other processes (``os.kill``), native code
(every ``ctypes`` event, sqlite extensions), raising rlimits, and walking other threads' objects
(``gc.get_objects``/``get_referrers``, ``sys._current_frames``). Files: writes, renames,
removals and ``mkdir`` only inside the call's temporary directory; reads only under the read
roots (Python's own directories, system libraries, the temporary directory, roots the user
allowed) or Python files on ``sys.path``; no directory outside the temporary directory opened
(its descriptor would reach past these checks through ``dir_fd``); sqlite databases only in
memory or inside the temporary directory.

An audit hook cannot be removed once added. Untrusted is everything that runs outside the
worker's main thread (candidates run in a thread of their own) and everything in the main
thread outside the short windows the worker opens for its own imports and bookkeeping. Audit
hooks are not proof against code written to escape Python-level checks; the process boundary,
the scrubbed environment, the rlimits and the network namespace hold regardless.

This module imports only the standard library: the worker loads it without graphopt.
"""

from __future__ import annotations

import os
import sys
import threading
from typing import Any, Iterable

REFUSED = frozenset({
    "socket.connect", "socket.bind", "socket.sendto", "socket.sendmsg", "socket.getaddrinfo",
    "socket.gethostbyname", "socket.gethostbyaddr", "socket.getnameinfo", "socket.sethostname",
    "subprocess.Popen", "os.system", "os.exec", "os.spawn", "os.posix_spawn", "os.fork",
    "os.forkpty", "pty.spawn", "os.startfile", "os.kill", "os.killpg", "signal.pthread_kill",
    "resource.setrlimit", "resource.prlimit", "sqlite3.enable_load_extension",
    "sqlite3.load_extension", "gc.get_objects", "gc.get_referrers", "gc.get_referents",
    "sys._current_frames", "sys._current_exceptions", "os.add_dll_directory",
})
# event -> positions of the path arguments that must lie inside the call directory
WRITES = {
    "os.remove": (0,), "os.rmdir": (0,), "os.mkdir": (0,), "os.chmod": (0,), "os.chown": (0,),
    "os.rename": (0, 1), "os.link": (0, 1), "os.symlink": (1,), "os.truncate": (0,),
    "os.utime": (0,), "os.setxattr": (0,), "os.removexattr": (0,), "os.chflags": (0,),
    "os.chdir": (0,),
}
# the dir_fd argument of each event that has one, relative paths resolve against it
DIR_FD = {"os.remove": 1, "os.rmdir": 1, "os.mkdir": 2, "os.chmod": 2, "os.chown": 3,
          "os.rename": 2, "os.link": 2, "os.symlink": 2, "os.utime": 3}
READS = frozenset({"os.listdir", "os.scandir"})
WATCHED = REFUSED | WRITES.keys() | READS | {"open", "sqlite3.connect"}
IMPORTABLE = (".py", ".pyc", ".so", ".pth", ".pyd")
_WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_TRUNC
MAX_REFUSALS = 10


class Refused(PermissionError):
    """What the guard raises in untrusted code; the worker reports it even if it was caught."""


class GuardState:
    """The guard's settings and findings: read roots, the call directory, refusals so far."""

    __slots__ = ("trusted", "call_dir", "read_roots", "import_roots", "protected_fds", "refusals",
                 "main_ident")

    def __init__(self, read_roots: Iterable[str], import_roots: Iterable[str],
                 protected_fds: Iterable[int]) -> None:
        self.trusted = True
        self.call_dir = ""
        self.read_roots = tuple(_roots(read_roots))
        self.import_roots = tuple(_roots(import_roots))
        self.protected_fds = frozenset(protected_fds)
        self.refusals: list[str] = []
        self.main_ident = threading.get_ident()


def install(state: GuardState) -> None:
    """Add the audit hook for ``state`` to this process, for the rest of its life."""
    get_ident = threading.get_ident
    main_ident = state.main_ident
    realpath = os.path.realpath

    def refuse(event: str, detail: str) -> None:
        reason = f"refused: {event}" + (f" {detail}" if detail else "")
        if len(state.refusals) < MAX_REFUSALS:
            state.refusals.append(reason)
        raise Refused(reason)

    def resolve(path: Any, dir_fd: Any = None) -> str | None:
        try:
            path = os.fsdecode(os.fspath(path))
        except TypeError:
            return None
        if type(dir_fd) is int and dir_fd >= 0 and not os.path.isabs(path):
            path = os.path.join(os.readlink(f"/proc/self/fd/{dir_fd}"), path)
        return realpath(path)

    def inside(path: str, roots: tuple[str, ...]) -> bool:
        return any(path == root or path.startswith(root + os.sep) for root in roots)

    def writable(path: str) -> bool:
        return bool(state.call_dir) and inside(path, (state.call_dir,))

    def readable(path: str) -> bool:
        if inside(path, state.read_roots) or writable(path):
            return True
        return path.endswith(IMPORTABLE) and inside(path, state.import_roots)

    def hook(event: str, args: tuple[Any, ...]) -> None:
        if event not in WATCHED and not event.startswith("ctypes."):
            return
        if state.trusted and get_ident() == main_ident:
            return
        if event in REFUSED or event.startswith("ctypes."):
            refuse(event, _describe(args))
        if event == "open":
            path, mode, flags = args
            if type(path) is int:
                if path in state.protected_fds:
                    refuse("open", f"of the worker's descriptor {path}")
                return
            resolved = resolve(path)
            if resolved is None:
                return
            if not writable(resolved) and os.path.isdir(resolved):
                # a directory descriptor would let os.open(..., dir_fd=) write where it points
                refuse("open", f"{resolved!r}: a directory outside the call's temporary directory")
            writing = (mode is not None and any(c in mode for c in "wax+")) or \
                (type(flags) is int and flags & _WRITE_FLAGS)
            if writing:
                if resolved != os.devnull and not writable(resolved):
                    refuse("open", f"{resolved!r} for writing outside the call's temporary directory")
            elif not readable(resolved):
                refuse("open", f"{resolved!r} for reading (not in the sandbox's read roots)")
            return
        if event == "sqlite3.connect":  # sqlite opens its files in C, past the open event
            database = args[0] if args else ""
            if database not in (":memory:", "", b":memory:", b""):
                resolved = resolve(database)
                if resolved is not None and not writable(resolved):
                    refuse(event, f"{resolved!r} outside the call's temporary directory")
            return
        if event in READS:
            target = args[0] if args and args[0] is not None else "."
            if type(target) is int:
                return
            resolved = resolve(target)
            if resolved is not None and not (readable(resolved) or inside(resolved, state.import_roots)):
                refuse(event, repr(resolved))
            return
        dir_fd = args[DIR_FD[event]] if event in DIR_FD and len(args) > DIR_FD[event] else None
        for position in WRITES[event]:
            if position >= len(args) or type(args[position]) is int:
                continue
            resolved = resolve(args[position], dir_fd)
            if resolved is not None and not writable(resolved):
                refuse(event, f"{resolved!r} outside the call's temporary directory")

    sys.addaudithook(hook)


def _describe(args: tuple[Any, ...]) -> str:
    text = ", ".join(repr(a) for a in args[:3] if not hasattr(a, "fileno"))
    return text[:120]


def _roots(paths: Iterable[str]) -> list[str]:
    roots = []
    for path in paths:
        if path:
            real = os.path.realpath(path)
            roots.append(real.rstrip(os.sep) or os.sep)
    return roots
