"""Exceptions raised by graphopt.

Every exception derives from one base, so ``except GraphoptError`` catches them all::

    GraphoptError
    ├── TraceError                 a graph was built or walked in a way graphopt cannot follow
    ├── ParamValidationError       a value does not fit a parameter's kind or space   (.param)
    ├── PluginValidationError      a plugin breaks the hook contract                  (.plugin)
    │   └── PluginNotFoundError    no plugin provides the requested name              (.name)
    ├── OptimizerStepError         a step was refused; parameters are unchanged       (.optimizer)
    ├── BudgetExceeded             a usage budget would be exceeded by the next call  (.budget)
    ├── LLMError                   a model call failed after retries                  (.model)
    ├── ReplyFormatError           a model reply could not be parsed                  (.raw)
    ├── DatasetError               a dataset row or file is not a set of examples
    └── CheckpointError            a checkpoint cannot be read or does not fit the run (.path)
        └── RunLockedError         another run holds the checkpoint or history path   (.pid)

Failures inside user or candidate code are not raised: they become ``Error`` nodes and feedback.
"""

from __future__ import annotations

from typing import Any


class GraphoptError(Exception):
    """Base class of every error graphopt raises."""


class TraceError(GraphoptError):
    """A graph was built or walked in a way graphopt cannot follow."""

    def __init__(self, message: str, *, node: Any = None) -> None:
        super().__init__(message)
        self.node = node


class ParamValidationError(GraphoptError, ValueError):
    """A value does not fit a parameter's kind or space."""

    def __init__(self, message: str, *, param: Any = None, value: Any = None) -> None:
        super().__init__(message)
        self.param = param
        self.value = value


class PluginValidationError(GraphoptError):
    """A plugin does not honour the hook contract, or could not be loaded."""

    def __init__(self, message: str, *, plugin: Any = None) -> None:
        super().__init__(message)
        self.plugin = plugin


class PluginNotFoundError(PluginValidationError, LookupError):
    """No registered plugin provides the requested name."""

    def __init__(self, message: str, *, name: str, available: list[str]) -> None:
        super().__init__(message)
        self.name = name
        self.available = available


class OptimizerStepError(GraphoptError):
    """A step was refused; every parameter keeps its previous value."""

    def __init__(self, message: str, *, optimizer: Any = None, errors: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.optimizer = optimizer
        self.errors = errors or {}


class BudgetExceeded(GraphoptError):
    """The next call would exceed a usage budget; nothing was sent."""

    def __init__(self, message: str, *, budget: Any = None) -> None:
        super().__init__(message)
        self.budget = budget


class LLMError(GraphoptError):
    """A model call failed after its retries."""

    def __init__(self, message: str, *, model: str | None = None) -> None:
        super().__init__(message)
        self.model = model


class ReplyFormatError(GraphoptError):
    """A model reply could not be parsed into the requested structure."""

    def __init__(self, message: str, *, raw: str = "") -> None:
        super().__init__(message)
        self.raw = raw


class DatasetError(GraphoptError, ValueError):
    """A dataset row or file could not be read as examples."""


class CheckpointError(GraphoptError):
    """A checkpoint could not be read, or does not fit the run resuming from it."""

    def __init__(self, message: str, *, path: str | None = None) -> None:
        super().__init__(message)
        self.path = path


class RunLockedError(CheckpointError):
    """Another run (process ``pid``) holds the lock on this checkpoint or history path."""

    def __init__(self, message: str, *, path: str | None = None, pid: int | None = None) -> None:
        super().__init__(message, path=path)
        self.pid = pid
