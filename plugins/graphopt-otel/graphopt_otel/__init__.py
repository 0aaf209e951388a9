"""OpenTelemetry spans for graphopt runs, as a graphopt observer plugin."""

from graphopt_otel.observer import OtelObserver, RunTracer

__all__ = ["OtelObserver", "RunTracer"]
