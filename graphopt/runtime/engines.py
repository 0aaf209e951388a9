"""The embedded model once per node on Ray: a per-node actor owns the engine, workers ask it.

Under the Ray executor each task runs in ``engines_from(node_engine)``: a ``local/...`` client
on a worker gets an ``EngineProxy`` instead of loading the model in that worker process. The
proxy's requests go to ``NodeEngine``, an actor named after the node and the engine's settings
(started by the first worker that needs it, found by the others: ``get_if_exists``), pinned to
that node, which loads the engine once and serves up to ``max_batch`` requests at a time on
threads, so requests from all the node's workers batch together there. The actor is detached:
it outlives the worker that started it and serves later runs on the same cluster until the
cluster stops (or ``ray.kill``). Ray is imported only when a proxy is first made.
"""

from __future__ import annotations

import hashlib
import importlib
from concurrent.futures import Future
from typing import Any, Iterator

from graphopt.llm.config import LLMSettings

NAMESPACE = "graphopt"
"""The Ray namespace of the engine actors (``ray.util.list_named_actors(all_namespaces=True)``)."""


class NodeEngine:
    """The actor's body: this node's engine for one set of settings."""

    def __init__(self, settings: LLMSettings) -> None:
        from graphopt.llm.local import runtime  # the actor loads the model itself, once

        self.engine = runtime.shared_engine(settings)

    def generate(self, messages: list[dict[str, Any]], params: dict[str, Any]) -> Any:
        return self.engine.generate(messages, **params)

    def count_tokens(self, messages: list[dict[str, Any]]) -> int:
        return int(self.engine.count_tokens(messages))


def _actor(settings: LLMSettings) -> Any:
    ray = importlib.import_module("ray")
    strategies = importlib.import_module("ray.util.scheduling_strategies")
    node = ray.get_runtime_context().get_node_id()
    key = repr((settings.local_backend, settings.device, str(settings.model_cache_dir)))
    name = f"graphopt-engine-{node}-{hashlib.sha256(key.encode()).hexdigest()[:12]}"
    # Detached: owned by the cluster, not by the worker that happened to start it, which Ray
    # reaps when idle (the actor, and the loaded model, would go with it mid-run). In one
    # namespace, so every job on the cluster shares the node's engine; it ends with the cluster.
    return ray.remote(NodeEngine).options(
        name=name, namespace=NAMESPACE, lifetime="detached", get_if_exists=True, num_cpus=0,
        max_concurrency=max(2, settings.max_batch),
        scheduling_strategy=strategies.NodeAffinitySchedulingStrategy(node_id=node, soft=False),
    ).remote(settings)


class EngineProxy:
    """An engine on a Ray worker whose requests go to its node's ``NodeEngine`` actor; an actor
    that died (with the worker that started it) is started again once per request."""

    __slots__ = ("settings", "actor")

    def __init__(self, settings: LLMSettings) -> None:
        self.settings = settings
        self.actor = _actor(settings)

    def _ask(self, method: str, *args: Any) -> Any:
        ray = importlib.import_module("ray")
        try:
            return ray.get(getattr(self.actor, method).remote(*args))
        except ray.exceptions.RayActorError:
            self.actor = _actor(self.settings)
            return ray.get(getattr(self.actor, method).remote(*args))

    def generate(self, messages: list[dict[str, Any]], **params: Any) -> Any:
        return self._ask("generate", messages, params)

    def submit(self, messages: list[dict[str, Any]], **params: Any) -> Future[Any]:
        return self.actor.generate.remote(messages, params).future()  # type: ignore[no-any-return]

    def count_tokens(self, messages: list[dict[str, Any]]) -> int:
        return int(self._ask("count_tokens", messages))

    def stream(self, messages: list[dict[str, Any]], **params: Any) -> Iterator[str]:
        """The reply in one piece: the actor answers whole replies."""
        yield self.generate(messages, **params).text


def node_engine(settings: LLMSettings) -> EngineProxy:
    """The engine a Ray worker uses: a proxy to the one its node's actor holds."""
    return EngineProxy(settings)
