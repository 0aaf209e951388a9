"""Graph walks: iterative topological order and the minimal subgraph behind an output.

Both are O(V + E) with an explicit stack, so a million-node chain never meets the recursion limit.
"""

from __future__ import annotations

from typing import Iterable, Sequence

from graphopt.graph.node import Node, Param


def topological_order(outputs: Iterable[Node]) -> list[Node]:
    """Every node the outputs reach, parents before children."""
    seen: set[Node] = set()
    order: list[Node] = []
    for root in outputs:
        if root in seen:
            continue
        seen.add(root)
        stack = [(root, iter(root.parents))]
        while stack:
            node, parents = stack[-1]
            for parent in parents:
                if parent not in seen:
                    seen.add(parent)
                    stack.append((parent, iter(parent.parents)))
                    break
            else:
                stack.pop()
                order.append(node)
    return order


def is_trainable(node: Node) -> bool:
    return isinstance(node, Param) and node.trainable


class Subgraph:
    """The nodes on a path from a trainable parameter to one of ``outputs``, parents first."""

    __slots__ = ("outputs", "nodes", "params")

    def __init__(self, outputs: tuple[Node, ...], nodes: list[Node], params: list[Param]) -> None:
        self.outputs = outputs
        self.nodes = nodes
        self.params = params

    def descendants(self, param: Param) -> list[Node]:
        """The part of this subgraph that ``param`` reaches (itself first), parents first."""
        reached: set[Node] = {param}
        result: list[Node] = []
        for node in self.nodes:
            if node is param or any(p in reached for p in node.parents):
                reached.add(node)
                result.append(node)
        return result

    def __len__(self) -> int:
        return len(self.nodes)

    def __repr__(self) -> str:
        names = ", ".join(p.label for p in self.params)
        return f"Subgraph({len(self.nodes)} nodes, params=[{names}])"


def minimal_subgraph(outputs: Sequence[Node]) -> Subgraph:
    """The nodes between the trainable parameters and ``outputs``: what feedback must cross."""
    on_path: set[Node] = set()
    nodes: list[Node] = []
    params: list[Param] = []
    for node in topological_order(outputs):
        if is_trainable(node):
            params.append(node)  # type: ignore[arg-type]
        elif not any(p in on_path for p in node.parents):
            continue
        on_path.add(node)
        nodes.append(node)
    return Subgraph(tuple(outputs), nodes, params)
