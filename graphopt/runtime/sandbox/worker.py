"""A sandbox worker process: reads requests from a pipe, runs candidates under the guard, replies.

Started by ``pool.py`` as ``python -I -B -c BOOT`` with this folder loaded as a bare package,
so it imports neither graphopt nor anything heavy. Requests and replies are ``wire`` frames:

- the first frame configures the worker (limits, ``sys.path``, read roots, environment);
- ``prepare`` imports the modules and objects the candidate may use (trusted: the parent named
  them from the original function's globals), then executes the candidate's source (untrusted)
  and caches the function under its source hash;
- ``call`` runs a prepared function on decoded arguments inside a fresh temporary directory.

Untrusted code always runs in a thread of its own; the main thread only reads, writes and
tidies. A reply is ``{"ok": true, "value": ...}`` or ``{"ok": false, "error": {"kind": ...}}``.
"""

from __future__ import annotations

import builtins
import gc
import importlib
import math
import os
import resource
import shutil
import signal
import stat
import sys
import tempfile
import threading
import time
import traceback
from typing import Any, Callable

from . import guard, wire

MAX_CACHED = 256
MAX_TRACEBACK = 4000


class Receiver:
    """The data attributes of a method's receiver, as the sandbox sees ``self``."""

    def __init__(self, class_name: str, attributes: dict[str, Any]) -> None:
        self.__dict__.update(attributes)
        self.__dict__["__graphopt_class__"] = class_name

    def __getattr__(self, name: str) -> Any:
        raise AttributeError(f"{self.__dict__['__graphopt_class__']}.{name} is not available in the "
                             "sandbox: only the receiver's data attributes cross")


