"""``@op``: functions, methods and coroutines whose calls become ``Message`` nodes.

With ``trainable=True`` the function's source is itself a code parameter (``fn.code``): the
current source is compiled once per content hash, and a candidate that fails to compile, raises
or runs past ``timeout`` yields an ``Error`` node instead of crashing the run. Any value other
than the function's own source runs in a sandboxed worker process (``sandbox="auto"``, see
``graphopt.runtime.sandbox``); the original runs in-process unless ``sandbox=True``.
"""

from __future__ import annotations

import ast
import contextvars
import functools
import hashlib
import inspect
import textwrap
import threading
from threading import get_ident
from typing import Any, Callable, TypeVar, overload

from graphopt.errors import BudgetExceeded, TraceError
from graphopt.graph import context
from graphopt.graph.spans import current_tracer
from graphopt.graph.kinds import CodeKind
from graphopt.graph.node import Error, Message, Node, Op, Param, _error, _record
from graphopt.runtime.sandbox.candidate import Candidate
from graphopt.runtime.sandbox.mode import Mode, check_mode, current_mode

F = TypeVar("F", bound=Callable[..., Any])

NESTED = "<nested>"
_NO_KEYWORDS: dict[str, Any] = {}  # shared, never written: calls without keywords unpack it

# Bound once: these run on every traced call.
_current, _owned, _enter, _leave = context.current, context.owned, context.enter, context.leave


