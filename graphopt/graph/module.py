"""``Module``: a workflow class whose parameters and trainable ops are found by walking it."""

from __future__ import annotations

import os
from typing import Any, Iterator, Mapping

from graphopt.graph.node import Param
from graphopt.graph.op import TracedFunction
from graphopt.graph.serialize import check_values, read_params, save_params


class Module:
    """Base class for workflows holding parameters, as ``torch.nn.Module`` holds tensors.

    Parameters and trainable ops are found in instance attributes (also inside lists, tuples,
    dicts and nested modules) and in ``@op(trainable=True)`` methods of the class. Attributes are
    read from ``__dict__``, so properties are never evaluated.
    """

    def named_parameters(self, prefix: str = "") -> Iterator[tuple[str, Param]]:
        """``(dotted_name, param)`` pairs; a parameter held twice is yielded once."""
        seen: set[int] = set()
        for name, found in _walk(self, prefix, set()):
            if id(found) not in seen:
                seen.add(id(found))
                yield name, found

    def parameters(self) -> Iterator[Param]:
        """Every parameter once, in ``named_parameters`` order."""
        for _, found in self.named_parameters():
            yield found

    def state_dict(self) -> dict[str, Any]:
        """Parameter values by dotted name, as JSON data."""
        return {name: p.to_json() for name, p in self.named_parameters()}

    def load_state_dict(self, state: Mapping[str, Any], *, strict: bool = True) -> None:
        """Check every name and value, then assign them all (nothing changes on error)."""
        params = dict(self.named_parameters())
        for name, value in check_values(params, state, strict=strict).items():
            params[name].assign(value)

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write values as JSON at ``path`` (tensors beside it, in safetensors); atomic."""
        save_params(path, dict(self.named_parameters()))

    def load(self, path: str | os.PathLike[str], *, strict: bool = True) -> None:
        """Load what ``save`` wrote, checking every value before assigning any."""
        self.load_state_dict(read_params(path), strict=strict)


def _walk(obj: Any, prefix: str, visiting: set[int]) -> Iterator[tuple[str, Param]]:
    if isinstance(obj, Param):
        yield prefix, obj
        return
    if isinstance(obj, TracedFunction):
        if obj.code is not None:
            yield _join(prefix, "code"), obj.code
        return
    if id(obj) in visiting:
        return
    if isinstance(obj, Module):
        visiting.add(id(obj))
        for cls in reversed(type(obj).__mro__):
            for name, value in vars(cls).items():
                if isinstance(value, TracedFunction) and name not in vars(obj):
                    yield from _walk(value, _join(prefix, name), visiting)
        for name, value in vars(obj).items():
            yield from _walk(value, _join(prefix, name), visiting)
        visiting.discard(id(obj))
    elif isinstance(obj, (list, tuple)):
        visiting.add(id(obj))
        for index, value in enumerate(obj):
            yield from _walk(value, _join(prefix, str(index)), visiting)
        visiting.discard(id(obj))
    elif isinstance(obj, dict):
        visiting.add(id(obj))
        for key, value in obj.items():
            yield from _walk(value, _join(prefix, str(key)), visiting)
        visiting.discard(id(obj))


def _join(prefix: str, name: str) -> str:
    return f"{prefix}.{name}" if prefix else name
