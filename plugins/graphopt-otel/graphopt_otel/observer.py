"""``OtelObserver``: a run span, with op, LLM-call and optimizer-step spans under it.

Span names and attributes follow OpenTelemetry's GenAI semantic conventions for model calls
(``chat {model}``, ``gen_ai.*``); graphopt's own attributes start with ``graphopt.``. The
observer only reads: an exporter that fails costs a warning from graphopt, never the run.
"""

from __future__ import annotations

import json
import threading
from typing import Any, Mapping

from opentelemetry import context, trace
from opentelemetry.trace import Span, SpanKind, Status, StatusCode

from graphopt.plugins import hookimpl

SCOPE = "graphopt"
_KINDS = {"llm": SpanKind.CLIENT}


class OtelObserver:
    """Observer plugin: ``tracer_provider`` (default: the global one, if an SDK configured it)."""

    def __init__(self, tracer_provider: trace.TracerProvider | None = None) -> None:
        self.tracer_provider = tracer_provider
        self._runs: dict[int, Span] = {}
        self._lock = threading.Lock()

    def tracer(self) -> trace.Tracer | None:
        """The tracer to use, or ``None`` when no SDK provider is configured (spans would be no-ops)."""
        provider = self.tracer_provider or trace.get_tracer_provider()
        if isinstance(provider, (trace.ProxyTracerProvider, trace.NoOpTracerProvider)):
            return None
        return provider.get_tracer(SCOPE)

    @hookimpl
    def graphopt_run_start(self, run: Any) -> None:
        tracer = self.tracer()
        if tracer is None:
            return
        attributes = {"graphopt.run.name": run.name, "graphopt.run.resumed": run.resumed,
                      "graphopt.run.optimizers": list(run.optimizers),
                      "graphopt.run.params": sorted(run.params)}
        attributes.update({f"graphopt.run.{key}": value for key, value in run.options.items()
                           if isinstance(value, (str, bool, int, float))})
        span = tracer.start_span(f"graphopt.run {run.name}", attributes=attributes)
        with self._lock:
            self._runs[id(run)] = span

    @hookimpl
    def graphopt_span_tracer(self, run: Any) -> RunTracer | None:
        tracer = self.tracer()
        if tracer is None:
            return None
        with self._lock:
            root = self._runs.get(id(run))
        return RunTracer(tracer, root)

    @hookimpl
    def graphopt_step_end(self, run: Any, record: Any) -> None:
        with self._lock:
            span = self._runs.get(id(run))
        if span is None:
            return
        event: dict[str, Any] = {"graphopt.step": record.step, "graphopt.epoch": record.epoch,
                                 "graphopt.usage.calls": record.usage.calls,
                                 "graphopt.usage.tokens": record.usage.tokens,
                                 "graphopt.usage.cost_usd": record.usage.cost,
                                 "graphopt.params_changed": sorted(record.changes) if record.step else []}
        for field in ("train_score", "val_score", "best_score"):
            if getattr(record, field) is not None:
                event[f"graphopt.{field}"] = getattr(record, field)
        span.add_event("graphopt.step", attributes=event)

    @hookimpl
    def graphopt_run_end(self, run: Any, result: Any, error: BaseException | None) -> None:
        with self._lock:
            span = self._runs.pop(id(run), None)
        if span is None:
            return
        if result is not None:
            span.set_attributes({"graphopt.run.stopped": result.stopped, "graphopt.run.steps": result.steps,
                                 "graphopt.usage.calls": result.usage.calls,
                                 "graphopt.usage.tokens": result.usage.tokens,
                                 "graphopt.usage.cost_usd": result.usage.cost})
            if result.best_score is not None:
                span.set_attribute("graphopt.run.best_score", result.best_score)
        if error is not None:
            span.record_exception(error)
            span.set_status(Status(StatusCode.ERROR, f"{type(error).__name__}: {error}"))
        span.end()


class RunTracer:
    """graphopt's ``SpanTracer`` over an OpenTelemetry tracer: each span current while it lasts."""

    __slots__ = ("tracer", "root")

    def __init__(self, tracer: trace.Tracer, root: Span | None) -> None:
        self.tracer = tracer
        self.root = root

    def start(self, kind: str, name: str, attributes: Mapping[str, Any]) -> tuple[Span, object]:
        parent = context.get_current()
        if self.root is not None and not trace.get_current_span(parent).get_span_context().is_valid:
            parent = trace.set_span_in_context(self.root, parent)  # worker threads start empty
        title = f"optimizer.step {name}" if kind == "optimizer_step" else name
        span = self.tracer.start_span(title, context=parent, kind=_KINDS.get(kind, SpanKind.INTERNAL),
                                      attributes={"graphopt.span.kind": kind, **_plain(attributes)})
        token = context.attach(trace.set_span_in_context(span, parent))
        return span, token

    def end(self, handle: tuple[Span, object], attributes: Mapping[str, Any],
            error: BaseException | None) -> None:
        span, token = handle
        try:
            if attributes:
                span.set_attributes(_plain(attributes))
            if error is not None:
                span.record_exception(error)
                span.set_status(Status(StatusCode.ERROR, f"{type(error).__name__}: {error}"))
                span.set_attribute("error.type", type(error).__name__)
            span.end()
        finally:
            context.detach(token)


def _plain(attributes: Mapping[str, Any]) -> dict[str, Any]:
    """Attribute values OpenTelemetry accepts: scalars and lists of scalars; others as JSON text."""
    plain: dict[str, Any] = {}
    for key, value in attributes.items():
        if isinstance(value, (str, bool, int, float)):
            plain[key] = value
        elif isinstance(value, (list, tuple)) and all(isinstance(v, (str, bool, int, float)) for v in value):
            plain[key] = list(value)
        elif value is not None:
            plain[key] = json.dumps(value, default=str)
    return plain
