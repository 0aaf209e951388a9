"""Graph nodes: ``Node``, ``Param``, ``Message``, ``Error``, and the primitive that records a call.

A node keeps its value, its parents (a tuple in argument order), the op that made it and an
integer id. Nothing else is stored: the graph is whatever an output reaches, as in autograd.
"""

from __future__ import annotations

import itertools
import operator
import sys
import traceback as traceback_module
from typing import Any, Callable, Iterator

import graphopt  # attribute access at call time only: Node.backward delegates to graphopt.feedback
from graphopt.errors import BudgetExceeded, ParamValidationError
from graphopt.graph import context, pacing
from graphopt.graph.kinds import KIND_OF_TYPE, ParamKind, infer_kind
from graphopt.graph.space import Space

_next_id = itertools.count(1).__next__
_new = object.__new__
_PACE_MASK = pacing.PACE_MASK
_current = context.current


class Op:
    """What produced a ``Message``: a name, the function, its documentation."""

    __slots__ = ("name", "function", "doc")

    def __init__(self, name: str, function: Callable[..., Any], doc: str = "") -> None:
        self.name = name
        self.function = function
        self.doc = doc

    def __repr__(self) -> str:
        return f"<op {self.name}>"


class Node:
    """A traced value and the nodes it was computed from.

    Operators on a node (``+``, ``<``, ``[]``, attribute access, calls, iteration) are ops and
    return new nodes. ``bool``, ``len``, ``str``, ``format``, ``int``, ``float`` and ``in`` must
    return plain Python values by language rule: they read the raw value and are not traced (use
    ``go.ops.len``/``go.ops.str``/``go.ops.format`` for traced versions). Equality of nodes as
    dictionary keys is identity; ``a == b`` is an op yielding a node.
    """

    __slots__ = ("value", "parents", "op", "id", "name", "__weakref__")

    def __init__(self, value: Any, *, name: str | None = None,
                 parents: tuple[Node, ...] = (), op: Op | None = None) -> None:
        self.value = value
        self.parents = parents
        self.op = op
        self.id = node_id = _next_id()
        self.name = name
        if not node_id & _PACE_MASK:
            pacing.grown(self)

    @property
    def label(self) -> str:
        """The user's name, else ``op:id`` (or ``node:id`` for a leaf)."""
        if self.name is not None:
            return self.name
        return f"{self.op.name if self.op is not None else 'node'}:{self.id}"

    def backward(self, feedback: Any = None, **options: Any) -> None:
        """Send ``feedback`` from this node to the parameters it depends on (``go.backward``)."""
        graphopt.feedback.backward(self, feedback, **options)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.label}, value={_short(self.value)})"

    __hash__ = object.__hash__

    # Python requires these to return plain values; they read the raw value and are not traced.
    def __bool__(self) -> bool:
        return bool(self.value)

    def __len__(self) -> int:
        return len(self.value)

    def __str__(self) -> str:
        return str(self.value)

    def __format__(self, spec: str) -> str:
        return format(self.value, spec)

    def __int__(self) -> int:
        return int(self.value)

    def __float__(self) -> float:
        return float(self.value)

    def __index__(self) -> int:
        return operator.index(self.value)

    def __contains__(self, item: Any) -> bool:
        return _raw(item) in self.value

    # Traced operators.
    def __getattr__(self, name: str) -> Node:
        # Private and dunder names are protocol probes (copy, pickle, numpy), not value attributes.
        if name.startswith("_"):
            raise AttributeError(name)
        try:
            return binary(GETATTR, self, name)
        except _MissingAttribute as err:
            raise AttributeError(f"{self.label}: value of type {type(self.value).__name__} has no "
                                 f"attribute {name!r}") from err.__cause__

    def __getitem__(self, key: Any) -> Node:
        return binary(GETITEM, self, key)

    def __call__(self, *args: Any, **kwargs: Any) -> Node:
        names = ("function", *(f"arg{i}" for i in range(len(args))), *kwargs)
        return call(CALL, _call_value, (self, *args, *kwargs.values()), names,
                    n_positional=1 + len(args))

    def __iter__(self) -> Iterator[Any]:
        value = self.value
        state = context.current()
        items = value if hasattr(value, "__getitem__") and hasattr(value, "__len__") else list(value)
        for index in range(len(items)):
            if not state.enabled:
                yield items[index]
            elif type(self) is Error:
                yield binary(GETITEM, self, index)
            else:
                yield _record(state, ITEM, items[index], (self,), ("sequence",), {"index": index})

    def __neg__(self) -> Node:
        return unary(NEG, self)

    def __pos__(self) -> Node:
        return unary(POS, self)

    def __abs__(self) -> Node:
        return unary(ABS, self)

    def __invert__(self) -> Node:
        return unary(INVERT, self)


