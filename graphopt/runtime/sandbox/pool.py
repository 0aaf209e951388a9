"""A pool of warm sandbox worker processes, started lazily, killed on timeout and replaced.

Each worker is ``python -I -B`` running ``worker.py``, in a new session (so it can be killed with
everything it started), with a scrubbed environment whose ``HOME`` and ``TMPDIR`` are its own
temporary directory, inside a network namespace where ``unshare`` allows one. Requests and
replies are ``wire`` frames over two pipes; nothing from a worker is ever unpickled.
"""

from __future__ import annotations

import atexit
import builtins
import functools
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from typing import Any, Protocol

from graphopt.runtime.sandbox import wire
from graphopt.runtime.sandbox.errors import (
    CandidateError,
    CandidateExit,
    CannotCross,
    SandboxError,
    SandboxRefused,
    SandboxTimeout,
    WorkerExited,
)
from graphopt.runtime.sandbox.limits import (
    Limits,
    import_path,
    package_roots,
    read_roots,
    scrubbed_environment,
)

PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__))
DIR_PREFIX = "graphopt-sandbox-"  # then the parent's pid: folders of dead parents are removed
# Loads this folder as a bare package, so the worker imports neither graphopt nor its dependencies.
BOOT = ("import sys, types\n"
        "package = types.ModuleType('graphopt_sandbox')\n"
        "package.__path__ = [sys.argv[3]]\n"
        "sys.modules['graphopt_sandbox'] = package\n"
        "from graphopt_sandbox.worker import main\n"
        "main(int(sys.argv[1]), int(sys.argv[2]))\n")


class Program(Protocol):
    """What the pool needs of a candidate: its key, its op's name and how to prepare it."""

    key: str
    op_name: str

    def prepare_request(self) -> tuple[dict[str, Any], list[bytes]]: ...

    def annotate(self, error: BaseException) -> BaseException: ...


