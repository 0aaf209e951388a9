"""Traced runs across a process boundary: ``pack`` on the worker, ``unpack`` on the driver.

``pack(output, params)`` walks what ``output`` reaches (explicit stack, post-order) and writes
each node as a record: its class, its slots, its parents as positions earlier in the list; a
parameter named in ``params`` travels as its name only. The records are pickled with
cloudpickle (ops defined in the user's script travel with them); torch tensors travel as
tensors, detached. A value that cannot be pickled raises ``CannotShip`` naming the op that made
it. ``unpack(data, params)`` rebuilds the nodes, each parameter leaf being the driver's own
``Param`` of that name and each node a fresh id, so ``backward`` on the result sends feedback to the driver's params.
"""

from __future__ import annotations

import importlib
import pickle
from typing import Any, Mapping

from graphopt.graph.node import Node, Param, _next_id


class CannotShip(TypeError):
    """A traced value that cannot be sent from a worker back to the driver."""


def _slots(cls: type) -> list[str]:
    names: list[str] = []
    for klass in reversed(cls.__mro__):
        for name in getattr(klass, "__slots__", ()):
            if name not in ("parents", "__weakref__", "__dict__") and name not in names:
                names.append(name)
    return names


def _order(output: Node) -> list[Node]:
    """Nodes ``output`` reaches, each after its parents."""
    order: list[Node] = []
    seen: set[int] = set()
    stack: list[tuple[Node, bool]] = [(output, False)]
    while stack:
        node, expanded = stack.pop()
        if expanded:
            order.append(node)
            continue
        if id(node) in seen:  # by identity: params unpickled on a worker keep ids it reuses
            continue
        seen.add(id(node))
        stack.append((node, True))
        stack.extend((parent, False) for parent in reversed(node.parents) if id(parent) not in seen)
    return order


def pack(output: Node, params: Mapping[str, Param]) -> bytes:
    """The subgraph ``output`` reaches, as bytes ``unpack`` reads; params travel by name."""
    cloudpickle = importlib.import_module("cloudpickle")
    names = {id(p): n for n, p in params.items()}
    order = _order(output)
    position = {id(node): i for i, node in enumerate(order)}
    records: list[tuple[Any, ...]] = []
    for node in order:
        if id(node) in names:
            records.append(("param", names[id(node)]))
            continue
        state = {name: _detached(getattr(node, name)) for name in _slots(type(node)) if hasattr(node, name)}
        records.append(("node", type(node), state, tuple(position[id(p)] for p in node.parents)))
    try:
        return cloudpickle.dumps(records)
    except Exception as err:
        raise _culprit(cloudpickle, records, order) from err


def _detached(value: Any) -> Any:
    detach = getattr(value, "detach", None)
    return detach() if callable(detach) and type(value).__module__.startswith("torch") else value


def _culprit(cloudpickle: Any, records: list[tuple[Any, ...]], order: list[Node]) -> CannotShip:
    for record, node in zip(records, order):
        if record[0] != "node":
            continue
        try:
            cloudpickle.dumps(record[2].get("value"))
        except Exception as err:
            op = node.op.name if node.op is not None else "a leaf"
            return CannotShip(f"op {op!r} (node {node.label}) produced a "
                              f"{type(node.value).__name__} that cannot be sent back from a "
                              f"worker: {err}; return picklable values or use executor='threads'")
    return CannotShip("a traced run cannot be sent back from a worker (an op or its metadata "
                      "is not picklable); use executor='threads'")


def unpack(data: bytes, params: Mapping[str, Param]) -> Node:
    """The output node of a packed run, rebuilt on top of ``params`` (the driver's own)."""
    records = pickle.loads(data)  # written by ``pack``: the driver's own workers, not a user file
    nodes: list[Node] = []
    for record in records:
        if record[0] == "param":
            if record[1] not in params:
                raise KeyError(f"a traced run refers to param {record[1]!r}, unknown on the driver")
            nodes.append(params[record[1]])
            continue
        _, cls, state, parents = record
        node = object.__new__(cls)
        for name, value in state.items():
            object.__setattr__(node, name, value)
        object.__setattr__(node, "parents", tuple(nodes[i] for i in parents))
        object.__setattr__(node, "id", _next_id())  # the worker's ids may clash with the driver's
        nodes.append(node)
    return nodes[-1]