class Worker:
    """The request loop of one worker process."""

    def __init__(self, request_fd: int, reply_fd: int, config: dict[str, Any], state: guard.GuardState) -> None:
        self.request_fd = request_fd
        self.reply_fd = reply_fd
        self.state = state
        self.base_dir = config["base_dir"]
        self.env = dict(config["env"])
        self.cpu_s = config["limits"].get("cpu_s")
        self.max_reply = int(config["limits"]["max_result_mb"]) << 20
        self.functions: dict[str, tuple[Callable[..., Any], bool]] = {}
        self.calls = 0
        self.spare_dir = ""  # the last call's directory, reused while it is left empty
        self.runner = Runner()
        self.pending: tuple[Any, ...] | None = None  # a prepared namespace awaiting ``define``

    def serve(self) -> None:
        while True:
            try:
                header, blobs = wire.read_frame(self.request_fd)
            except (wire.PeerGone, OSError):
                os._exit(0)  # the parent is gone; atexit handlers could run candidate code
            kind = header.get("op")
            retire = False
            if kind == "prepare":
                reply, out = self.prepare(header, blobs), []
            elif kind == "define":
                reply, out = self.define(header), []
            elif kind == "call":
                reply, out = self.call(header, blobs)
            elif kind == "import":
                reply, out = self.import_modules(header["modules"]), []
            elif kind == "exit":
                os._exit(0)
            else:
                reply, out = _failure("protocol", f"unknown request {kind!r}"), []
            if kind in ("define", "call") and threading.active_count() > 2:
                retire = True  # the candidate left a thread of its own running
                reply["retired"] = "the candidate left a thread running; the worker was replaced"
            reply["id"] = header.get("id")
            frame = wire.pack(reply, out)
            if len(frame) > self.max_reply:
                frame = wire.pack({"id": header.get("id"), **_failure(
                    "too_large", f"the reply of {len(frame)} bytes is over the limit of "
                                 f"{self.max_reply >> 20} MB")}, [])
            wire.write_frame(self.reply_fd, frame)
            if retire:
                os._exit(0)

    # -- requests ---------------------------------------------------------------------------
    def prepare(self, header: dict[str, Any], blobs: list[bytes]) -> dict[str, Any]:
        """Import what the candidate may use (trusted) and keep its namespace for ``define``."""
        namespace: dict[str, Any] = {"__builtins__": dict(builtins.__dict__), "__name__": "graphopt_candidate"}
        with self.trusted():
            for name, module, attribute in header["imports"]:
                try:
                    value = importlib.import_module(module)
                    for part in (attribute.split(".") if attribute else ()):
                        value = getattr(value, part)
                except Exception as exc:
                    return _failure("prepare", f"cannot import {module}{'.' + attribute if attribute else ''} "
                                    f"(global {name!r}) in the sandbox: {type(exc).__name__}: {exc}")
                namespace[name] = value
            for preload in header.get("preload", ()):
                try:  # modules the candidate imports itself and the parent had loaded
                    importlib.import_module(preload)
                except Exception:
                    pass  # the candidate's own import statement reports it
            if header.get("is_async"):
                importlib.import_module("asyncio")
            if "torch" in sys.modules:
                importlib.import_module("safetensors.torch")
            try:
                namespace.update(wire.decode(header["values"], blobs))
            except wire.WireError as exc:
                return _failure("protocol", f"globals did not decode: {exc}")
        self.pending = (header["key"], namespace, header["source"], header["filename"], header["function"],
                        bool(header.get("is_async")))
        return {"ok": True}

    def define(self, header: dict[str, Any]) -> dict[str, Any]:
        """Run the prepared candidate's source (untrusted) and cache its function by source hash."""
        if self.pending is None or self.pending[0] != header.get("key"):
            return _failure("unprepared", "the candidate is not prepared in this worker")
        key, namespace, source, code_name, function_name, is_async = self.pending
        self.pending = None

        def run_source() -> tuple[dict[str, Any], list[bytes]]:
            exec(compile(source, code_name, "exec"), namespace)
            function = namespace.get(function_name)
            if not callable(function):
                raise TypeError(f"the candidate does not define {function_name!r} as a function")
            defined.append(function)
            return {"ok": True}, []

        defined: list[Callable[..., Any]] = []
        with self.trusted():
            self.enter_call()
        reply, _ = self.untrusted(run_source)
        with self.trusted():
            self.leave_call()
        if reply.get("ok") and defined:
            self.remember(key, defined[0], is_async)
        return reply

    def import_modules(self, modules: list[str]) -> dict[str, Any]:
        """Import modules the parent named (torch before the first tensor arrives, say)."""
        with self.trusted():
            for module in modules:
                try:
                    importlib.import_module(module)
                except Exception as exc:
                    return _failure("prepare", f"cannot import {module}: {type(exc).__name__}: {exc}")
        return {"ok": True}

    def call(self, header: dict[str, Any], blobs: list[bytes]) -> tuple[dict[str, Any], list[bytes]]:
        entry = self.functions.get(header["key"])
        if entry is None:
            return _failure("unprepared", "the candidate is not prepared in this worker"), []
        function, is_async = entry
        with self.trusted():
            try:
                args = wire.decode(header["args"], blobs)
                kwargs = wire.decode(header["kwargs"], blobs)
            except wire.WireError as exc:
                return _failure("protocol", f"arguments did not decode: {exc}"), []
            receiver = header.get("receiver")
            if receiver is not None:
                args.insert(0, Receiver(receiver["class"], wire.decode(receiver["attributes"], blobs)))
            self.enter_call()

        if is_async:
            import asyncio  # imported in the trusted prepare of every async candidate

            def run() -> Any:
                return asyncio.run(function(*args, **kwargs))
        else:
            def run() -> Any:
                return function(*args, **kwargs)

        def run_and_encode() -> tuple[dict[str, Any], list[bytes]]:
            value = run()
            out: list[bytes] = []
            try:
                return {"ok": True, "value": wire.encode(value, out, "the result")}, out
            except wire.WireError as exc:
                return _failure("uncrossable", str(exc)), []

        reply, out = self.untrusted(run_and_encode)
        with self.trusted():
            self.leave_call()
        return reply, out

    # -- helpers ------------------------------------------------------------------------------
    def untrusted(self, task: Callable[[], tuple[dict[str, Any], list[bytes]]]
                  ) -> tuple[dict[str, Any], list[bytes]]:
        """Run ``task`` in the candidate thread; failures and refusals become error replies.

        ``task`` must not hold the worker or the guard's state: candidate code can walk its
        own thread's frames.
        """
        self.state.refusals.clear()
        outcome = self.runner.run(task)
        if self.state.refusals:
            return {**_failure("refused", self.state.refusals[0]), "refusals": list(self.state.refusals)}, []
        return outcome

    def trusted(self) -> "_Trusted":
        return _Trusted(self.state)

    def remember(self, key: str, function: Callable[..., Any], is_async: bool) -> None:
        if len(self.functions) >= MAX_CACHED:
            self.functions.pop(next(iter(self.functions)))
        self.functions[key] = (function, is_async)

    def enter_call(self) -> None:
        self.calls += 1
        call_dir, self.spare_dir = self.spare_dir, ""
        if not call_dir:
            call_dir = os.path.join(self.base_dir, f"call-{self.calls}")
            os.mkdir(call_dir, 0o700)
        if os.environ != self.env:
            os.environ.clear()
            os.environ.update(self.env)
        os.environ["HOME"] = os.environ["TMPDIR"] = call_dir
        tempfile.tempdir = call_dir
        os.chdir(call_dir)
        if self.cpu_s:
            soft = math.ceil(time.process_time() + self.cpu_s)
            resource.setrlimit(resource.RLIMIT_CPU, (soft, resource.getrlimit(resource.RLIMIT_CPU)[1]))
        self.state.call_dir = os.path.realpath(call_dir)

    def leave_call(self) -> None:
        """Keep the call's directory for the next call if the candidate left it empty and as
        made (creating directories costs milliseconds on some disks); remove it otherwise."""
        call_dir, self.state.call_dir = self.state.call_dir, ""
        os.chdir(self.base_dir)
        try:
            info = os.lstat(call_dir)
            if stat.S_ISDIR(info.st_mode) and stat.S_IMODE(info.st_mode) == 0o700 and not os.listdir(call_dir):
                self.spare_dir = call_dir
                return
        except OSError:
            pass
        shutil.rmtree(call_dir, ignore_errors=True)