class TracedFunction:
    """A function whose every call (while tracing) is recorded as a node."""

    # What every call reads lives in slots (read without a dict lookup); ``__dict__`` holds
    # the wrapped function's metadata (``functools.update_wrapper``) and the rest.
    __slots__ = ("function", "op", "code", "timeout", "is_async", "_direct", "_names", "__dict__",
                 "__weakref__")

    def __init__(self, function: Callable[..., Any], *, name: str | None = None,
                 trainable: bool = False, timeout: float | None = None,
                 sandbox: Mode | None = None) -> None:
        if not callable(function):
            raise TypeError(f"@op expects a function, got {type(function).__name__}")
        if sandbox is not None:
            check_mode(sandbox, f"@op option 'sandbox' of {getattr(function, '__qualname__', function)!r}")
            if not trainable:
                raise ValueError(f"@op option 'sandbox' applies to trainable ops; "
                                 f"{getattr(function, '__qualname__', function)!r} is not trainable")
        self.sandbox = sandbox
        functools.update_wrapper(self, function)
        self.function = function
        self.is_async = inspect.iscoroutinefunction(function)
        self.timeout = timeout
        try:
            signature = inspect.signature(function)
        except (TypeError, ValueError):  # builtins such as torch.matmul: arguments become arg0, arg1…
            signature = inspect.Signature([inspect.Parameter("arg", inspect.Parameter.VAR_POSITIONAL)])
        positional = [p for p in signature.parameters.values()
                      if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
        self.positional_names = tuple(p.name for p in positional)
        var = [p.name for p in signature.parameters.values() if p.kind is p.VAR_POSITIONAL]
        self.var_positional = var[0] if var else None
        # "outer.<locals>.inner" reads as "outer.inner" in prompts and renderings.
        name = name or getattr(function, "__qualname__", repr(function)).replace("<locals>.", "")
        self.op = Op(name, self, inspect.getdoc(function) or "")
        self.code: Param | None = None
        self._names: dict[int, tuple[str, ...]] = {}
        self._bound_names: dict[int, tuple[str, ...]] = {}
        self._compiled: dict[str, Callable[..., Any] | BaseException] = {}
        if trainable:
            source = function_source(function)
            self._original_source = source
            self.code = Param(source, name=f"{name}.code",
                              kind=CodeKind(function.__name__, _signature_names(signature), self.is_async),
                              description=f"source code of op {self.op.name!r}")
        # Calls with node arguments only go straight to ``_run`` when nothing else is involved.
        self._direct = not self.is_async and not trainable and timeout is None

    @property
    def trainable(self) -> bool:
        return self.code is not None

    def __repr__(self) -> str:
        kind = "trainable op" if self.code is not None else "op"
        return f"<{kind} {self.op.name}>"

    def __get__(self, instance: Any, owner: type | None = None) -> Any:
        if instance is None:
            return self
        return BoundTracedFunction(self, instance)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        state = _current()
        if kwargs or not self._direct or not state.enabled:
            return self.invoke(args, kwargs, None, False)
        # The common call, bound here: a plain function with positional arguments only.
        names = self._names.get(len(args)) or self._argument_names(len(args), False)
        values = []
        plain = True  # every argument a node, none an error: the arguments are the parents
        for arg in args:
            if isinstance(arg, Node):
                values.append(arg.value)
                if type(arg) is Error:
                    plain = False
            else:
                values.append(arg)
                plain = False
        if plain:
            parents, arg_names, constants = args, names, None
        else:
            call = self._split(state, self.function, values, _NO_KEYWORDS, args, names)
            if type(call) is Error:
                return call
            parents, arg_names, constants = call[3], call[4], call[5]
        # ``_run`` inlined for this call, its most frequent one (no keywords, no timeout).
        if state.owner != get_ident():
            state = _owned(state)
        outer = state.frame
        frame: list = []
        state.frame = frame
        failure: BaseException | None = None
        tracer = current_tracer()
        span = tracer.start("op", self.op.name, _NO_KEYWORDS) if tracer is not None else None
        try:
            value: Any = self.function(*values)
        except BudgetExceeded:
            raise
        except Exception as exc:
            value, failure = None, exc
        finally:
            state.frame = outer
            if span is not None:
                tracer.end(span, _NO_KEYWORDS, failure)  # type: ignore[union-attr]
        if failure is None and not frame and not isinstance(value, Node):
            node = Message(value, parents, self.op, arg_names, constants)
            if outer is not None:
                outer.append(node)
            return node
        return self._finish(state, value, failure, parents, arg_names, constants, frame)

    # -- one call ---------------------------------------------------------------------------
    def invoke(self, args: tuple[Any, ...], kwargs: dict[str, Any], instance: Any, bound: bool) -> Any:
        """Run one call; ``instance`` is a method's receiver, passed through but never traced."""
        state = _current()
        if not state.enabled:
            return self._run_raw(args, kwargs, instance, bound)
        if self.is_async:
            return self._ainvoke(state, args, kwargs, instance, bound)
        call = self._bind(state, args, kwargs, instance, bound)
        if type(call) is Error:
            return call
        return self._run(state, *call)

    def _run(self, state: context.TraceState, function: Callable[..., Any], positional: list[Any],
             keywords: dict[str, Any], parents: tuple[Node, ...], arg_names: tuple[str, ...],
             constants: dict[str, Any] | None) -> Node:
        """Call ``function`` with nodes made meanwhile (nested ops) collected in a fresh frame,
        and record the result as a ``Message`` (or an ``Error``)."""
        if state.owner != get_ident():
            state = _owned(state)
        outer = state.frame
        frame: list = []
        state.frame = frame  # swapped in place: this thread alone runs in this state until put back
        failure: BaseException | None = None
        tracer = current_tracer()  # None unless an observer asked for spans: then this is all we pay
        span = tracer.start("op", self.op.name, _NO_KEYWORDS) if tracer is not None else None
        try:
            if self.timeout is None or type(function) is Candidate:  # the sandbox kills on timeout
                value: Any = function(*positional, **keywords)
            else:
                value = _run_with_timeout(function, positional, keywords, self.timeout, self.op.name)
        except BudgetExceeded:
            raise  # a budget stops the run; it is not a failure of this op
        except Exception as exc:
            value, failure = None, exc
        finally:
            state.frame = outer
            if span is not None:
                tracer.end(span, _NO_KEYWORDS, failure)  # type: ignore[union-attr]
        if failure is None and not frame and not isinstance(value, Node):
            node = Message(value, parents, self.op, arg_names, constants)  # _record, inlined
            if outer is not None:
                outer.append(node)
            return node
        return self._finish(state, value, failure, parents, arg_names, constants, frame)

    async def _ainvoke(self, state: context.TraceState, args: tuple[Any, ...], kwargs: dict[str, Any],
                       instance: Any, bound: bool) -> Node:
        call = self._bind(state, args, kwargs, instance, bound)
        if type(call) is Error:
            return call
        function, positional, keywords, parents, arg_names, constants = call
        failure: BaseException | None = None
        frame: list = []
        tracer = current_tracer()
        span = tracer.start("op", self.op.name, _NO_KEYWORDS) if tracer is not None else None
        token = _enter(frame)
        try:
            value: Any = await function(*positional, **keywords)
        except BudgetExceeded:
            raise
        except Exception as exc:
            value, failure = None, exc
        finally:
            _leave(token)
            if span is not None:
                tracer.end(span, _NO_KEYWORDS, failure)  # type: ignore[union-attr]
        return self._finish(state, value, failure, parents, arg_names, constants, frame)

    def _bind(self, state: context.TraceState, args: tuple[Any, ...], kwargs: dict[str, Any],
              instance: Any, bound: bool) -> Any:
        """The function with the raw values to call it with, node parents with their argument
        names (a trainable op's code parameter first) and constants.

        Returns the ``Error`` node instead when an input is an error or the candidate is broken.
        """
        names = (self._bound_names if bound else self._names).get(len(args)) \
            or self._argument_names(len(args), bound)
        positional: list[Any] = []
        plain = True  # every argument a node, none an error: the arguments are the parents
        for arg in args:
            if isinstance(arg, Node):
                positional.append(arg.value)
                if type(arg) is Error:
                    plain = False
            else:
                positional.append(arg)
                plain = False
        if plain and not kwargs and self.code is None:
            if bound:
                positional.insert(0, instance)
            return self.function, positional, _NO_KEYWORDS, args, names, None
        keywords = _NO_KEYWORDS
        if kwargs:
            names = (*names, *kwargs)
            args = (*args, *kwargs.values())
            keywords = {k: v.value if isinstance(v, Node) else v for k, v in kwargs.items()}
        if bound:
            positional.insert(0, instance)
        function = self.function if self.code is None else self.implementation()
        return self._split(state, function, positional, keywords, args, names)

    def _split(self, state: context.TraceState, function: Callable[..., Any] | BaseException,
               positional: list[Any], keywords: dict[str, Any], args: tuple[Any, ...],
               names: tuple[str, ...]) -> Any:
        """``_bind``'s result from the raw values and the arguments (keyword ones last) by name:
        node arguments become parents, the others constants."""
        parents: list[Node] = [self.code] if self.code is not None else []
        arg_names: list[str] = ["__code__"] if self.code is not None else []
        constants: dict[str, Any] | None = None
        failure: BaseException | None = None
        for name, arg in zip(names, args):
            if isinstance(arg, Node):
                if type(arg) is Error and failure is None:
                    failure = arg.value
                parents.append(arg)
                arg_names.append(name)
            elif constants is None:
                constants = {name: arg}
            else:
                constants[name] = arg
        if failure is None and isinstance(function, BaseException):
            failure = function
        if failure is not None:
            return _error(state, self.op, failure, tuple(parents), tuple(arg_names), constants)
        return function, positional, keywords, tuple(parents), tuple(arg_names), constants

    def _argument_names(self, count: int, bound: bool) -> tuple[str, ...]:
        """Names for ``count`` positional arguments (a bound method's receiver not counted)."""
        cache = self._bound_names if bound else self._names
        names = cache.get(count)
        if names is None:
            declared = self.positional_names[1:] if bound else self.positional_names
            stem = self.var_positional or "arg"
            names = (*declared[:count], *(f"{stem}{i}" for i in range(count - len(declared))))
            cache[count] = names
        return names

    def _finish(self, state: context.TraceState, value: Any, failure: BaseException | None,
                parents: tuple[Node, ...], arg_names: tuple[str, ...], constants: dict[str, Any] | None,
                frame: list) -> Node:
        nested = _frontier(frame, parents)
        if isinstance(value, Node):
            # The body returned a node of a nested op: its value is ours, and it is a parent.
            if all(value is not n for n in nested):
                nested.append(value)
            if type(value) is Error:
                failure = value.value
            value = value.value
        if nested:
            parents = (*parents, *nested)
            arg_names = (*arg_names, *([NESTED] * len(nested)))
        if failure is not None:
            return _error(state, self.op, failure, parents, arg_names, constants)
        return _record(state, self.op, value, parents, arg_names, constants)

    def _run_raw(self, args: tuple[Any, ...], kwargs: dict[str, Any], instance: Any, bound: bool) -> Any:
        function = self.implementation()
        if isinstance(function, BaseException):
            raise function
        positional, keywords = _raw_arguments(args, kwargs, instance, bound)
        if self.is_async or self.timeout is None or type(function) is Candidate:
            return function(*positional, **keywords)
        return _run_with_timeout(function, positional, keywords, self.timeout, self.op.name)

    # -- trainable code ---------------------------------------------------------------------
    def implementation(self) -> Callable[..., Any] | BaseException:
        """The function to run: the original, the compiled current ``code`` value, or a
        ``Candidate`` that runs it in the sandbox.

        The op's ``sandbox`` (or the context's, see ``graphopt.runtime.sandbox.sandbox``) decides:
        ``"auto"`` sandboxes every value but the original source, ``True`` all, ``False`` none.
        A candidate that does not compile is returned as the exception, cached by content hash.
        """
        if self.code is None:
            return self.function
        source = self.code.value
        mode = self.sandbox if self.sandbox is not None else current_mode()
        if mode is not True and source == self._original_source:
            return self.function
        key = hashlib.sha256(source.encode()).hexdigest()
        compiled = self._compiled.get(key)
        sandboxed = mode is not False
        if compiled is None or (type(compiled) is Candidate) is not sandboxed \
                and not isinstance(compiled, SyntaxError):
            if sandboxed:
                compiled = Candidate.build(self.op.name, source, key, self.function, is_async=self.is_async,
                                           timeout=self.timeout, arg_names=self.positional_names)
            else:
                compiled = self._compile(source)
            self._compiled[key] = compiled
        return compiled

    def _compile(self, source: str) -> Callable[..., Any] | BaseException:
        namespace = dict(self.function.__globals__)
        namespace.update(inspect.getclosurevars(self.function).nonlocals)
        try:
            exec(compile(source, f"<graphopt candidate {self.op.name}>", "exec"), namespace)
            candidate = namespace[self.function.__name__]
        except Exception as exc:
            return exc
        if not callable(candidate):
            return TypeError(f"candidate for {self.op.name!r} defines {self.function.__name__!r} "
                             f"as {type(candidate).__name__}, not a function")
        return candidate


class BoundTracedFunction:
    """A traced method bound to its receiver; the receiver is passed but not traced."""

    __slots__ = ("traced", "instance")

    def __init__(self, traced: TracedFunction, instance: Any) -> None:
        self.traced = traced
        self.instance = instance

    @property
    def code(self) -> Param | None:
        return self.traced.code

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.traced.invoke(args, kwargs, self.instance, True)

    def __repr__(self) -> str:
        return f"<bound {self.traced!r} of {type(self.instance).__name__}>"


def _raw_arguments(args: tuple[Any, ...], kwargs: dict[str, Any], instance: Any, bound: bool
                   ) -> tuple[list[Any], dict[str, Any]]:
    positional = [a.value if isinstance(a, Node) else a for a in args]
    if bound:
        positional.insert(0, instance)
    keywords = {k: v.value if isinstance(v, Node) else v for k, v in kwargs.items()} if kwargs else {}
    return positional, keywords


def _frontier(frame: list, parents: tuple[Node, ...]) -> list[Node]:
    """Nodes made inside the call that no other node made there (or an argument) consumed."""
    if not frame:
        return []
    consumed = {id(p) for node in frame for p in node.parents}
    consumed.update(id(p) for p in parents)
    return [node for node in frame if id(node) not in consumed]


def _signature_names(signature: inspect.Signature) -> tuple[str, ...]:
    names = []
    for p in signature.parameters.values():
        if p.kind is p.VAR_POSITIONAL:
            names.append("*" + p.name)
        elif p.kind is p.VAR_KEYWORD:
            names.append("**" + p.name)
        else:
            names.append(p.name)
    # keyword-only names follow the positional ones in ast order, before **kwargs
    star_kw = [n for n in names if n.startswith("**")]
    star = [n for n in names if n.startswith("*") and not n.startswith("**")]
    plain = [n for n in names if not n.startswith("*")]
    return (*plain, *star, *star_kw)


def function_source(function: Callable[..., Any]) -> str:
    """The dedented source of ``function`` without its decorators."""
    try:
        source = textwrap.dedent(inspect.getsource(function))
    except (OSError, TypeError) as err:
        raise TraceError(f"trainable op {function.__qualname__!r}: cannot read its source "
                         f"({err}); define it in a file") from err
    tree = ast.parse(source)
    definition = next(n for n in tree.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef)))
    lines = source.splitlines()
    return "\n".join(lines[definition.lineno - 1: definition.end_lineno]) + "\n"


