"""The graph layer: nodes, parameters, traced ops, trace context, walks and export."""

from graphopt.graph import ops
from graphopt.graph.context import is_tracing, no_trace
from graphopt.graph.export import to_dot, to_networkx
from graphopt.graph.kinds import ParamKind
from graphopt.graph.module import Module
from graphopt.graph.node import Error, Message, Node, Op, Param, param
from graphopt.graph.op import BoundTracedFunction, TracedFunction, op
from graphopt.graph.space import Choice, Float, Int, Space
from graphopt.graph.walk import Subgraph, minimal_subgraph, topological_order

__all__ = [
    "BoundTracedFunction", "Choice", "Error", "Float", "Int", "Message", "Module", "Node", "Op",
    "Param", "ParamKind", "Space", "Subgraph", "TracedFunction", "is_tracing", "minimal_subgraph",
    "no_trace", "op", "ops", "param", "to_dot", "to_networkx", "topological_order",
]