class Runner:
    """The one thread untrusted code runs in, kept between calls (torch sets up per-thread
    state on first use; a fresh thread per call would pay for it each time).

    It holds nothing but the task in hand, so frames walked from candidate code reach neither
    the worker nor the guard's state.
    """

    def __init__(self) -> None:
        self.task: Callable[[], Any] | None = None
        self.outcome: tuple[dict[str, Any], list[bytes]] = ({}, [])
        self.start = threading.Semaphore(0)
        self.done = threading.Semaphore(0)
        threading.Thread(target=self.loop, name="graphopt-candidate", daemon=True).start()

    def run(self, task: Callable[[], tuple[dict[str, Any], list[bytes]]]) -> tuple[dict[str, Any], list[bytes]]:
        self.task = task
        self.start.release()
        self.done.acquire()
        outcome, self.outcome, self.task = self.outcome, ({}, []), None
        return outcome

    def loop(self) -> None:
        while True:
            self.start.acquire()
            try:
                self.outcome = self.task()  # type: ignore[misc]
            except BaseException as exc:  # SystemExit, KeyboardInterrupt: contained here
                self.outcome = (_describe_exception(exc), [])
            self.done.release()


class _Trusted:
    """A window in the main thread for the worker's own imports and bookkeeping.

    The collector is off inside it, so no finalizer of candidate objects runs as trusted.
    """

    __slots__ = ("state", "collect")

    def __init__(self, state: guard.GuardState) -> None:
        self.state = state

    def __enter__(self) -> None:
        self.collect = gc.isenabled()
        gc.disable()
        self.state.trusted = True

    def __exit__(self, *exc: Any) -> None:
        self.state.trusted = False
        if self.collect:
            gc.enable()


