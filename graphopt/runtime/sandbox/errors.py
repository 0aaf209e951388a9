"""Why a sandboxed call failed. Each becomes the exception of the call's ``Error`` node.

::

    SandboxError (GraphoptError)      a sandboxed call did not return a value      (.op, .reason)
    ├── SandboxTimeout (TimeoutError) killed after its wall-clock timeout
    ├── SandboxRefused (PermissionError)  the guard refused an action (socket, subprocess, a write…)
    ├── WorkerExited                  the worker died: os._exit, a signal, a crash, the CPU limit
    ├── CandidateExit                 the candidate raised SystemExit / KeyboardInterrupt
    ├── CannotCross (TypeError)       an argument or the result is not data
    └── CandidateError                the candidate raised an exception that is not a builtin
"""

from __future__ import annotations

from graphopt.errors import GraphoptError


class SandboxError(GraphoptError):
    """A sandboxed call of op ``op`` failed for ``reason``."""

    def __init__(self, op: str, reason: str) -> None:
        super().__init__(f"op {op!r}: {reason}")
        self.op = op
        self.reason = reason


class SandboxTimeout(SandboxError, TimeoutError):
    """The call ran past its timeout; its worker was killed."""


class SandboxRefused(SandboxError, PermissionError):
    """The guard refused an action of the candidate (it was not carried out)."""

    def __init__(self, op: str, reason: str, refusals: list[str] | None = None) -> None:
        super().__init__(op, reason)
        self.refusals = refusals or [reason]


class WorkerExited(SandboxError):
    """The worker process ended during the call (exit code or signal in ``reason``)."""

    def __init__(self, op: str, reason: str, *, returncode: int | None = None) -> None:
        super().__init__(op, reason)
        self.returncode = returncode


class CandidateExit(SandboxError):
    """The candidate raised ``SystemExit`` or ``KeyboardInterrupt``; the run goes on."""


class CannotCross(SandboxError, TypeError):
    """An argument or the result of a sandboxed call is not data (JSON types, tensors, …)."""


class CandidateError(SandboxError):
    """The candidate raised an exception of a type the parent does not rebuild.

    ``type_name`` is the exception's class; ``traceback`` the worker's formatted traceback.
    """

    def __init__(self, op: str, reason: str, *, type_name: str, traceback: str = "") -> None:
        super().__init__(op, reason)
        self.type_name = type_name
        self.traceback = traceback
