"""Atomic files and parameter-value serialization (JSON, with tensors in safetensors)."""

from __future__ import annotations

import importlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any, Mapping

from graphopt.errors import ParamValidationError
from graphopt.graph.kinds import is_tensor
from graphopt.graph.node import Param

FORMAT = "graphopt.params/1"
CHECKPOINT_FORMAT = "graphopt.checkpoint/1"  # written by graphopt.train; read here for its values


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file and a rename: all or nothing."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_json(path: str | os.PathLike[str], data: Any) -> None:
    """``json.dumps(data)`` written atomically."""
    atomic_write_bytes(path, json.dumps(data, indent=1, sort_keys=True).encode())


def check_values(params: Mapping[str, Param], values: Mapping[str, Any], *, strict: bool = True
                 ) -> dict[str, Any]:
    """Validate every value against its parameter before anything is assigned.

    Returns the validated values by name; raises ``ParamValidationError`` naming every problem.
    """
    problems: list[str] = []
    if strict:
        missing = [n for n in params if n not in values]
        unknown = [n for n in values if n not in params]
        if missing:
            problems.append(f"missing params: {', '.join(missing)}")
        if unknown:
            problems.append(f"unknown params: {', '.join(unknown)}")
    checked: dict[str, Any] = {}
    for name, value in values.items():
        target = params.get(name)
        if target is None:
            continue
        try:
            decoded = value if is_tensor(value) else target.kind.from_json(value)
            checked[name] = target.validate(decoded)
        except (ParamValidationError, ValueError, TypeError, KeyError) as err:
            problems.append(f"{name}: {err}")
    if problems:
        raise ParamValidationError("cannot load parameter values: " + "; ".join(problems))
    return checked


def save_params(path: str | os.PathLike[str], params: Mapping[str, Param]) -> None:
    """Write values to ``path`` (JSON) and tensors to ``path`` + ``.safetensors``; both atomic."""
    tensors = {n: p.value.detach().cpu().contiguous() for n, p in params.items() if p.kind.name == "tensor"}
    entries: dict[str, Any] = {}
    for name, target in params.items():
        entry: dict[str, Any] = {"kind": target.kind.name}
        if name in tensors:
            entry["tensor"] = name
        else:
            entry["value"] = target.to_json()
        entries[name] = entry
    if tensors:
        safetensors = importlib.import_module("safetensors.torch")  # only when there are tensors
        atomic_write_bytes(f"{os.fspath(path)}.safetensors", safetensors.save(tensors))
    atomic_write_json(path, {"format": FORMAT, "params": entries})


def write_values(path: str | os.PathLike[str], values: Mapping[str, Any],
                 kinds: Mapping[str, str]) -> None:
    """Write JSON values (tensors as nested lists) by name as a parameter file; atomic."""
    missing = [n for n in values if n not in kinds]
    if missing:
        raise ParamValidationError(f"no kind given for params: {', '.join(missing)}")
    atomic_write_json(path, {"format": FORMAT, "params": {
        name: {"kind": kinds[name], "value": value} for name, value in values.items()}})


def read_values(path: str | os.PathLike[str], *, values: str = "best") -> dict[str, Any]:
    """Values by name from a parameter file or a run's checkpoint.

    From a checkpoint, ``values="best"`` gives the best validated values (the last ones when
    there are none) and ``"last"`` the values at its last step.
    """
    if values not in ("best", "last"):
        raise ValueError(f"values expects 'best' or 'last', got {values!r}")
    data = _read_json(path)
    if data.get("format") != CHECKPOINT_FORMAT:
        return _entries(path, data)
    try:
        best = data.get("best")
        chosen = best["values"] if values == "best" and best is not None else data["params"]
        if not isinstance(chosen, dict):
            raise TypeError(f"expected an object of values, got {type(chosen).__name__}")
    except (KeyError, TypeError) as err:
        raise ParamValidationError(f"{os.fspath(path)}: a damaged checkpoint: {err}") from err
    return dict(chosen)


def read_params(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The values ``save_params`` wrote, by name (tensors as tensors)."""
    return _entries(path, _read_json(path))


def _read_json(path: str | os.PathLike[str]) -> dict[str, Any]:
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeError, ValueError) as err:
        raise ParamValidationError(f"{os.fspath(path)}: cannot read parameter values: {err}") from err
    if not isinstance(data, dict):
        raise ParamValidationError(f"{os.fspath(path)}: not a graphopt parameter file or checkpoint")
    return data


def _entries(path: str | os.PathLike[str], data: dict[str, Any]) -> dict[str, Any]:
    if data.get("format") != FORMAT:
        raise ParamValidationError(f"{os.fspath(path)}: not a graphopt parameter file "
                                   f"(format {data.get('format')!r}, expected {FORMAT!r} "
                                   f"or a {CHECKPOINT_FORMAT!r} checkpoint)")
    entries: dict[str, Any] = data["params"]
    tensor_file = Path(f"{os.fspath(path)}.safetensors")
    tensors: dict[str, Any] = {}
    if any("tensor" in e for e in entries.values()):
        tensors = importlib.import_module("safetensors.torch").load_file(tensor_file)
    return {name: tensors[e["tensor"]] if "tensor" in e else e["value"] for name, e in entries.items()}
