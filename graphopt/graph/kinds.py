"""Parameter kinds: how a parameter's value is validated, described and serialized.

Optimizers declare the kind names they accept (``"text"``, ``"code"``, ``"int"``, ``"float"``,
``"choice"``, ``"tensor"``, ``"object"``); the registry compares those names.
"""

from __future__ import annotations

import ast
import importlib
import json
import math
import sys
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch

from graphopt.graph.space import Choice, Float, Int, Space

DEFAULT_MAX_CHARS = 20_000
"""The longest text or code value a parameter accepts unless its kind says otherwise (or its
own starting value is longer): a 5 MB suggestion is refused, not assigned."""


class ParamKind:
    """How values of one kind of parameter are checked and written down."""

    name: str = ""

    def validate(self, value: Any, current: Any) -> Any:
        """Return ``value`` normalized, or raise ``ValueError`` saying what was expected."""
        raise NotImplementedError

    def describe(self) -> str:
        """One line for prompts and errors, e.g. ``int in Int(1, 10)``."""
        return self.name

    def to_json(self, value: Any) -> Any:
        """A JSON-serializable form of ``value``."""
        return value

    def from_json(self, data: Any) -> Any:
        """The value ``to_json`` wrote."""
        return data

    def __repr__(self) -> str:
        return f"<kind {self.describe()}>"


def check_length(value: str, max_chars: int, current: Any) -> str:
    """``value`` unless it is longer than ``max_chars`` and than ``current`` (the value it replaces)."""
    limit = max(max_chars, len(current) if isinstance(current, str) else 0)
    if len(value) > limit:
        raise ValueError(f"expects at most {limit:,} characters, got {len(value):,}")
    return value


class TextKind(ParamKind):
    """Free text: prompts, instructions, templates, at most ``max_chars`` long."""

    name = "text"

    def __init__(self, max_chars: int = DEFAULT_MAX_CHARS) -> None:
        self.max_chars = max_chars

    def validate(self, value: Any, current: Any) -> str:
        if not isinstance(value, str):
            raise ValueError(f"expects text (str), got {type(value).__name__}")
        if len(value) <= self.max_chars:
            return value
        return check_length(value, self.max_chars, current)


class CodeKind(ParamKind):
    """Python source of one function whose name and parameters must stay the same."""

    name = "code"

    def __init__(self, function_name: str, arg_names: tuple[str, ...], is_async: bool = False,
                 *, max_chars: int = DEFAULT_MAX_CHARS) -> None:
        self.function_name = function_name
        self.arg_names = arg_names
        self.is_async = is_async
        self.max_chars = max_chars

    def describe(self) -> str:
        prefix = "async def" if self.is_async else "def"
        return f"code: {prefix} {self.function_name}({', '.join(self.arg_names)})"

    def validate(self, value: Any, current: Any) -> str:
        if not isinstance(value, str):
            raise ValueError(f"expects Python source (str), got {type(value).__name__}")
        check_length(value, self.max_chars, current)
        try:
            tree = ast.parse(value)
            compile(tree, f"<candidate {self.function_name}>", "exec")
        except SyntaxError as err:
            raise ValueError(f"source does not compile: {err.msg} (line {err.lineno})") from err
        found = [n for n in tree.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))
                 and n.name == self.function_name]
        if not found:
            raise ValueError(f"source must define function {self.function_name!r} at top level")
        args = found[-1].args
        names = tuple(a.arg for a in (*args.posonlyargs, *args.args, *args.kwonlyargs))
        if args.vararg:
            names += ("*" + args.vararg.arg,)
        if args.kwarg:
            names += ("**" + args.kwarg.arg,)
        if names != self.arg_names:
            raise ValueError(f"signature must stay {self.function_name}({', '.join(self.arg_names)}), "
                             f"got {self.function_name}({', '.join(names)})")
        if isinstance(found[-1], ast.AsyncFunctionDef) != self.is_async:
            raise ValueError(f"{self.function_name!r} must {'' if self.is_async else 'not '}be async")
        return value


class SpaceKind(ParamKind):
    """A hyperparameter within an ``Int``, ``Float`` or ``Choice`` space."""

    def __init__(self, space: Space) -> None:
        self.space = space
        self.name = space.kind

    def describe(self) -> str:
        return f"{self.name} in {self.space!r}"

    def validate(self, value: Any, current: Any) -> Any:
        return self.space.validate(value)


_INFINITIES = (math.inf, -math.inf)


