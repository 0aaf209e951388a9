"""The object graphopt's plugin manager finds through the ``graphopt`` entry point ``otel``."""

from __future__ import annotations

from graphopt_otel.observer import OtelObserver

observer = OtelObserver()
"""Uses the global tracer provider; records nothing until an SDK provider is configured."""
