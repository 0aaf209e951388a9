"""A scripted backend: replies computed by a function, for tests of code that calls a model.

``scripted_client(handler)`` returns a ``Client`` whose backend answers every request with
``handler(messages, params)`` (text, a ``Reply``, or an exception to raise), records what it was
sent, and never touches the network or a disk cache. ``ScriptedFactory`` is the same backend as a
plugin (provider ``scripted``) for code that resolves models through ``go.llm.get``.
"""

from __future__ import annotations

import asyncio
import json
import re
import threading
from typing import Any, Callable

from graphopt.llm.client import Client
from graphopt.llm.config import load_settings
from graphopt.llm.ledger import Ledger
from graphopt.llm.protocol import Message
from graphopt.llm.reply import Reply, Usage
from graphopt.plugins.manager import hookimpl

_SCHEMA_MARKER = "matches this JSON schema:"
_SIGNATURE = re.compile(r"code: def (\w+)\(([^)]*)\)")

Handler = Callable[[list[Message], dict[str, Any]], Any]


class ScriptedBackend:
    """Answers with ``handler(messages, params)``; ``calls`` keeps every request in order."""

    structured_output = False

    def __init__(self, model: str, handler: Handler) -> None:
        self.model = model
        self.handler = handler
        self.calls: list[tuple[list[Message], dict[str, Any]]] = []
        self._lock = threading.Lock()

    def _answer(self, messages: list[Message], params: dict[str, Any]) -> Reply:
        with self._lock:
            self.calls.append(([dict(m) for m in messages], dict(params)))
        result = self.handler(messages, params)
        if isinstance(result, BaseException):
            raise result
        if isinstance(result, Reply):
            return result
        text = str(result)
        return Reply(text=text, model=self.model,
                     usage=Usage(prompt_tokens=self.count_tokens(messages),
                                 completion_tokens=-(-len(text) // 4)))

    def count_tokens(self, messages: list[Message]) -> int:
        """The prompt tokens a reply reports: a quarter of the characters, rounded up."""
        return -(-sum(len(str(m.get("content", ""))) for m in messages) // 4)

    def complete(self, messages: list[Message], **params: Any) -> Reply:
        return self._answer(messages, params)

    async def acomplete(self, messages: list[Message], **params: Any) -> Reply:
        await asyncio.sleep(0)
        return self._answer(messages, params)

    def prompts(self) -> list[str]:
        """The text of every request sent, messages joined, in order."""
        return ["\n\n".join(str(m.get("content", "")) for m in messages) for messages, _ in self.calls]


class ScriptedFactory:
    """Provider ``scripted``: every backend it creates answers with the current ``handler``."""

    provider = "scripted"

    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.created: list[ScriptedBackend] = []

    def create(self, model: str, **config: Any) -> ScriptedBackend:
        backend = ScriptedBackend(model, lambda messages, params: self.handler(messages, params))
        self.created.append(backend)
        return backend

    @hookimpl
    def graphopt_llm_backends(self) -> list[Any]:
        return [self]


def follow_schema(messages: list[Message], params: dict[str, Any]) -> str:
    """A handler answering JSON requests with an object built from the requested schema.

    The schema is read from the JSON instruction ``complete_json`` adds to the system message
    (or from ``response_format``): enums give their last option, bounded numbers their lower
    bound, code fields a function with the described signature returning its first argument,
    other strings a fixed sentence. A request without a schema gets a fixed sentence back.
    """
    schema = _requested_schema(messages, params)
    if schema is None:
        return "Be more specific and check the result against the expected output."
    return json.dumps({name: _sample(spec) for name, spec in schema.get("properties", {}).items()})


def _requested_schema(messages: list[Message], params: dict[str, Any]) -> dict[str, Any] | None:
    wanted = params.get("response_format")
    if isinstance(wanted, dict) and isinstance(wanted.get("json_schema"), dict):
        return wanted["json_schema"].get("schema")
    for message in messages:
        content = str(message.get("content", ""))
        marker = content.find(_SCHEMA_MARKER)
        if marker >= 0:
            return json.loads(content[marker + len(_SCHEMA_MARKER):].strip().splitlines()[0])
    return None


def _sample(spec: dict[str, Any]) -> Any:
    if "enum" in spec:
        return spec["enum"][-1]
    kind = spec.get("type")
    if kind in ("integer", "number"):
        return spec.get("minimum", 1)
    match = _SIGNATURE.search(spec.get("description", ""))
    if match:
        name, arguments = match.group(1), match.group(2)
        first = arguments.split(",")[0].strip().lstrip("*") or "None"
        return f"def {name}({arguments}):\n    return {first}\n"
    return "Answer in one short sentence."


def scripted_client(handler: Handler, *, model: str = "scripted/model",
                    ledger: Ledger | None = None, tag: str | None = None) -> Client:
    """A client over a ``ScriptedBackend`` with no cache and its own ledger (unless given one)."""
    backend = ScriptedBackend(model, handler)
    return Client(model, backend, settings=load_settings(model=model, retries=0, backoff=0.0),
                  cache=None, ledger=ledger or Ledger(), tag=tag)


__all__ = ["Handler", "ScriptedBackend", "ScriptedFactory", "follow_schema", "scripted_client"]
