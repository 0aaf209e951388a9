"""graphopt: optimize AI workflows the way PyTorch optimizes neural networks."""

from graphopt import errors, feedback, graph, llm, optim, plugins, train
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
from graphopt.feedback import Feedback, backward
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
from graphopt.llm import Budget, budget
from graphopt.optim import Optimizer, optimizer
from graphopt.train import optimize

__all__ = [
    "Budget", "BudgetExceeded", "Choice", "Error", "Feedback", "Float", "GraphoptError", "Int",
    "Message", "Module", "Node", "Optimizer", "OptimizerStepError", "Param",
    "ParamValidationError", "PluginNotFoundError", "PluginValidationError", "ReplyFormatError",
    "TraceError", "TracedFunction", "backward", "budget", "errors", "feedback", "graph", "llm",
    "no_trace", "op", "ops", "optim", "optimize", "optimizer", "param", "plugins", "train",
]

for _name in ("Budget", "Choice", "Error", "Feedback", "Float", "Int", "Message", "Module", "Node",
              "Optimizer", "Param", "TracedFunction"):
    globals()[_name].__module__ = "graphopt"
del _name