class WorkerProcess:
    """The parent's handle on one worker: its process, pipes, temp dir and prepared candidates."""

    __slots__ = ("process", "request_fd", "reply_fd", "base_dir", "prepared", "torch_ready", "requests",
                 "retiring")

    def __init__(self, process: subprocess.Popen, request_fd: int, reply_fd: int, base_dir: str) -> None:
        self.process = process
        self.request_fd = request_fd
        self.reply_fd = reply_fd
        self.base_dir = base_dir
        self.prepared: set[str] = set()
        self.torch_ready = False
        self.requests = 0
        self.retiring = False  # it exits after its last reply (a candidate left a thread running)

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def usable(self) -> bool:
        """False once killed or reaped (its pipes are closed then), or when it is retiring."""
        return self.request_fd >= 0 and not self.retiring

    def exchange(self, header: dict[str, Any], blobs: list[bytes], deadline: float, max_bytes: int
                 ) -> tuple[dict[str, Any], list[bytes]]:
        """Send one request and read its reply; the reply must carry the request's id."""
        self.requests += 1
        request_id = f"{os.getpid()}-{id(self)}-{self.requests}-{time.monotonic_ns()}"
        header["id"] = request_id
        wire.write_frame(self.request_fd, wire.pack(header, blobs))
        reply, reply_blobs = wire.read_frame(self.reply_fd, deadline=deadline, max_bytes=max_bytes)
        if reply.get("id") != request_id:
            raise wire.WireError("the worker's reply does not answer the request")
        if "retired" in reply:
            self.retiring = True
        return reply, reply_blobs

    def kill(self) -> None:
        """Kill the worker and whatever it started, reap it and remove its files."""
        self.signal_kill()
        self._reap()

    def signal_kill(self) -> None:
        """SIGKILL to the worker's session, unless it was reaped (its id may be reused since)."""
        if self.process.returncode is None:
            try:
                os.killpg(self.process.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass

    def stop(self) -> None:
        """Ask the worker to exit; kill it if it does not within a second."""
        try:
            wire.write_frame(self.request_fd, wire.pack({"op": "exit"}, []))
            self.process.wait(timeout=1.0)
        except (OSError, subprocess.TimeoutExpired):
            pass
        self.kill()

    def exit_reason(self) -> tuple[str, int | None]:
        """Why the worker ended, once its pipe closed."""
        try:
            code = self.process.wait(timeout=5.0)
        except subprocess.TimeoutExpired:
            self.kill()
            return "the worker closed its pipe and was killed", None
        self._reap()
        if code >= 0:
            return f"the worker exited with code {code}", code
        name = signal.Signals(-code).name if -code in signal.Signals._value2member_map_ else str(-code)
        hint = {"SIGXCPU": " (over its CPU limit)", "SIGSEGV": " (a crash)", "SIGBUS": " (a crash)",
                "SIGABRT": " (an abort)", "SIGKILL": " (out of memory, or killed from outside)"}
        return f"the worker was killed by signal {name}{hint.get(name, '')}", code

    def _reap(self) -> None:
        try:
            self.process.wait(timeout=5.0)
        except subprocess.TimeoutExpired:  # pragma: no cover - SIGKILL does not fail
            pass
        for fd in (self.request_fd, self.reply_fd):
            if fd >= 0:
                os.close(fd)
        self.request_fd = self.reply_fd = -1
        shutil.rmtree(self.base_dir, ignore_errors=True)


class SandboxPool:
    """Warm worker processes that run candidate code; thread-safe, closed at exit.

    Workers start on the first call (at most ``workers`` at once) and are reused; one that
    times out, dies or breaks the protocol is killed and a fresh one takes its place later.
    """

    def __init__(self, limits: Limits | None = None, *, workers: int = 2) -> None:
        if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
            raise ValueError(f"sandbox option 'workers' expects an int >= 1, got {workers!r}")
        self.limits = limits or Limits()
        self.workers = workers
        self.network_namespace: bool | None = None  # known after the first worker starts
        self._lock = threading.Condition()
        self._idle: list[WorkerProcess] = []
        self._all: set[WorkerProcess] = set()
        self._starting = 0
        self._closed = False
        self._owner_pid = os.getpid()
        self._prefix: list[str] | None = None
        self._atexit = False

    def __enter__(self) -> SandboxPool:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<SandboxPool workers={len(self._all)}/{self.workers} {self.limits}>"

    def pids(self) -> list[int]:
        """Process ids of the live workers."""
        with self._lock:
            return sorted(w.pid for w in self._all)

    # -- one call -----------------------------------------------------------------------------
    def call(self, program: Program, request: dict[str, Any], blobs: list[bytes], *, timeout: float) -> Any:
        """Run ``program`` on the encoded arguments in ``request``; the decoded result.

        Raises a ``SandboxError`` (or the candidate's own builtin exception) on failure.
        """
        worker = self._acquire(program.op_name)
        try:
            if program.key not in worker.prepared:
                self._prepare(worker, program, timeout)
            if not worker.torch_ready and any(type(b) is wire.TensorBlob for b in blobs):
                self._setup(worker, program.op_name, {"op": "import", "modules": ["torch", "safetensors.torch"]})
                worker.torch_ready = True
            header = {**request, "op": "call", "key": program.key}
            reply, reply_blobs = self._exchange(worker, program.op_name, header, blobs, timeout)
            if _error_of(reply).get("kind") == "unprepared":  # evicted from the worker's cache
                self._prepare(worker, program, timeout)
                reply, reply_blobs = self._exchange(worker, program.op_name, header, blobs, timeout)
            if reply.get("ok"):
                try:
                    return wire.decode(reply.get("value"), reply_blobs)
                except (wire.WireError, RecursionError) as err:
                    worker.retiring = True
                    raise SandboxError(program.op_name, f"the worker's result is not valid data: {err}") from None
            raise program.annotate(self._failure(program.op_name, _error_of(reply)))
        finally:
            self._release(worker, worker.usable)

    def _prepare(self, worker: WorkerProcess, program: Program, timeout: float) -> None:
        """Imports first (trusted, ``setup_timeout``), then the candidate's own source (``timeout``)."""
        header, blobs = program.prepare_request()
        for request, request_blobs, limit in (({**header, "op": "prepare"}, blobs, self.limits.setup_timeout),
                                              ({"op": "define"}, [], timeout)):
            request["key"] = program.key
            reply, _ = self._exchange(worker, program.op_name, request, request_blobs, limit)
            if not reply.get("ok"):
                raise program.annotate(self._failure(program.op_name, _error_of(reply)))
        worker.prepared.add(program.key)

    def _setup(self, worker: WorkerProcess, op_name: str, header: dict[str, Any]) -> None:
        reply, _ = self._exchange(worker, op_name, header, [], self.limits.setup_timeout)
        if not reply.get("ok"):
            raise self._failure(op_name, _error_of(reply))

    def _exchange(self, worker: WorkerProcess, op_name: str, header: dict[str, Any], blobs: list[bytes],
                  timeout: float) -> tuple[dict[str, Any], list[bytes]]:
        """One request and reply; a worker that times out, dies or misbehaves is killed here."""
        max_bytes = (self.limits.max_result_mb << 20) + (1 << 16)
        try:
            return worker.exchange(header, blobs, time.monotonic() + timeout, max_bytes)
        except wire.Deadline:
            worker.kill()
            raise SandboxTimeout(op_name, f"killed after timeout {timeout:g} s") from None
        except (wire.PeerGone, BrokenPipeError):
            reason, code = worker.exit_reason()
            if self._closed:
                reason = "the sandbox pool was closed during the call"
            raise WorkerExited(op_name, reason, returncode=code) from None
        except wire.WireError as err:
            worker.kill()
            raise SandboxError(op_name, f"the worker broke the protocol: {err}") from None

    @staticmethod
    def _failure(op_name: str, error: dict[str, Any]) -> BaseException:
        kind = error.get("kind")
        message = str(error.get("message", "unknown failure"))
        if kind == "refused":
            refusals = error.get("refusals")
            return SandboxRefused(op_name, message, [str(r) for r in refusals] if type(refusals) is list else None)
        if kind == "exit":
            return CandidateExit(op_name, message)
        if kind in ("uncrossable", "too_large"):
            return CannotCross(op_name, message)
        if kind == "raised":
            return _rebuild(op_name, error, message)
        return SandboxError(op_name, message)

    # -- workers ------------------------------------------------------------------------------
    def _acquire(self, op_name: str) -> WorkerProcess:
        with self._lock:
            if os.getpid() != self._owner_pid:  # a forked child must not share its parent's workers
                self._idle, self._all, self._starting = [], set(), 0
                self._owner_pid, self._atexit = os.getpid(), False
            while True:
                if self._closed:
                    raise SandboxError(op_name, "the sandbox pool is closed")
                if self._idle:
                    return self._idle.pop()
                if len(self._all) + self._starting < self.workers:
                    self._starting += 1
                    break
                self._lock.wait()
        try:
            worker = self._start()
        except OSError as err:
            with self._lock:
                self._starting -= 1
                self._lock.notify()
            raise SandboxError(op_name, f"could not start a sandbox worker: {err}") from err
        with self._lock:
            self._starting -= 1
            self._all.add(worker)
            if not self._atexit:
                atexit.register(self.close)
                self._atexit = True
        return worker

    def _release(self, worker: WorkerProcess, healthy: bool) -> None:
        if not healthy:
            worker.kill()
        with self._lock:
            if healthy and not self._closed:
                self._idle.append(worker)
            else:
                self._all.discard(worker)
            self._lock.notify()
        if healthy and self._closed:
            worker.stop()

    def _start(self) -> WorkerProcess:
        _remove_stale_dirs()
        base_dir = tempfile.mkdtemp(prefix=f"{DIR_PREFIX}{os.getpid()}-")
        request_read, request_write = os.pipe()
        reply_read, reply_write = os.pipe()
        command = [*self._namespace_prefix(), sys.executable, "-I", "-B", "-c", BOOT,
                   str(request_read), str(reply_write), PACKAGE_DIR]
        try:
            process = subprocess.Popen(
                command, pass_fds=(request_read, reply_write), stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=base_dir,
                env=scrubbed_environment(base_dir), start_new_session=True)
        except OSError:
            for fd in (request_read, request_write, reply_read, reply_write):
                os.close(fd)
            shutil.rmtree(base_dir, ignore_errors=True)
            raise
        finally:
            for fd in (request_read, reply_write):
                try:
                    os.close(fd)
                except OSError:
                    pass
        worker = WorkerProcess(process, request_write, reply_read, base_dir)
        config = {"limits": self.limits.for_worker(), "sys_path": import_path(),
                  "read_roots": [*read_roots(self.limits), PACKAGE_DIR],
                  "import_roots": package_roots(), "base_dir": os.path.realpath(base_dir),
                  "env": scrubbed_environment(base_dir)}
        try:
            wire.write_frame(request_write, wire.pack({"config": config}, []))
        except OSError:
            worker.kill()
            raise
        return worker

    def _namespace_prefix(self) -> list[str]:
        """``unshare`` arguments for a private network namespace, or none where it is refused."""
        if self._prefix is None:
            wanted = self.limits.network_namespace and sys.platform.startswith("linux")
            self._prefix = list(_unshare_prefix(os.geteuid() == 0)) if wanted else []
            self.network_namespace = bool(self._prefix)
        return self._prefix

    def close(self) -> None:
        """Stop every worker; calls in flight end with ``WorkerExited``."""
        with self._lock:
            self._closed = True
            idle, self._idle = self._idle, []
            busy = [w for w in self._all if w not in idle]
            self._all.clear()
            self._lock.notify_all()
        for worker in idle:
            worker.stop()
        for worker in busy:  # the calling thread sees the pipe close, then reaps it
            worker.signal_kill()
        if self._atexit:
            atexit.unregister(self.close)
            self._atexit = False


@functools.lru_cache(maxsize=1)
def _remove_stale_dirs() -> None:
    """Remove worker folders left by processes that died without closing their pools (once)."""
    root = tempfile.gettempdir()
    try:
        names = os.listdir(root)
    except OSError:
        return
    for name in names:
        owner = name[len(DIR_PREFIX):].split("-", 1)[0]
        if not name.startswith(DIR_PREFIX) or not owner.isdigit() or int(owner) == os.getpid():
            continue
        try:
            os.kill(int(owner), 0)
        except ProcessLookupError:
            shutil.rmtree(os.path.join(root, name), ignore_errors=True)
        except (PermissionError, OverflowError):
            pass


@functools.lru_cache(maxsize=2)
def _unshare_prefix(root: bool) -> tuple[str, ...]:
    """``unshare`` with its arguments if a trial run succeeds here (probed once per process)."""
    unshare = shutil.which("unshare")
    if not unshare:
        return ()
    flags = ["--net"] if root else ["--net", "--map-root-user"]
    try:
        probe = subprocess.run([unshare, *flags, "true"], capture_output=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return ()
    return (unshare, *flags, "--") if probe.returncode == 0 else ()


def _error_of(reply: dict[str, Any]) -> dict[str, Any]:
    """The error part of a worker's reply; the worker runs untrusted code, so it is checked."""
    error = reply.get("error")
    return error if type(error) is dict else {}


def _rebuild(op_name: str, error: dict[str, Any], message: str) -> BaseException:
    """The candidate's exception as the parent's own builtin type, or a ``CandidateError``."""
    type_name = str(error.get("type_name", "Exception"))
    traceback = str(error.get("traceback", ""))
    cls = getattr(builtins, type_name, None) if error.get("module") == "builtins" else None
    rebuilt: BaseException | None = None
    if isinstance(cls, type) and issubclass(cls, Exception):
        args = error.get("args")
        try:
            rebuilt = cls(*args) if type(args) is list else cls(message)
        except Exception:
            try:
                rebuilt = cls(message)
            except Exception:
                rebuilt = None
    if rebuilt is None:
        return CandidateError(op_name, f"{type_name}: {message}", type_name=type_name, traceback=traceback)
    if traceback:
        rebuilt.add_note(f"raised in the sandbox by op {op_name!r}:\n{traceback.rstrip()}")
    return rebuilt
