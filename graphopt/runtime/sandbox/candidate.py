"""A code value of a trainable op, run in the sandbox: what it may use, and one call of it.

The candidate runs with Python's builtins, the imports it makes itself (under the guard), and
the names it uses from the original function's globals and closure that can cross as data:

- modules, re-imported in the worker by name (``re``, ``json``, ``torch``…);
- functions and classes importable as ``module.qualname`` (not from ``__main__``, not local);
- values that are data (numbers, strings, lists, dicts, tuples, tensors…), copied.

Anything else (a client object, a local helper) is not defined in the sandbox; a ``NameError``
for it says so. A method's receiver (``self``) crosses as a read-only snapshot of its data
attributes. Results come back as data; tensors come back detached, on the CPU.
"""

from __future__ import annotations

import ast
import importlib
import inspect
import sys
import types
from typing import Any, Callable, Sequence

from graphopt.runtime.sandbox import wire
from graphopt.runtime.sandbox.errors import CannotCross

SETTINGS = "graphopt.runtime.sandbox.settings"  # the pool's module, loaded on the first call


class Candidate:
    """A callable running one code value of op ``op_name`` in the context's sandbox pool."""

    __slots__ = ("op_name", "source", "key", "function_name", "is_async", "timeout", "arg_names",
                 "method", "_original", "_prepare", "missing")

    def __init__(self, op_name: str, source: str, key: str, original: Callable[..., Any], *,
                 is_async: bool, timeout: float | None, arg_names: Sequence[str]) -> None:
        self.op_name = op_name
        self.source = source
        self.key = key
        self.function_name = original.__name__
        self.is_async = is_async
        self.timeout = timeout
        self.arg_names = tuple(arg_names)
        self.method = bool(arg_names) and arg_names[0] in ("self", "cls")
        self._original = original
        self._prepare: tuple[dict[str, Any], list[bytes]] | None = None
        self.missing: dict[str, str] = {}

    @classmethod
    def build(cls, op_name: str, source: str, key: str, original: Callable[..., Any], *, is_async: bool,
              timeout: float | None, arg_names: Sequence[str]) -> Candidate | BaseException:
        """A candidate, or the ``SyntaxError`` its source raises (compiled here, never run here)."""
        try:
            compile(source, f"<graphopt candidate {op_name}>", "exec")
        except (SyntaxError, ValueError) as exc:
            return exc
        return cls(op_name, source, key, original, is_async=is_async, timeout=timeout, arg_names=arg_names)

    def __repr__(self) -> str:
        return f"<sandboxed candidate of op {self.op_name!r} {self.key[:12]}>"

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if self.is_async:  # asyncio is already loaded by whoever awaits this
            return sys.modules["asyncio"].to_thread(self.run, args, kwargs)
        return self.run(args, kwargs)

    def run(self, args: Sequence[Any], kwargs: dict[str, Any]) -> Any:
        """One call in the pool of the current context; the decoded result."""
        pool = (sys.modules.get(SETTINGS) or importlib.import_module(SETTINGS)).current_pool()
        request, blobs = self.request(args, kwargs)
        timeout = self.timeout if self.timeout is not None else pool.limits.timeout
        return pool.call(self, request, blobs, timeout=timeout)

    def request(self, args: Sequence[Any], kwargs: dict[str, Any]) -> tuple[dict[str, Any], list[bytes]]:
        """The call's arguments as data; ``CannotCross`` names the argument that is not."""
        blobs: list[bytes] = []
        receiver = None
        if self.method and args:
            receiver = _snapshot(args[0], blobs)
            args = args[1:]
        names = self.arg_names[1:] if receiver is not None else self.arg_names
        try:
            encoded = [wire.encode(value, blobs, f"argument {_name(names, i)!r}") for i, value in enumerate(args)]
            keywords = {k: wire.encode(v, blobs, f"argument {k!r}") for k, v in kwargs.items()}
        except wire.WireError as err:
            raise CannotCross(self.op_name, f"cannot enter the sandbox: {err}") from None
        return {"args": encoded, "kwargs": keywords, "receiver": receiver}, blobs

    def prepare_request(self) -> tuple[dict[str, Any], list[bytes]]:
        """Source, imports and data globals for the worker, computed once."""
        if self._prepare is None:
            imports, values, blobs, self.missing, preload = _globals_for(self.source, self._original)
            header = {"source": self.source, "function": self.function_name, "is_async": self.is_async,
                      "filename": f"<graphopt candidate {self.op_name}>", "imports": imports,
                      "values": values, "preload": preload}
            self._prepare = (header, blobs)
        return self._prepare

    def annotate(self, error: BaseException) -> BaseException:
        """Add which names did not reach the sandbox to a ``NameError`` about one of them."""
        if isinstance(error, NameError) and self.missing:
            text = str(error)
            for name, why in self.missing.items():
                if f"'{name}'" in text:
                    error.add_note(f"{name!r} is {why} in the op's globals and cannot enter the sandbox: "
                                   "only modules, importable functions and classes, and data do")
        return error


