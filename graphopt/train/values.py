"""Parameter values as data: a content hash of all of them, snapshots, and restoring snapshots."""

from __future__ import annotations

import hashlib
import json
from typing import Any, Mapping

import torch

from graphopt.graph.node import Param
from graphopt.graph.serialize import check_values


def values_hash(params: Mapping[str, Param]) -> str:
    """sha256 over every parameter's name, kind and value (tensors by their bytes), in name order."""
    digest = hashlib.sha256()
    for name in sorted(params):
        target = params[name]
        digest.update(f"{name}\0{target.kind.name}\0".encode())
        value = target.value
        if isinstance(value, torch.Tensor):
            tensor = value.detach().cpu().contiguous()
            digest.update(f"{tensor.dtype}{tuple(tensor.shape)}".encode())
            digest.update(tensor.view(torch.uint8).numpy().tobytes() if tensor.numel() else b"")
        else:
            digest.update(json.dumps(target.to_json(), sort_keys=True).encode())
        digest.update(b"\1")
    return digest.hexdigest()[:24]


def snapshot(params: Mapping[str, Param]) -> dict[str, Any]:
    """Every value as JSON data, by name."""
    return {name: target.to_json() for name, target in params.items()}


def restore(params: Mapping[str, Param], values: Mapping[str, Any]) -> None:
    """Check every value of a ``snapshot``, then assign them all (nothing changes on error)."""
    for name, value in check_values(params, values).items():
        params[name].assign(value)
