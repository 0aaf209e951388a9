"""Graph walks: iterative topological order and the minimal subgraph behind an output.

Both are O(V + E) with an explicit stack, so a million-node chain never meets the recursion limit.
"""

from __future__ import annotations

from typing import Iterable, Sequence

from graphopt.graph.node import Node, Param


def topological_order(outputs: Iterable[Node]) -> list[Node]:
    """Every node the outputs reach, parents before children (first parents first)."""
    # Two visits per node on one explicit stack, and no per-node allocations: creating
    # containers would wake the cyclic garbage collector, which then scans the whole graph.
    done: set[Node] = set()
    expanded: set[Node] = set()
    order: list[Node] = []
    stack = list(outputs)
    stack.reverse()
    while stack:
        node = stack[-1]
        if node in done:
            stack.pop()
        elif node in expanded:
            stack.pop()
            done.add(node)
            order.append(node)
        else:
            expanded.add(node)
            parents = node.parents
            for index in range(len(parents) - 1, -1, -1):
                if parents[index] not in done:
                    stack.append(parents[index])
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
            if node is param or _reaches(node, reached):
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
    # is_trainable and _reaches inlined: this runs once per backward, torch steps included.
    for node in topological_order(outputs):
        if isinstance(node, Param) and node.trainable:
            params.append(node)
        else:
            for parent in node.parents:
                if parent in on_path:
                    break
            else:
                continue
        on_path.add(node)
        nodes.append(node)
    return Subgraph(tuple(outputs), nodes, params)


def _reaches(node: Node, marked: set[Node]) -> bool:
    """Whether a parent of ``node`` is in ``marked`` (a loop: a generator per node costs GC)."""
    for parent in node.parents:
        if parent in marked:
            return True
    return False