def _name(names: Sequence[str], index: int) -> str:
    return names[index] if index < len(names) else f"arg{index}"


def _snapshot(receiver: Any, blobs: list[bytes]) -> dict[str, Any]:
    """The receiver's data attributes (others are left out) and its class name."""
    attributes: dict[str, Any] = {}
    for name, value in getattr(receiver, "__dict__", {}).items():
        if not isinstance(name, str) or name.startswith("__"):
            continue
        mine: list[bytes] = []
        try:
            attributes[name] = wire.encode(value, mine, f"self.{name}")
        except wire.WireError:
            continue
        if mine:  # blob indices are positions in the call's list
            offset = len(blobs)
            blobs.extend(mine)
            attributes[name] = _shift(attributes[name], offset)
    cls = receiver if isinstance(receiver, type) else type(receiver)
    return {"class": cls.__name__, "attributes": attributes}


def _shift(data: Any, offset: int) -> Any:
    if type(data) is list:
        return [_shift(v, offset) for v in data]
    if type(data) is dict:
        if wire.TAG in data and "b" in data:
            return {**data, "b": data["b"] + offset}
        return {k: _shift(v, offset) for k, v in data.items()}
    return data


def _globals_for(source: str, original: Callable[..., Any]
                 ) -> tuple[list[list[str]], dict[str, Any], list[bytes], dict[str, str], list[str]]:
    """What the candidate may use of the original's globals: imports, data values, and the rest."""
    tree = ast.parse(source)
    used = {node.id for node in ast.walk(tree) if isinstance(node, ast.Name)}
    used.discard(original.__name__)
    namespace = dict(getattr(original, "__globals__", {}))
    try:
        namespace.update(inspect.getclosurevars(original).nonlocals)
    except (TypeError, ValueError):
        pass
    imports: list[list[str]] = []
    values: dict[str, Any] = {}
    blobs: list[bytes] = []
    missing: dict[str, str] = {}
    for name in sorted(used & namespace.keys()):
        value = namespace[name]
        if isinstance(value, types.ModuleType):
            if value.__name__ != "__main__":
                imports.append([name, value.__name__, ""])
            else:
                missing[name] = "the __main__ module"
            continue
        reference = _importable(value)
        if reference is not None:
            imports.append([name, *reference])
            continue
        try:
            values[name] = wire.encode(value, blobs, name)
        except wire.WireError:
            missing[name] = f"a {type(value).__name__}"
    return imports, values, blobs, missing, _preloads(tree)


def _preloads(tree: ast.AST) -> list[str]:
    """Modules the candidate imports itself that this process has loaded already.

    The worker imports them before the candidate runs (module code the user's environment
    already trusts), so that loading them meets no refusal; what the candidate then does with
    them is guarded as usual.
    """
    names = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.extend(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.append(node.module)
    return sorted({n for n in names if n in sys.modules})


def _importable(value: Any) -> tuple[str, str] | None:
    """``(module, qualname)`` when ``value`` is a function or class importable by that name."""
    if not callable(value):
        return None
    module, qualname = getattr(value, "__module__", None), getattr(value, "__qualname__", None)
    if not isinstance(module, str) or not isinstance(qualname, str) or module == "__main__" \
            or "<locals>" in qualname or module not in sys.modules:
        return None
    found: Any = sys.modules[module]
    for part in qualname.split("."):
        found = getattr(found, part, None)
    return (module, qualname) if found is value else None