def _failure(kind: str, message: str, **extra: Any) -> dict[str, Any]:
    return {"ok": False, "error": {"kind": kind, "message": message, **extra}}


def _describe_exception(exc: BaseException) -> dict[str, Any]:
    """An exception as data, formatted in the thread that raised it."""
    kind = type(exc)
    if not isinstance(exc, Exception):  # SystemExit, KeyboardInterrupt, GeneratorExit
        code = getattr(exc, "code", None)
        if type(code) not in (int, str, type(None)):
            code = repr(code)[:200]
        return _failure("exit", f"the candidate raised {kind.__name__}"
                        + (f"({code!r})" if code is not None else ""), type_name=kind.__name__, code=code)
    args: Any = None
    try:
        args = wire.encode(list(exc.args), [], "exception arguments")
    except wire.WireError:
        args = None
    try:
        message = str(exc)
    except Exception:
        message = f"<{kind.__name__} whose message cannot be shown>"
    text = _format_traceback(exc)[-MAX_TRACEBACK:]
    return _failure("raised", message[:MAX_TRACEBACK], type_name=kind.__name__, module=kind.__module__,
                    args=args, traceback=text)


def _format_traceback(exc: BaseException) -> str:
    """Frames and message without source lines: reading files here would meet the guard."""
    lines = ["Traceback (most recent call last):"]
    frame = exc.__traceback__
    while frame is not None:
        code = frame.tb_frame.f_code
        if code.co_filename != __file__:
            lines.append(f'  File "{code.co_filename}", line {frame.tb_lineno}, in {code.co_name}')
        frame = frame.tb_next
    lines.extend(traceback.format_exception_only(exc))
    return "\n".join(line.rstrip("\n") for line in lines)


def _apply_limits(limits: dict[str, Any]) -> None:
    def cap(which: int, value: int) -> None:
        hard = resource.getrlimit(which)[1]
        if hard != resource.RLIM_INFINITY:
            value = min(value, hard)
        resource.setrlimit(which, (value, value))

    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))  # a crash leaves no core file behind
    if limits.get("memory_mb"):
        # RLIMIT_DATA counts private writable memory (heap, anonymous maps), not mapped libraries:
        # a CUDA build of torch maps gigabytes of address space without using it.
        cap(resource.RLIMIT_DATA, int(limits["memory_mb"]) << 20)
    if limits.get("file_mb"):
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # an oversized write fails instead of killing
        cap(resource.RLIMIT_FSIZE, int(limits["file_mb"]) << 20)
    if limits.get("open_files"):
        cap(resource.RLIMIT_NOFILE, int(limits["open_files"]))


def main(request_fd: int, reply_fd: int) -> None:
    """Configure this process from the first frame, install the guard and serve requests."""
    header, _ = wire.read_frame(request_fd)
    config = header["config"]
    _apply_limits(config["limits"])
    for entry in config["sys_path"]:
        if entry not in sys.path:
            sys.path.append(entry)
    try:  # a candidate calling subprocess internals directly meets the same refusal
        import _posixsubprocess

        def fork_exec(*args: Any, **kwargs: Any) -> Any:
            sys.audit("subprocess.Popen", "_posixsubprocess.fork_exec")
            raise guard.Refused("refused: subprocess.Popen")

        _posixsubprocess.fork_exec = fork_exec
    except ImportError:
        pass
    state = guard.GuardState(config["read_roots"] + [config["base_dir"]], sys.path + config["import_roots"],
                             (request_fd, reply_fd))
    guard.install(state)
    state.trusted = False
    Worker(request_fd, reply_fd, config, state).serve()
