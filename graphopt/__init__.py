"""graphopt: optimize AI workflows the way PyTorch optimizes neural networks.

``import graphopt`` loads only the graph and plugin core. The feedback, LLM, optimizer and training
layers (and with them pydantic, torch, litellm…) load on first use of a name they provide (PEP 562),
so ``go.optimizer`` or ``go.Feedback`` work as if imported eagerly.
"""

import importlib as _importlib
import typing as _typing

from graphopt import errors, graph, plugins
from graphopt.errors import (
    BudgetExceeded,
    GraphoptError,
    OptimizerStepError,
    ParamValidationError,
    PluginNotFoundError,
    PluginValidationError,
    ReplyFormatError,
    TraceError,
)
from graphopt.graph import (
    Choice,
    Error,
    Float,
    Int,
    Message,
    Module,
    Node,
    Param,
    TracedFunction,
    no_trace,
    op,
    ops,
    param,
)

if _typing.TYPE_CHECKING:
    from graphopt import feedback, llm, optim, train
    from graphopt.feedback import Feedback, backward
    from graphopt.llm import Budget, budget
    from graphopt.optim import Optimizer, optimizer
    from graphopt.train import evaluate, optimize

__all__ = [
    "Budget", "BudgetExceeded", "Choice", "Error", "Feedback", "Float", "GraphoptError", "Int",
    "Message", "Module", "Node", "Optimizer", "OptimizerStepError", "Param",
    "ParamValidationError", "PluginNotFoundError", "PluginValidationError", "ReplyFormatError",
    "TraceError", "TracedFunction", "backward", "budget", "errors", "evaluate", "feedback", "graph", "llm",
    "no_trace", "op", "ops", "optim", "optimize", "optimizer", "param", "plugins", "train",
]

# Loaded on first use: name -> (module, attribute; None for the module itself).
_LAZY: dict[str, tuple[str, str | None]] = {
    "feedback": ("graphopt.feedback", None),
    "Feedback": ("graphopt.feedback", "Feedback"),
    "backward": ("graphopt.feedback", "backward"),
    "llm": ("graphopt.llm", None),
    "Budget": ("graphopt.llm", "Budget"),
    "budget": ("graphopt.llm", "budget"),
    "optim": ("graphopt.optim", None),
    "Optimizer": ("graphopt.optim", "Optimizer"),
    "optimizer": ("graphopt.optim", "optimizer"),
    "train": ("graphopt.train", None),
    "optimize": ("graphopt.train", "optimize"),
    "evaluate": ("graphopt.train", "evaluate"),
}

# Reprs and pickles say graphopt.Param; pickle finds the lazy ones again through __getattr__.
_RENAMED = ("Budget", "Choice", "Error", "Feedback", "Float", "Int", "Message", "Module", "Node",
            "Optimizer", "Param", "TracedFunction")

for _name in _RENAMED:
    if _name not in _LAZY:
        globals()[_name].__module__ = "graphopt"
del _name


def __getattr__(name: str) -> _typing.Any:
    """Import the layer behind a lazily exported name on first access and keep the result."""
    try:
        module_name, attribute = _LAZY[name]
    except KeyError:
        raise AttributeError(f"module 'graphopt' has no attribute {name!r}") from None
    module = _importlib.import_module(module_name)
    value = module if attribute is None else getattr(module, attribute)
    if name in _RENAMED:
        value.__module__ = "graphopt"
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
