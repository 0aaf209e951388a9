"""What names a workflow and a metric in the evaluation cache key: qualified names and code.

A cached outcome is only valid for the code that produced it. ``code_identity`` hashes the
source of a function (its bytecode when the source is gone), of a ``Module``'s class, and of
the ``@go.op``s the function reaches directly through its globals and closure, so editing the
workflow, one of its ops or the metric starts a fresh set of cache entries.
"""

from __future__ import annotations

import hashlib
import inspect
from typing import Any, Iterator

from graphopt.graph.module import Module
from graphopt.graph.op import BoundTracedFunction, TracedFunction


def qualified_name(item: Any) -> str:
    """``module.qualname`` of a function, bound method or callable object."""
    target = getattr(item, "__func__", item)
    if not hasattr(target, "__qualname__"):
        target = type(target)
    return f"{getattr(target, '__module__', '?')}.{target.__qualname__}"


def code_identity(item: Any) -> str:
    """A short hash of ``item``'s qualified name and code, and of the ops it calls directly."""
    digest = hashlib.sha256()
    seen: set[int] = set()
    for piece in _pieces(item, seen, depth=0):
        digest.update(piece.encode("utf-8", "surrogatepass"))
        digest.update(b"\0")
    return f"{qualified_name(item)}#{digest.hexdigest()[:16]}"


def _pieces(item: Any, seen: set[int], depth: int) -> Iterator[str]:
    if id(item) in seen:
        return
    seen.add(id(item))
    if isinstance(item, BoundTracedFunction):
        item = item.traced
    if isinstance(item, TracedFunction):
        yield _source(item.function)
        yield from _reached(item.function, seen, depth)
        return
    owner = getattr(item, "__self__", None)
    if isinstance(owner, Module):  # a module's forward: its whole class holds its ops
        yield from _class_sources(type(owner))
        return
    if isinstance(item, Module):
        yield from _class_sources(type(item))
        return
    function = getattr(item, "__func__", item)
    if inspect.isfunction(function):
        yield _source(function)
        yield from _reached(function, seen, depth)
    else:
        yield from _class_sources(type(item))


def _reached(function: Any, seen: set[int], depth: int) -> Iterator[str]:
    """Sources of the ops (and modules) a function names in its globals or closure, one level deep."""
    if depth >= 1:
        return
    code = getattr(function, "__code__", None)
    if code is None:
        return
    names = set(code.co_names)
    found = [function.__globals__[n] for n in sorted(names) if n in function.__globals__]
    for cell in function.__closure__ or ():
        try:
            found.append(cell.cell_contents)
        except ValueError:  # an empty cell
            continue
    for value in found:
        if isinstance(value, (TracedFunction, BoundTracedFunction, Module)):
            yield from _pieces(value, seen, depth + 1)


def _class_sources(cls: type) -> Iterator[str]:
    for klass in cls.__mro__:
        if klass is object or klass is Module:
            continue
        try:
            yield inspect.getsource(klass)
        except (OSError, TypeError):
            yield klass.__qualname__


def _source(function: Any) -> str:
    try:
        return inspect.getsource(function)
    except (OSError, TypeError):
        code = getattr(function, "__code__", None)
        if code is None:
            return repr(function)
        return code.co_code.hex() + repr(code.co_consts) + repr(code.co_names)
