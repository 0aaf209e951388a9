"""Export a traced graph to ``networkx`` or Graphviz dot text."""

from __future__ import annotations

from typing import Any

import networkx as nx

from graphopt.graph.node import Error, Message, Node, Param
from graphopt.graph.walk import topological_order


def short_value(value: Any, limit: int = 80) -> str:
    """``repr(value)`` cut to ``limit`` characters."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def node_kind(node: Node) -> str:
    """``param``, ``error``, ``message`` or ``node``."""
    if isinstance(node, Param):
        return "param"
    if isinstance(node, Error):
        return "error"
    if isinstance(node, Message):
        return "message"
    return "node"


def to_networkx(*outputs: Node, value_limit: int = 80) -> nx.DiGraph:
    """A ``DiGraph`` of everything ``outputs`` reach; edges run parent → child.

    Node keys are node ids; attributes: ``kind``, ``name``, ``op``, ``value`` (short text),
    ``trainable`` and ``param_kind`` for parameters; edges carry the argument name ``arg``.
    """
    graph = nx.DiGraph()
    for node in topological_order(outputs):
        attributes: dict[str, Any] = {
            "kind": node_kind(node), "name": node.label,
            "op": node.op.name if node.op is not None else None,
            "value": short_value(node.value, value_limit),
        }
        if isinstance(node, Param):
            attributes["trainable"] = node.trainable
            attributes["param_kind"] = node.kind.name
        graph.add_node(node.id, **attributes)
        names = node.arg_names if isinstance(node, Message) else ()
        for index, parent in enumerate(node.parents):
            graph.add_edge(parent.id, node.id, arg=names[index] if index < len(names) else "")
    return graph


def _escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace('"', '\\"')


_SHAPES = {"param": "box", "error": "octagon", "message": "ellipse", "node": "plaintext"}


def to_dot(*outputs: Node, value_limit: int = 40) -> str:
    """Graphviz dot text of everything ``outputs`` reach."""
    graph = to_networkx(*outputs, value_limit=value_limit)
    lines = ["digraph graphopt {", "  rankdir=LR;"]
    for key, data in graph.nodes(data=True):
        label = f"{_escape(data['name'])}\\n{_escape(data['value'])}"
        lines.append(f'  n{key} [label="{label}", shape={_SHAPES[data["kind"]]}];')
    for parent, child, data in graph.edges(data=True):
        lines.append(f'  n{parent} -> n{child} [label="{data["arg"]}"];')
    lines.append("}")
    return "\n".join(lines) + "\n"