class Param(Node):
    """A trainable value: text, code, a number in a space, a tensor, or any JSON value."""

    __slots__ = ("kind", "trainable", "description", "feedback")

    def __init__(self, value: Any, *, name: str | None = None, space: Space | None = None,
                 kind: ParamKind | None = None, trainable: bool = True,
                 description: str = "") -> None:
        self._setup(value, name, space, kind, trainable, description)

    def _setup(self, value: Any, name: str | None, space: Space | None, kind: ParamKind | None,
               trainable: bool, description: str) -> None:
        """``__init__`` with positional arguments: ``param()`` calls it on a bare instance, since
        keywords through a class call cost about as much as the rest of the work."""
        # Node.__init__ inlined: a leaf parameter costs about what an op's node costs.
        self.value = value
        self.parents = ()
        self.op = None
        self.id = node_id = _next_id()
        self.name = name
        self.trainable = trainable
        self.description = description
        self.feedback: list[Any] = []
        if kind is None:
            # Text and plain numbers by their exact type, without a call: params come by the million.
            kind = KIND_OF_TYPE.get(type(value)) if space is None else None
            if kind is None:
                try:
                    kind = infer_kind(value, space)
                except ValueError as err:
                    raise ParamValidationError(f"param {name!r}: {err}", param=self, value=space) from err
        self.kind = kind
        try:  # self.validate(value), inlined; the starting value is its own current value
            self.value = kind.validate(value, value)
        except ValueError as err:
            raise ParamValidationError(f"param {self.label!r} {err}", param=self, value=value) from err
        if not node_id & _PACE_MASK:
            pacing.grown(self)

    @property
    def space(self) -> Space | None:
        """The hyperparameter space (``Int``, ``Float``, ``Choice``), if the kind has one."""
        return getattr(self.kind, "space", None)

    def validate(self, value: Any) -> Any:
        """``value`` normalized to this parameter's kind; ``ParamValidationError`` if it does not fit."""
        try:
            return self.kind.validate(value, getattr(self, "value", None))
        except ValueError as err:
            raise ParamValidationError(f"param {self.label!r} {err}", param=self, value=value) from err

    def assign(self, value: Any) -> None:
        """Validate, then set ``value``; tensors are copied in place so references stay valid."""
        value = self.validate(value)
        if self.kind.name == "tensor" and value is not self.value:
            with sys.modules["torch"].no_grad():  # a tensor exists, so torch is loaded
                self.value.copy_(value)
        else:
            self.value = value

    def to_json(self) -> Any:
        """The value in JSON form (tensors as nested lists)."""
        return self.kind.to_json(self.value)

    def __repr__(self) -> str:
        return f"Param({self.label!r}, {self.kind.describe()}, value={_short(self.value)})"


class Message(Node):
    """The output of an op: parents by argument name, plus constants and op-specific info."""

    __slots__ = ("arg_names", "constants", "info")

    def __init__(self, value: Any, parents: tuple[Node, ...], op: Op, arg_names: tuple[str, ...],
                 constants: dict[str, Any] | None = None, info: dict[str, Any] | None = None) -> None:
        self.value = value
        self.parents = parents
        self.op = op
        self.id = node_id = _next_id()
        self.name = None
        self.arg_names = arg_names
        self.constants = constants
        self.info = info
        if not node_id & _PACE_MASK:
            pacing.grown(self)

    @property
    def inputs(self) -> dict[str, Node]:
        """Parent nodes by argument name."""
        return dict(zip(self.arg_names, self.parents))


