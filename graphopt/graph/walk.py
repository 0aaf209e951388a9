"""Graph walks: iterative topological order and the minimal subgraph behind an output.

Both are O(V + E) with an explicit stack, so a million-node chain never meets the recursion limit.
"""

from __future__ import annotations

from typing import Iterable, Sequence

from graphopt.graph.node import Node, Param

# Pushed below a node's parents: popping it means the node under it has all its parents done.
# One marker instead of a second "expanded" set or a (node, state) tuple per visit.
_FINISH = object()


def topological_order(outputs: Iterable[Node]) -> list[Node]:
    """Every node the outputs reach, parents before children (first parents first)."""
    # No per-node containers: creating them would wake the cyclic garbage collector, which then
    # scans the whole graph. A node may sit on the stack twice (two children push it before it
    # is finished); the later pop finds it done. In a DAG a node is never met while in progress.
    done: set[Node] = set()
    order: list[Node] = []
    stack: list = list(outputs)
    stack.reverse()
    pop, push = stack.pop, stack.append
    while stack:
        node = pop()
        if node is _FINISH:
            node = pop()
            done.add(node)
            order.append(node)
        elif node not in done:
            push(node)
            push(_FINISH)
            parents = node.parents
            for index in range(len(parents) - 1, -1, -1):
                if parents[index] not in done:
                    push(parents[index])
    return order


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
    # topological_order's walk, deciding each node as it finishes (its parents are decided by
    # then), in one pass: this runs once per backward, every torch step included. Parents are
    # pushed all at once; one already finished is skipped when popped (still O(V + E)).
    outputs = tuple(outputs)
    on_path: dict[Node, bool] = {}  # every finished node: whether a trainable param reaches it
    nodes: list[Node] = []
    params: list[Param] = []
    stack: list = list(outputs)
    stack.reverse()
    pop, push, extend = stack.pop, stack.append, stack.extend
    while stack:
        node = pop()
        if node is _FINISH:
            node = pop()
            for parent in node.parents:
                if on_path[parent]:
                    on_path[node] = True
                    nodes.append(node)
                    break
            else:
                on_path[node] = False
        elif node not in on_path:
            parents = node.parents
            if parents:
                push(node)
                push(_FINISH)
                extend(parents[::-1])
            elif isinstance(node, Param) and node.trainable:  # params are leaves
                on_path[node] = True
                nodes.append(node)
                params.append(node)
            else:
                on_path[node] = False
    return Subgraph(outputs, nodes, params)


def _reaches(node: Node, marked: set[Node]) -> bool:
    """Whether a parent of ``node`` is in ``marked`` (a loop: a generator per node costs GC)."""
    for parent in node.parents:
        if parent in marked:
            return True
    return False
