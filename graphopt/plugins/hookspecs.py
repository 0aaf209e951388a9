"""The contract between graphopt and its plugins.

A plugin is any object (usually a module) whose functions carry ``@graphopt.plugins.hookimpl``.
Built-in optimizers, propagators and backends register through exactly these hooks, as third-party
distributions do through the ``graphopt`` entry-point group. Every hook is called with keyword
arguments only, so a spec may grow new arguments without breaking existing implementations.
"""

from __future__ import annotations

from typing import Any

import pluggy

hookspec = pluggy.HookspecMarker("graphopt")


@hookspec
def graphopt_optimizers() -> list[type]:
    """Return optimizer classes this plugin provides.

    Called once when the plugin is registered (to validate) and whenever the optimizer table is
    built. Each class needs a unique ``name: str`` (what ``go.optimizer(name, ...)`` looks up),
    ``kinds: frozenset[str]`` (parameter kinds it accepts, e.g. ``{"text", "code"}``) and the
    ``graphopt.optim.Optimizer`` interface (``step``, ``zero_feedback``, ``state_dict``,
    ``load_state_dict``). Results of all plugins are collected.
    """


@hookspec
def graphopt_propagators() -> list[Any]:
    """Return feedback propagators this plugin provides.

    Each is an object with a unique ``name: str`` and ``propagate(subgraph, feedback) -> None``,
    which hands ``feedback`` (a ``graphopt.Feedback``) reaching ``subgraph.outputs`` to the
    parameters of ``subgraph``. ``go.backward(..., propagator=name)`` picks one; the built-in
    ``"default"`` is used otherwise. Results of all plugins are collected.
    """


@hookspec
def graphopt_llm_backends() -> list[Any]:
    """Return LLM backend factories this plugin provides.

    Each is an object with a unique ``provider: str`` (the model-string prefix it serves, e.g.
    ``"local"`` for ``"local/smollm2"``) and ``create(model: str, **config) -> backend``, where the
    backend implements ``complete(messages, **params)`` and ``acomplete(messages, **params)``
    returning a ``Reply``. Results of all plugins are collected.
    """


@hookspec
def graphopt_before_step(optimizer: Any, params: list[Any]) -> None:
    """Called by ``Optimizer.step()`` before proposing; ``params`` are the optimizer's params.

    Raising here aborts the step with every parameter unchanged. Results are ignored.
    """


@hookspec
def graphopt_after_step(optimizer: Any, params: list[Any], committed: dict[str, Any]) -> None:
    """Called by ``Optimizer.step()`` after a commit; ``committed`` maps param names to new values.

    Not called when the step was refused. Results are ignored.
    """


@hookspec
def graphopt_run_start(run: Any) -> None:
    """Called by the trainer once a run starts, after a resume is loaded and before the first step.

    ``run`` is a ``graphopt.train.observe.RunInfo``: the run's name, params and their kinds,
    starting values, optimizer names, options and the paths it writes. Observers (MLflow,
    OpenTelemetry, your own) read it; they cannot change the run. An implementation that raises
    is reported with one warning and the run goes on. Results are ignored.
    """


@hookspec
def graphopt_step_end(run: Any, record: Any) -> None:
    """Called by the trainer after each step's history line is recorded and checkpointed.

    ``record`` is the ``graphopt.train.history.StepRecord`` just written (step 0 is the starting
    validation): scores, what each optimizer committed, refused or rejected, the parameters'
    new values (``changes``), usage and cost of the step. Results are ignored; failures warn once.
    """


@hookspec
def graphopt_run_end(run: Any, result: Any, error: BaseException | None) -> None:
    """Called by the trainer once when a run ends, however it ends.

    A finished run (completed, early stop, budget spent) gives ``result``, the
    ``graphopt.train.result.TrainResult``, and ``error=None``; the checkpoint and the report named
    in ``run`` are written by then. A run stopped by an exception (or Ctrl-C) gives
    ``result=None`` and the exception, which then propagates. Results are ignored; failures warn once.
    """


@hookspec
def graphopt_span_tracer(run: Any) -> Any:
    """Return a ``graphopt.graph.spans.SpanTracer`` to receive this run's spans, or ``None``.

    Called once per run, at its start. While the run lasts the tracer's ``start``/``end`` are
    called around every op call (kind ``"op"``), every LLM call (``"llm"``, with GenAI
    ``gen_ai.*`` attributes and token usage) and every optimizer step (``"optimizer_step"``),
    from the threads the run uses. When no plugin returns a tracer, spans cost nothing.
    Results of all plugins are collected.
    """
