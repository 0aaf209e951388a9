"""The graph layer: nodes, parameters, traced ops, trace context, walks and export.

``to_networkx`` and ``to_dot`` load on first use, so importing the graph layer leaves networkx out.
"""

import importlib as _importlib
import typing as _typing

from graphopt.graph import ops
from graphopt.graph.context import is_tracing, no_trace
from graphopt.graph.kinds import ParamKind
from graphopt.graph.module import Module
from graphopt.graph.node import Error, Message, Node, Op, Param, param
from graphopt.graph.op import BoundTracedFunction, TracedFunction, op
from graphopt.graph.space import Choice, Float, Int, Space
from graphopt.graph.walk import Subgraph, minimal_subgraph, topological_order

if _typing.TYPE_CHECKING:
    from graphopt.graph.export import to_dot, to_networkx

__all__ = [
    "BoundTracedFunction", "Choice", "Error", "Float", "Int", "Message", "Module", "Node", "Op",
    "Param", "ParamKind", "Space", "Subgraph", "TracedFunction", "is_tracing", "minimal_subgraph",
    "no_trace", "op", "ops", "param", "to_dot", "to_networkx", "topological_order",
]

_EXPORT = ("to_dot", "to_networkx")


def __getattr__(name: str) -> _typing.Any:
    if name not in _EXPORT:
        raise AttributeError(f"module 'graphopt.graph' has no attribute {name!r}")
    value = getattr(_importlib.import_module("graphopt.graph.export"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