class NumberKind(ParamKind):
    """An unbounded ``int`` or ``float`` (give a space to bound it)."""

    def __init__(self, number_type: type) -> None:
        self.number_type = number_type
        self.name = number_type.__name__

    def validate(self, value: Any, current: Any) -> Any:
        if type(value) is self.number_type and (value == value and value not in _INFINITIES):
            return value  # the common case first: parameters are made by the thousand
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ValueError(f"expects a number ({self.name}), got {type(value).__name__}")
        if self.number_type is int:
            if isinstance(value, float) and not value.is_integer():
                raise ValueError(f"expects an int, got {value!r}")
            return int(value)
        if math.isnan(value) or math.isinf(value):
            raise ValueError(f"expects a finite float, got {value!r}")
        return float(value)


class TensorKind(ParamKind):
    """A torch tensor whose shape and dtype stay fixed; values are updated in place."""

    name = "tensor"

    def describe(self) -> str:
        return "tensor"

    def validate(self, value: Any, current: Any) -> torch.Tensor:
        if not is_tensor(value):
            raise ValueError(f"expects a torch.Tensor, got {type(value).__name__}")
        if is_tensor(current):
            if value.shape != current.shape or value.dtype != current.dtype:
                raise ValueError(f"expects a tensor of shape {tuple(current.shape)} and dtype "
                                 f"{current.dtype}, got shape {tuple(value.shape)}, dtype {value.dtype}")
        return value

    def to_json(self, value: torch.Tensor) -> dict[str, Any]:
        return {"dtype": str(value.dtype).removeprefix("torch."), "shape": list(value.shape),
                "data": value.detach().cpu().tolist()}

    def from_json(self, data: Any) -> torch.Tensor:
        torch = importlib.import_module("torch")
        return torch.tensor(data["data"], dtype=getattr(torch, data["dtype"])).reshape(data["shape"])


class ObjectKind(ParamKind):
    """Any JSON-serializable value (lists, dicts, few-shot examples)."""

    name = "object"

    def validate(self, value: Any, current: Any) -> Any:
        try:
            text = json.dumps(value, allow_nan=False)
        except (TypeError, ValueError) as err:
            raise ValueError(f"expects a JSON-serializable value, got {type(value).__name__}: {err}") from err
        # Checkpoints store JSON: tuples, non-str keys and the like would come back changed.
        if json.loads(text) != value or not _json_exact(value):
            raise ValueError(f"expects a value that JSON keeps as is (lists, str-keyed dicts, finite "
                             f"numbers), got {text[:80]}")
        return value


def _json_exact(value: Any) -> bool:
    """Whether ``value`` holds only types JSON reads back as themselves (no tuples, no int keys)."""
    if isinstance(value, dict):
        return all(isinstance(k, str) and _json_exact(v) for k, v in value.items())
    if isinstance(value, list):
        return all(_json_exact(v) for v in value)
    return value is None or isinstance(value, (str, int, float, bool))


def is_tensor(value: Any) -> bool:
    """Whether ``value`` is a torch tensor, without importing torch: a tensor exists only once
    something imported it, so ``import graphopt`` stays light."""
    torch = sys.modules.get("torch")
    return torch is not None and isinstance(value, torch.Tensor)


TEXT = TextKind()
TENSOR = TensorKind()
OBJECT = ObjectKind()
INT = NumberKind(int)
FLOAT = NumberKind(float)
KIND_OF_TYPE: dict[type, ParamKind] = {str: TEXT, int: INT, float: FLOAT}
"""The kind ``infer_kind`` gives a value of exactly one of these types (no space given)."""


def infer_kind(value: Any, space: Space | None) -> ParamKind:
    """The kind ``go.param`` gives ``value``: its space's, else one read off its type."""
    if space is not None:
        if not isinstance(space, Space):
            raise ValueError(f"space must be Int, Float or Choice, got {space!r}")
        return SpaceKind(space)
    if is_tensor(value):
        return TENSOR
    if isinstance(value, str):
        return TEXT
    if isinstance(value, bool):
        return SpaceKind(Choice([False, True]))
    if isinstance(value, int):
        return INT
    if isinstance(value, float):
        return FLOAT
    return OBJECT


__all__ = ["DEFAULT_MAX_CHARS", "ParamKind", "TextKind", "CodeKind", "SpaceKind", "NumberKind", "TensorKind",
           "ObjectKind", "infer_kind", "Int", "Float", "Choice"]
