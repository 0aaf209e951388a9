"""Tensors inside optimizer state, written as JSON data and read back exactly."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from graphopt.graph.kinds import TENSOR, is_tensor

if TYPE_CHECKING:  # a tensor to encode means torch is loaded; this module does not load it
    import torch

_TAG = "__tensor__"


def encode(value: Any) -> Any:
    """``value`` with every tensor (at any depth) replaced by a tagged JSON form."""
    if is_tensor(value):
        return {_TAG: TENSOR.to_json(value)}
    if isinstance(value, dict):
        return {str(k): encode(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [encode(v) for v in value]
    return value


def decode(value: Any, device: torch.device | None = None) -> Any:
    """Undo ``encode``; tensors go to ``device`` when given."""
    if isinstance(value, dict):
        if set(value) == {_TAG}:
            tensor = TENSOR.from_json(value[_TAG])
            return tensor.to(device) if device is not None else tensor
        return {k: decode(v, device) for k, v in value.items()}
    if isinstance(value, list):
        return [decode(v, device) for v in value]
    return value
