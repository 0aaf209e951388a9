"""The sandbox for candidate code: warm worker processes, an audit-hook guard, data-only wire.

Use ``sandbox(...)`` to set the run-level mode and limits, ``@go.op(trainable=True, sandbox=...)``
per op. See docs/sandbox.md. Names load on first use (PEP 562): importing graphopt, which reads
the mode, does not load the pool or ``subprocess``.
"""

import importlib as _importlib
import typing as _typing

if _typing.TYPE_CHECKING:
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
    from graphopt.runtime.sandbox.mode import current_mode
    from graphopt.runtime.sandbox.pool import SandboxPool
    from graphopt.runtime.sandbox.settings import current_pool, default_pool, sandbox

_EXPORT = {
    "CandidateError": "errors", "CandidateExit": "errors", "CannotCross": "errors", "SandboxError": "errors",
    "SandboxRefused": "errors", "SandboxTimeout": "errors", "WorkerExited": "errors",
    "DEFAULT_TIMEOUT": "limits", "Limits": "limits", "current_mode": "mode", "SandboxPool": "pool",
    "current_pool": "settings", "default_pool": "settings", "sandbox": "settings",
}
__all__ = sorted(_EXPORT)


def __getattr__(name: str) -> _typing.Any:
    if name not in _EXPORT:
        raise AttributeError(f"module 'graphopt.runtime.sandbox' has no attribute {name!r}")
    value = getattr(_importlib.import_module(f"graphopt.runtime.sandbox.{_EXPORT[name]}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
