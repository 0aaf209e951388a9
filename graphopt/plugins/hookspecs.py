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
