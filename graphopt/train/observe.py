"""Observers of a run: the ``graphopt_run_start``/``step_end``/``run_end`` hooks and span tracers.

Observers read, they never steer: each hook implementation is called on its own, and one that
raises is reported with one warning per plugin and run (naming the plugin and the hook), then
the run goes on. Span tracers plugins return from ``graphopt_span_tracer`` are fanned out behind
one ``SpanTracer`` with the same rule.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import Any, Mapping

from graphopt.graph.spans import SpanTracer
from graphopt.plugins.manager import PluginManager


@dataclass(frozen=True)
class RunInfo:
    """What observers learn about a run when it starts; the same object reaches every hook.

    ``params`` maps each parameter name to its kind, ``values`` holds the starting values (JSON
    data), ``options`` the trainer's settings (epochs, batch size, seed...), ``optimizers`` the
    optimizer names in order. ``checkpoint``, ``history`` and ``report`` are the paths the run
    writes (or ``None``); the report exists when ``graphopt_run_end`` is called.
    """

    name: str
    params: Mapping[str, str]
    values: Mapping[str, Any]
    optimizers: tuple[str, ...]
    options: Mapping[str, Any]
    checkpoint: str | None = None
    history: str | None = None
    report: str | None = None
    resumed: bool = False
    config: Mapping[str, Any] | None = field(default=None)


class Observers:
    """Calls the observer hooks of ``manager``'s plugins, each on its own, failures warned once."""

    def __init__(self, manager: PluginManager) -> None:
        self.manager = manager
        self._warned: set[str] = set()

    def notify(self, hook: str, **kwargs: Any) -> None:
        """Call every implementation of ``hook`` with ``kwargs``; none can stop the run."""
        for impl in getattr(self.manager.hook, hook).get_hookimpls():
            try:
                impl.function(**{name: kwargs[name] for name in impl.argnames})
            except Exception as err:  # an observer's bug must not cost the run
                self._warn(impl.plugin_name, hook, err)

    def tracer(self, run: RunInfo) -> SpanTracer | None:
        """One tracer forwarding to each plugin's ``graphopt_span_tracer``; ``None`` when none is."""
        tracers: list[tuple[str, SpanTracer]] = []
        for impl in self.manager.hook.graphopt_span_tracer.get_hookimpls():
            try:
                found = impl.function(**{name: run for name in impl.argnames})
            except Exception as err:
                self._warn(impl.plugin_name, "graphopt_span_tracer", err)
                continue
            if found is not None:
                tracers.append((impl.plugin_name, found))
        return _FanOut(tracers, self) if tracers else None

    def _warn(self, plugin: str, hook: str, err: Exception) -> None:
        if plugin in self._warned:
            return
        self._warned.add(plugin)
        warnings.warn(f"observer plugin {plugin!r} failed in {hook} ({type(err).__name__}: {err}); "
                      f"the run goes on, further failures of this plugin are not reported",
                      RuntimeWarning, stacklevel=3)


class _FanOut:
    """Forwards each span to several tracers; a tracer that raises is warned about once."""

    __slots__ = ("tracers", "observers")

    def __init__(self, tracers: list[tuple[str, SpanTracer]], observers: Observers) -> None:
        self.tracers = tracers
        self.observers = observers

    def start(self, kind: str, name: str, attributes: Mapping[str, Any]) -> list[Any]:
        handles = []
        for plugin, tracer in self.tracers:
            try:
                handles.append(tracer.start(kind, name, attributes))
            except Exception as err:
                handles.append(_FAILED)
                self.observers._warn(plugin, "span start", err)
        return handles

    def end(self, span: list[Any], attributes: Mapping[str, Any], error: BaseException | None) -> None:
        for (plugin, tracer), handle in zip(self.tracers, span):
            if handle is _FAILED:
                continue
            try:
                tracer.end(handle, attributes, error)
            except Exception as err:
                self.observers._warn(plugin, "span end", err)


_FAILED = object()