def _run_with_timeout(function: Callable[..., Any], positional: list[Any], keywords: dict[str, Any],
                      timeout: float, name: str) -> Any:
    outcome: list[Any] = []
    ctx = contextvars.copy_context()
    ctx.run(context.detach)  # the worker may outlive this call: its nodes go to this call's frame

    def target() -> None:
        try:
            outcome.append((True, ctx.run(function, *positional, **keywords)))
        except BaseException as exc:  # handed to the caller's thread below
            outcome.append((False, exc))

    # A runaway candidate cannot be killed in-process; its daemon thread is abandoned.
    worker = threading.Thread(target=target, name=f"graphopt-op-{name}", daemon=True)
    worker.start()
    worker.join(timeout)
    if not outcome:
        raise TimeoutError(f"op {name!r} ran longer than {timeout} s")
    ok, result = outcome[0]
    if not ok:
        raise result
    return result


@overload
def op(function: F, /) -> TracedFunction: ...


@overload
def op(*, name: str | None = None, trainable: bool = False, timeout: float | None = None,
       sandbox: Mode | None = None) -> Callable[[F], TracedFunction]: ...


def op(function: Callable[..., Any] | None = None, /, *, name: str | None = None,
       trainable: bool = False, timeout: float | None = None, sandbox: Mode | None = None) -> Any:
    """Trace calls of a function, method or ``async def``: each call becomes a ``Message`` node.

    ``@op`` and ``@op(trainable=True, timeout=2.0)`` both work. Arguments may be nodes or plain
    values; the body receives plain values. With ``trainable=True`` the source is the code
    parameter ``fn.code``. Parameters used inside nested ops stay reachable from the result.
    ``sandbox`` (trainable ops): ``"auto"`` runs every code value but the original source in a
    sandboxed worker process, ``True`` the original too, ``False`` none; ``None`` (default)
    follows the context's ``graphopt.runtime.sandbox.sandbox()`` setting, ``"auto"`` unless set.
    ``timeout`` kills a sandboxed call's worker; without it the sandbox applies its own (10 s).
    """
    def wrap(fn: Callable[..., Any]) -> TracedFunction:
        return TracedFunction(fn, name=name, trainable=trainable, timeout=timeout, sandbox=sandbox)

    if function is not None:
        return wrap(function)
    return wrap
