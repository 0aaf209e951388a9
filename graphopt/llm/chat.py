"""``go.llm.chat``: an LLM call inside a workflow, traced as a ``Message`` node.

The node's value is the reply text; its parents are the prompt and system nodes it was given;
``node.info`` holds the model, the sampling params, usage, cost and whether the cache answered.
A failed call becomes an ``Error`` node like any op's failure, except ``BudgetExceeded``, which
stops the run as it would outside a trace.
"""

from __future__ import annotations

import contextvars
from typing import Any

from graphopt.errors import BudgetExceeded
from graphopt.graph.node import Error, Message, Node
from graphopt.graph.op import op
from graphopt.llm.client import Client
from graphopt.llm.protocol import Message as ChatMessage
from graphopt.llm.registry import get
from graphopt.llm.reply import Reply

# Where the running op leaves its Reply for ``chat`` to describe the node: a ContextVar, so
# concurrent calls (threads, asyncio tasks) each see their own.
_replies: contextvars.ContextVar[list[Reply] | None] = contextvars.ContextVar(
    "graphopt_chat_replies", default=None)


def _messages(prompt: Any, system: Any) -> list[ChatMessage]:
    if isinstance(prompt, list):
        messages = list(prompt)
    else:
        messages = [{"role": "user", "content": str(prompt)}]
    if system is not None:
        messages.insert(0, {"role": "system", "content": str(system)})
    return messages


def _client(model: str | None, client: Client | None) -> Client:
    return client if client is not None else get(model)


def _sink(reply: Reply) -> str:
    sink = _replies.get()
    if sink is not None:
        sink.append(reply)
    return reply.text


@op(name="llm.chat")
def _chat(prompt: Any, system: Any = None, *, model: str | None = None, client: Client | None = None,
          params: dict[str, Any] | None = None) -> str:
    """Ask a model; the reply text is the node's value."""
    return _sink(_client(model, client).complete(_messages(prompt, system), **(params or {})))


@op(name="llm.achat")
async def _achat(prompt: Any, system: Any = None, *, model: str | None = None,
                 client: Client | None = None, params: dict[str, Any] | None = None) -> str:
    """Ask a model without blocking the event loop."""
    reply = await _client(model, client).acomplete(_messages(prompt, system), **(params or {}))
    return _sink(reply)


def _describe(node: Any, replies: list[Reply], params: dict[str, Any]) -> Any:
    if isinstance(node, Error) and isinstance(node.value, BudgetExceeded):
        raise node.value
    if isinstance(node, Message) and not isinstance(node, Error) and replies:
        reply = replies[-1]
        node.info = {**(node.info or {}), "model": reply.model, "params": params,
                     "usage": reply.usage.model_dump(), "cost": reply.cost,
                     "latency": reply.latency, "cached": reply.cached}
    return node


def chat(prompt: str | Node | list[ChatMessage], system: str | Node | None = None, *,
         model: str | None = None, client: Client | None = None, **params: Any) -> Any:
    """One LLM call recorded as a ``Message`` node (plain text inside ``no_trace()``).

    ``prompt`` and ``system`` may be nodes (a ``go.param`` prompt, an upstream op's output); they
    become the node's parents, so feedback on the reply reaches them.
    """
    replies: list[Reply] = []
    token = _replies.set(replies)
    try:
        node = _chat(prompt, system, model=model, client=client, params=params)
    finally:
        _replies.reset(token)
    return _describe(node, replies, params)


async def achat(prompt: str | Node | list[ChatMessage], system: str | Node | None = None, *,
                model: str | None = None, client: Client | None = None, **params: Any) -> Any:
    """The async twin of ``chat``."""
    replies: list[Reply] = []
    token = _replies.set(replies)
    try:
        node = await _achat(prompt, system, model=model, client=client, params=params)
    finally:
        _replies.reset(token)
    return _describe(node, replies, params)
