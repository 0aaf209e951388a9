"""Traced helpers for what Python will not let an operator trace, and common losses.

``len(node)``, ``str(node)`` and ``format(node)`` must return plain values; ``go.ops.len``,
``go.ops.str`` and ``go.ops.format`` are their traced twins. Nodes hash by identity, so
``mapping[node]`` looks the node itself up, not its value: ``go.ops.lookup(mapping, node)`` is
the traced lookup by value.
"""

from __future__ import annotations

import builtins
import importlib
import sys
from typing import TYPE_CHECKING, Any, Iterable, Sized

from graphopt.graph.op import op

if TYPE_CHECKING:
    import torch


def _functional() -> Any:
    # torch is imported by whoever made the tensors; looked up at call time (sys.modules first:
    # a dictionary read, where import_module costs a microsecond) so ``import graphopt`` skips it.
    return sys.modules.get("torch.nn.functional") or importlib.import_module("torch.nn.functional")


def _length(value: Sized) -> int:
    """Number of items in `value`."""
    return builtins.len(value)


def _text(value: Any) -> builtins.str:
    """`value` converted to text with str()."""
    return builtins.str(value)


def _format(template: builtins.str, /, *args: Any, **kwargs: Any) -> builtins.str:
    """`template.format(*args, **kwargs)`."""
    return template.format(*args, **kwargs)


def _join(separator: builtins.str, items: Iterable[Any]) -> builtins.str:
    """The items converted to text and joined with `separator`."""
    return separator.join(builtins.str(item) for item in items)


def _lookup(mapping: Any, key: Any) -> Any:
    """``mapping[key]``; a missing key names the ones there are."""
    try:
        return mapping[key]
    except KeyError:
        known = ", ".join(builtins.repr(k) for k in list(mapping)[:20])
        raise KeyError(f"{key!r} is not a key; the keys are: {known}") from None


def _mse(prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean squared error between `prediction` and `target`."""
    return _functional().mse_loss(prediction, target)


def _cross_entropy(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Cross-entropy of `logits` against class indices `target`."""
    return _functional().cross_entropy(logits, target)


len = op(name="len")(_length)
str = op(name="str")(_text)
format = op(name="format")(_format)
join = op(name="join")(_join)
lookup = op(name="lookup")(_lookup)
mse = op(name="mse")(_mse)
cross_entropy = op(name="cross_entropy")(_cross_entropy)

__all__ = ["len", "str", "format", "join", "lookup", "mse", "cross_entropy"]
