"""Structured replies: JSON mode where the backend has it, extraction otherwise, one repair, then fail.

``complete_json`` asks for JSON matching a pydantic model, pulls the JSON out of the reply (the
whole text, a fenced block, a ``<json>`` tag, or the first inline object), validates it, and on
failure sends one repair request quoting the validation error. A second failure raises
``ReplyFormatError`` carrying the raw reply text.
"""

from __future__ import annotations

import json
import re
from typing import Any, Awaitable, Protocol, TypeVar

from pydantic import BaseModel

from graphopt.errors import ReplyFormatError
from graphopt.llm.protocol import Message
from graphopt.llm.reply import Reply

M = TypeVar("M", bound=BaseModel)

_FENCED = re.compile(r"```(?:json|JSON)?\s*\n?(.*?)```", re.S)
_TAGGED = re.compile(r"<(json|answer|output)>(.*?)</\1>", re.S | re.I)


class Completer(Protocol):
    """What structured replies need of a client."""

    model: str
    backend: Any

    def complete(self, messages: Any, **params: Any) -> Reply: ...

    def acomplete(self, messages: Any, **params: Any) -> Awaitable[Reply]: ...


def json_instruction(schema: type[BaseModel]) -> str:
    """The instruction appended to the system message: reply with JSON matching ``schema``."""
    return ("Reply with only a JSON object, no prose, that matches this JSON schema:\n"
            + json.dumps(schema.model_json_schema(), separators=(",", ":")))


def with_instruction(messages: list[Message], schema: type[BaseModel]) -> list[Message]:
    """``messages`` with the JSON instruction added to (or as) the system message."""
    instruction = json_instruction(schema)
    if messages and messages[0].get("role") == "system":
        first = dict(messages[0])
        first["content"] = f"{first['content']}\n\n{instruction}"
        return [first, *messages[1:]]
    return [{"role": "system", "content": instruction}, *messages]


def response_format(schema: type[BaseModel]) -> dict[str, Any]:
    """The OpenAI-style ``response_format`` asking for ``schema`` (litellm passes it on)."""
    return {"type": "json_schema",
            "json_schema": {"name": schema.__name__, "schema": schema.model_json_schema()}}


def extract_json(text: str) -> Any:
    """The first JSON value found in ``text``; ``ValueError`` when there is none."""
    candidates = [text.strip()]
    candidates += [match.group(1).strip() for match in _FENCED.finditer(text)]
    candidates += [match.group(2).strip() for match in _TAGGED.finditer(text)]
    for candidate in candidates:
        try:
            return json.loads(candidate)
        except ValueError:
            continue
    decoder = json.JSONDecoder()
    for start, char in enumerate(text):
        if char in "{[":
            try:
                value, _ = decoder.raw_decode(text, start)
            except ValueError:
                continue
            return value
    raise ValueError("no JSON value found in the reply")


def parse_reply(text: str, schema: type[M]) -> M:
    """``text`` parsed as ``schema``; raises ``ValueError`` (pydantic's included) on failure."""
    return schema.model_validate(extract_json(text))


def _params(client: Completer, schema: type[BaseModel], params: dict[str, Any]) -> dict[str, Any]:
    if getattr(client.backend, "structured_output", False) and "response_format" not in params:
        params["response_format"] = response_format(schema)
    return params


def _repair(messages: list[Message], raw: str, error: Exception) -> list[Message]:
    return [*messages, {"role": "assistant", "content": raw},
            {"role": "user", "content": f"That reply could not be used: {error}\n"
                                        "Reply again with only the corrected JSON object."}]


def _failure(client: Completer, schema: type[BaseModel], raw: str, error: Exception) -> ReplyFormatError:
    return ReplyFormatError(f"model {client.model!r}: reply does not match {schema.__name__} "
                            f"after one repair request: {error}", raw=raw)


def complete_json(client: Completer, messages: list[Message], schema: type[M], **params: Any) -> M:
    """A validated ``schema`` instance from the model, with at most one repair request."""
    messages = with_instruction(messages, schema)
    params = _params(client, schema, params)
    reply = client.complete(messages, **params)
    try:
        return parse_reply(reply.text, schema)
    except ValueError as err:
        messages = _repair(messages, reply.text, err)
    reply = client.complete(messages, **params)
    try:
        return parse_reply(reply.text, schema)
    except ValueError as err:
        raise _failure(client, schema, reply.text, err) from err


async def acomplete_json(client: Completer, messages: list[Message], schema: type[M],
                         **params: Any) -> M:
    """The async twin of ``complete_json``."""
    messages = with_instruction(messages, schema)
    params = _params(client, schema, params)
    reply = await client.acomplete(messages, **params)
    try:
        return parse_reply(reply.text, schema)
    except ValueError as err:
        messages = _repair(messages, reply.text, err)
    reply = await client.acomplete(messages, **params)
    try:
        return parse_reply(reply.text, schema)
    except ValueError as err:
        raise _failure(client, schema, reply.text, err) from err
