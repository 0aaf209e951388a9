"""LLM calls as spans, named and attributed after OpenTelemetry's GenAI semantic conventions.

``traced_complete`` and ``traced_acomplete`` wrap ``Client.complete``/``acomplete``: with no
tracer set (``graphopt.graph.spans``) a call pays one ``ContextVar.get``.
"""

from __future__ import annotations

import functools
from typing import Any, Awaitable, Callable, Mapping, TypeVar

from graphopt.graph.spans import current_tracer
from graphopt.llm.reply import Reply

C = TypeVar("C")

_REQUEST_PARAMS = {"max_tokens": "gen_ai.request.max_tokens", "temperature": "gen_ai.request.temperature",
                   "top_p": "gen_ai.request.top_p", "seed": "gen_ai.request.seed"}


def request_attributes(client: Any, params: Mapping[str, Any]) -> dict[str, Any]:
    """``gen_ai.*`` attributes known before the call: system, model, operation and sampling params."""
    model = client.model.split("/", 1)[1] if "/" in client.model else client.model
    attributes: dict[str, Any] = {"gen_ai.operation.name": "chat",
                                  "gen_ai.system": client.provider or "unknown",
                                  "gen_ai.request.model": model}
    for param, key in _REQUEST_PARAMS.items():
        value = params.get(param)
        if isinstance(value, (int, float, str)) and not isinstance(value, bool):
            attributes[key] = value
    if params.get("tag") is not None:
        attributes["graphopt.llm.tag"] = str(params["tag"])
    return attributes


def reply_attributes(reply: Reply) -> dict[str, Any]:
    """``gen_ai.*`` attributes of the reply: token usage, response model, finish reason; cost."""
    attributes: dict[str, Any] = {"gen_ai.usage.input_tokens": reply.usage.prompt_tokens,
                                  "gen_ai.usage.output_tokens": reply.usage.completion_tokens,
                                  "gen_ai.response.model": reply.model,
                                  "graphopt.llm.cached": reply.cached,
                                  "graphopt.llm.cost_usd": reply.cost}
    if reply.finish_reason is not None:
        attributes["gen_ai.response.finish_reasons"] = [reply.finish_reason]
    return attributes


def traced_complete(method: Callable[..., Reply]) -> Callable[..., Reply]:
    """``Client.complete`` reported as a span when a tracer is set."""
    @functools.wraps(method)
    def complete(self: Any, messages: Any, **params: Any) -> Reply:
        tracer = current_tracer()
        if tracer is None:
            return method(self, messages, **params)
        attributes = request_attributes(self, params)
        handle = tracer.start("llm", f"chat {attributes['gen_ai.request.model']}", attributes)
        try:
            reply = method(self, messages, **params)
        except BaseException as err:
            tracer.end(handle, {}, err)
            raise
        tracer.end(handle, reply_attributes(reply), None)
        return reply
    return complete


def traced_acomplete(method: Callable[..., Awaitable[Reply]]) -> Callable[..., Awaitable[Reply]]:
    """The async twin of ``traced_complete``."""
    @functools.wraps(method)
    async def acomplete(self: Any, messages: Any, **params: Any) -> Reply:
        tracer = current_tracer()
        if tracer is None:
            return await method(self, messages, **params)
        attributes = request_attributes(self, params)
        handle = tracer.start("llm", f"chat {attributes['gen_ai.request.model']}", attributes)
        try:
            reply = await method(self, messages, **params)
        except BaseException as err:
            tracer.end(handle, {}, err)
            raise
        tracer.end(handle, reply_attributes(reply), None)
        return reply
    return acomplete