class Error(Message):
    """An exception raised inside an op (or a candidate's code); its value is the exception."""

    __slots__ = ("traceback",)

    def __init__(self, exception: BaseException, parents: tuple[Node, ...], op: Op,
                 arg_names: tuple[str, ...], constants: dict[str, Any] | None = None) -> None:
        super().__init__(exception, parents, op, arg_names, constants)
        self.traceback = "".join(traceback_module.format_exception(exception)).rstrip()

    @property
    def exception(self) -> BaseException:
        return self.value

    def reraise(self) -> None:
        """Raise the captured exception again."""
        raise self.value

    def __repr__(self) -> str:
        return f"Error({self.label}, {type(self.value).__name__}: {self.value})"


class _MissingAttribute(Exception):
    pass


def _raw(value: Any) -> Any:
    return value.value if isinstance(value, Node) else value


def _short(value: Any, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _getattr(value: Any, name: str) -> Any:
    try:
        return getattr(value, name)
    except AttributeError as err:
        raise _MissingAttribute() from err


def _call_value(function: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    result = function(*args, **kwargs)
    # A traced op picked at run time (``go.ops.lookup(TOOLS, route)(question)``) returns a node:
    # this call's node holds its value, never a node inside a node.
    return result.value if isinstance(result, Node) else result


def _record(state: context.TraceState, op: Op, value: Any, parents: tuple[Node, ...],
            arg_names: tuple[str, ...], constants: dict[str, Any] | None) -> Message:
    node = Message(value, parents, op, arg_names, constants)
    if state.frame is not None:
        state.frame.append(node)
    return node


def _error(state: context.TraceState, op: Op, exception: BaseException, parents: tuple[Node, ...],
           arg_names: tuple[str, ...], constants: dict[str, Any] | None) -> Error:
    node = Error(exception, parents, op, arg_names, constants)
    if state.frame is not None:
        state.frame.append(node)
    return node


def _upstream_error(parents: tuple[Node, ...]) -> BaseException | None:
    for parent in parents:
        if type(parent) is Error:
            return parent.value
    return None


_OPERAND = ("operand",)
_LEFT_RIGHT = ("left", "right")
_LEFT = ("left",)
_RIGHT = ("right",)


def unary(op: Op, operand: Node) -> Any:
    """Apply a one-argument op to a node."""
    state = _current()
    if not state.enabled:
        return op.function(operand.value)
    parents = (operand,)
    if type(operand) is Error:
        return _error(state, op, operand.value, parents, _OPERAND, None)
    try:
        value = op.function(operand.value)
    except Exception as exc:
        return _error(state, op, exc, parents, _OPERAND, None)
    node = Message(value, parents, op, _OPERAND)
    if state.frame is not None:
        state.frame.append(node)
    return node


def binary(op: Op, left: Any, right: Any) -> Any:
    """Apply a two-argument op; either side may be a node or a constant."""
    # The hot path of operator tracing: one Message and its parents tuple are the only objects
    # made per call when both sides are nodes (a constant adds its one-entry dict).
    state = _current()
    if isinstance(left, Node):
        if isinstance(right, Node):
            if not state.enabled:
                return op.function(left.value, right.value)
            parents, names, constants = (left, right), _LEFT_RIGHT, None
            failed = type(left) is Error or type(right) is Error
            lv, rv = left.value, right.value
        else:
            if not state.enabled:
                return op.function(left.value, right)
            parents, names, constants = (left,), _LEFT, {"right": right}
            failed = type(left) is Error
            lv, rv = left.value, right
    else:
        if not state.enabled:
            return op.function(left, right.value)
        parents, names, constants = (right,), _RIGHT, {"left": left}
        failed = type(right) is Error
        lv, rv = left, right.value
    if failed:
        return _error(state, op, _upstream_error(parents), parents, names, constants)
    try:
        value = op.function(lv, rv)
    except _MissingAttribute:
        raise
    except Exception as exc:
        return _error(state, op, exc, parents, names, constants)
    node = Message(value, parents, op, names, constants)
    if state.frame is not None:
        state.frame.append(node)
    return node


def call(op: Op, function: Callable[..., Any], args: tuple[Any, ...], arg_names: tuple[str, ...],
         *, n_positional: int, info: dict[str, Any] | None = None) -> Any:
    """Run ``function`` on the raw values of ``args`` and record the result as a ``Message``.

    ``args`` holds the positional arguments, then the keyword arguments, named by ``arg_names``.
    An exception becomes an ``Error`` node; an ``Error`` among the inputs is passed on unrun.
    """
    state = context.current()
    raw = [a.value if isinstance(a, Node) else a for a in args]
    if not state.enabled:
        return function(*raw[:n_positional], **dict(zip(arg_names[n_positional:], raw[n_positional:])))
    parents, names, constants = split_inputs(args, arg_names)
    upstream = _upstream_error(parents)
    if upstream is not None:
        return _error(state, op, upstream, parents, names, constants)
    try:
        value = function(*raw[:n_positional], **dict(zip(arg_names[n_positional:], raw[n_positional:])))
    except BudgetExceeded:
        raise  # a budget stops the run; it is not a failure of this call
    except Exception as exc:
        return _error(state, op, exc, parents, names, constants)
    node = _record(state, op, value, parents, names, constants)
    node.info = info
    return node


def split_inputs(args: tuple[Any, ...], arg_names: tuple[str, ...]
                 ) -> tuple[tuple[Node, ...], tuple[str, ...], dict[str, Any] | None]:
    """Separate node arguments (parents, with their names) from constant ones."""
    parents: list[Node] = []
    names: list[str] = []
    constants: dict[str, Any] | None = None
    for name, arg in zip(arg_names, args):
        if isinstance(arg, Node):
            parents.append(arg)
            names.append(name)
        else:
            if constants is None:
                constants = {}
            constants[name] = arg
    return tuple(parents), tuple(names), constants


def _binary_dunder(op: Op, reflected: bool = False) -> Callable[[Node, Any], Any]:
    if reflected:
        def method(self: Node, other: Any) -> Any:
            return binary(op, other, self)
    else:
        def method(self: Node, other: Any) -> Any:
            return binary(op, self, other)
    method.__name__ = f"__{'r' if reflected else ''}{op.name}__"
    return method


def _op(name: str, function: Callable[..., Any]) -> Op:
    return Op(name, function, f"Python operator {name}")


GETATTR = _op("getattr", _getattr)
GETITEM = _op("getitem", operator.getitem)
CALL = _op("call", _call_value)
ITEM = Op("iter", operator.getitem, "The item at `index` of an iterated sequence.")
NEG, POS, ABS, INVERT = (_op(n, f) for n, f in (("neg", operator.neg), ("pos", operator.pos),
                                                ("abs", operator.abs), ("invert", operator.invert)))

_ARITHMETIC = {
    "add": operator.add, "sub": operator.sub, "mul": operator.mul, "truediv": operator.truediv,
    "floordiv": operator.floordiv, "mod": operator.mod, "pow": operator.pow,
    "matmul": operator.matmul, "and": operator.and_, "or": operator.or_, "xor": operator.xor,
    "lshift": operator.lshift, "rshift": operator.rshift,
}
_COMPARISONS = {"lt": operator.lt, "le": operator.le, "eq": operator.eq, "ne": operator.ne,
                "gt": operator.gt, "ge": operator.ge}
OPERATORS: dict[str, Op] = {name: _op(name, fn) for name, fn in {**_ARITHMETIC, **_COMPARISONS}.items()}

for _name in _ARITHMETIC:
    setattr(Node, f"__{_name}__", _binary_dunder(OPERATORS[_name]))
    setattr(Node, f"__r{_name}__", _binary_dunder(OPERATORS[_name], reflected=True))
for _name in _COMPARISONS:
    setattr(Node, f"__{_name}__", _binary_dunder(OPERATORS[_name]))
Node.__hash__ = object.__hash__  # defining __eq__ above would otherwise unset it


def param(value: Any, *, name: str | None = None, space: Space | None = None,
          trainable: bool = True, description: str = "", kind: ParamKind | None = None) -> Param:
    """A parameter: text, code, a number (in ``space`` if given), a tensor or a JSON value.

    The kind is read off the value (``str`` → text, tensor → tensor, ``space`` → int/float/choice)
    unless ``kind`` is given. ``name`` is how optimizers, checkpoints and prompts refer to it.
    """
    node = _new(Param)
    node._setup(value, name, space, kind, trainable, description)
    return node
