"""A scripted LLM backend, registered as a plugin in a fresh plugin manager per test."""

from __future__ import annotations

import asyncio
import os
import threading
from typing import Any, Callable

import pytest

from graphopt.llm import Client, Reply, Usage, get
from graphopt.plugins.manager import PluginManager, hookimpl

Handler = Callable[[list[dict[str, Any]], dict[str, Any]], Any]


def echo(messages: list[dict[str, Any]], params: dict[str, Any]) -> str:
    """Reply with the last message's content, upper-cased."""
    return str(messages[-1]["content"]).upper()


class ScriptedBackend:
    """Answers with its factory's ``handler(messages, params)``: text, a ``Reply``, or an exception."""

    structured_output = False

    def __init__(self, model: str, factory: ScriptedFactory) -> None:
        self.model = model
        self.factory = factory
        self.calls: list[tuple[list[dict[str, Any]], dict[str, Any]]] = []
        self.in_flight = 0
        self.max_in_flight = 0
        self._lock = threading.Lock()

    def _answer(self, messages: list[dict[str, Any]], params: dict[str, Any]) -> Reply:
        with self._lock:
            self.calls.append((messages, dict(params)))
        result = self.factory.handler(messages, params)
        if isinstance(result, BaseException):
            raise result
        if isinstance(result, Reply):
            return result
        text = str(result)
        return Reply(text=text, model=self.model, cost=0.001,
                     usage=Usage(prompt_tokens=10, completion_tokens=len(text.split())))

    def count_tokens(self, messages: list[dict[str, Any]]) -> int:
        """Every reply reports 10 prompt tokens, so a budget reserves exactly that."""
        return 10

    def _enter(self) -> None:
        with self._lock:
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)

    def _leave(self) -> None:
        with self._lock:
            self.in_flight -= 1

    def complete(self, messages: list[dict[str, Any]], **params: Any) -> Reply:
        self._enter()
        try:
            if self.factory.delay:
                threading.Event().wait(self.factory.delay)
            return self._answer(messages, params)
        finally:
            self._leave()

    async def acomplete(self, messages: list[dict[str, Any]], **params: Any) -> Reply:
        self._enter()
        try:
            if self.factory.delay:
                await asyncio.sleep(self.factory.delay)
            return self._answer(messages, params)
        finally:
            self._leave()


class ScriptedFactory:
    """Provider ``scripted``: every backend it creates runs the current ``handler``."""

    provider = "scripted"

    def __init__(self) -> None:
        self.handler: Handler = echo
        self.delay = 0.0
        self.structured_output = False
        self.created: list[ScriptedBackend] = []
        self.configs: list[dict[str, Any]] = []

    def create(self, model: str, **config: Any) -> ScriptedBackend:
        self.configs.append(config)
        backend = ScriptedBackend(model, self)
        backend.structured_output = self.structured_output
        self.created.append(backend)
        return backend


class ScriptedPlugin:
    def __init__(self, factory: ScriptedFactory) -> None:
        self.factory = factory

    @hookimpl
    def graphopt_llm_backends(self) -> list[Any]:
        return [self.factory]


@pytest.fixture
def scripted() -> ScriptedFactory:
    return ScriptedFactory()


@pytest.fixture
def plugin_manager(scripted: ScriptedFactory) -> PluginManager:
    manager = PluginManager()
    manager.register(ScriptedPlugin(scripted), name="scripted-llm")
    return manager


@pytest.fixture
def make_client(plugin_manager: PluginManager, tmp_path: Any) -> Callable[..., Client]:
    """``make_client(**settings)``: a scripted client caching under this test's ``tmp_path``."""

    def make(model: str = "scripted/model", **settings: Any) -> Client:
        settings.setdefault("cache_dir", tmp_path / "cache")
        settings.setdefault("backoff", 0.0)
        return get(model, plugin_manager=plugin_manager, **settings)

    return make


@pytest.fixture
def client(make_client: Callable[..., Client]) -> Client:
    return make_client()


@pytest.fixture(autouse=True)
def _isolated_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> None:
    """No test reads the developer's GRAPHOPT_* settings or writes to their cache."""
    for name in list(os.environ):
        if name.startswith("GRAPHOPT_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
