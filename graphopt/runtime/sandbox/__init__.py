"""The sandbox for candidate code: warm worker processes, an audit-hook guard, data-only wire.

Use ``sandbox(...)`` to set the run-level mode and limits, ``@go.op(trainable=True, sandbox=...)``
per op. See docs/sandbox.md.
"""

from graphopt.runtime.sandbox.errors import (
    CandidateError,
    CandidateExit,
    CannotCross,
    SandboxError,
    SandboxRefused,
    SandboxTimeout,
    WorkerExited,
)
from graphopt.runtime.sandbox.limits import DEFAULT_TIMEOUT, Limits
from graphopt.runtime.sandbox.pool import SandboxPool
from graphopt.runtime.sandbox.settings import current_mode, current_pool, default_pool, sandbox

__all__ = [
    "DEFAULT_TIMEOUT", "CandidateError", "CandidateExit", "CannotCross", "Limits", "SandboxError",
    "SandboxPool", "SandboxRefused", "SandboxTimeout", "WorkerExited", "current_mode", "current_pool",
    "default_pool", "sandbox",
]
