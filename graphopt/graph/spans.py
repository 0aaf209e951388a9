"""Span observers: op calls, LLM calls and optimizer steps reported to a tracer (OpenTelemetry…).

A ``SpanTracer`` lives in a ``ContextVar``, set for the length of a run by ``tracing(tracer)``
(the trainer installs the tracers plugins return from ``graphopt_span_tracer``). With none set,
an op call pays one ``ContextVar.get`` and nothing else. Worker threads that run in a copy of
the caller's context see the same tracer.
"""

from __future__ import annotations

from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any, Iterator, Mapping, Protocol


class SpanTracer(Protocol):
    """What an observer implements to receive spans; it reads, it never changes the call."""

    def start(self, kind: str, name: str, attributes: Mapping[str, Any]) -> Any:
        """A span begins: ``kind`` is ``"op"``, ``"llm"`` or ``"optimizer_step"``; returns a handle."""

    def end(self, span: Any, attributes: Mapping[str, Any], error: BaseException | None) -> None:
        """The span ``start`` returned ends, with more attributes and the failure, if any."""


_TRACER: ContextVar[SpanTracer | None] = ContextVar("graphopt_span_tracer", default=None)

current_tracer = _TRACER.get


@contextmanager
def tracing(tracer: SpanTracer | None) -> Iterator[None]:
    """Report spans to ``tracer`` inside the block (``None``: no spans); nests per thread and task."""
    token = _TRACER.set(tracer)
    try:
        yield
    finally:
        _TRACER.reset(token)


@contextmanager
def span(kind: str, name: str, attributes: Mapping[str, Any]) -> Iterator[dict[str, Any]]:
    """A span around the block when a tracer is set; the yielded dict collects end attributes."""
    tracer = _TRACER.get()
    ending: dict[str, Any] = {}
    if tracer is None:
        yield ending
        return
    handle = tracer.start(kind, name, attributes)
    try:
        yield ending
    except BaseException as err:
        tracer.end(handle, ending, err)
        raise
    tracer.end(handle, ending, None)
