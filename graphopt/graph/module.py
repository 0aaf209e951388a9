"""``Module``: a workflow class whose parameters and trainable ops are found by walking it."""

from __future__ import annotations

import os
from typing import Any, Iterator, Literal, Mapping

from graphopt.graph.node import Param
from graphopt.graph.op import TracedFunction
from graphopt.graph.serialize import check_values, read_values, save_params


class Module:
    """Base class for workflows holding parameters, as ``torch.nn.Module`` holds tensors.

    Parameters and trainable ops are found in instance attributes (also inside lists, tuples,
    dicts and nested modules) and in ``@op(trainable=True)`` methods of the class. Attributes are
    read from ``__dict__``, so properties are never evaluated. Calling a module calls its
    ``forward``.

    A parameter's name is its dotted attribute path (``router.prompt``), as
    ``named_parameters()`` builds it: the module writes that name into the ``Param`` when the
    attribute is set and again on every walk, so ``module``, ``list(module.parameters())`` and
    the param itself carry one name in optimizers, state dicts, checkpoints and reports. A param
    reached from two modules keeps the name of the last walk that reached it.
    """

    def __setattr__(self, name: str, value: Any) -> None:
        object.__setattr__(self, name, value)
        if isinstance(value, (Param, TracedFunction, Module, list, tuple, dict)):
            for qualified, found in _unique(_walk(value, name, {id(self)})):
                found.name = qualified

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        """Run ``forward`` (as ``torch.nn.Module`` and DSPy modules do)."""
        return self.forward(*args, **kwargs)

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        """The workflow itself; subclasses define it."""
        raise NotImplementedError(f"module {type(self).__name__} defines no forward(); define "
                                  f"forward(self, ...) to make it callable")

    def named_parameters(self, prefix: str = "") -> Iterator[tuple[str, Param]]:
        """``(dotted_name, param)`` pairs; a parameter held twice is yielded once, first name."""
        for name, found in _unique(_walk(self, prefix, set())):
            found.name = name
            yield name, found

    def parameters(self) -> Iterator[Param]:
        """Every parameter once, in ``named_parameters`` order, each carrying its dotted name."""
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

    def load(self, path: str | os.PathLike[str], *, strict: bool = True,
             values: Literal["best", "last"] = "best") -> None:
        """Load what ``save`` or ``graphopt export`` wrote, or a run's checkpoint.

        From a checkpoint ``values="best"`` takes the best validated values (the last ones when
        the run never validated), ``"last"`` the values at its last step. Every value is checked
        before any is assigned.
        """
        self.load_state_dict(read_values(path, values=values), strict=strict)


def _unique(pairs: Iterator[tuple[str, Param]]) -> Iterator[tuple[str, Param]]:
    seen: set[int] = set()
    for name, found in pairs:
        if id(found) not in seen:
            seen.add(id(found))
            yield name, found


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
