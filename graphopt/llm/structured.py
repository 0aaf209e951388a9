"""Structured replies: JSON mode where the backend has it, extraction otherwise, one repair, then fail.

``complete_json`` asks for JSON matching a pydantic model, pulls the JSON out of the reply (the
whole text, a fenced block, a ``<json>`` tag, or the first balanced inline value, never a piece
of an unterminated one), validates it, and on failure sends one repair request quoting the
error, when one can succeed. A second failure raises ``ReplyFormatError`` carrying the raw reply
text. Replies are parsed within size and depth limits: nothing can exhaust memory or the stack.
"""

from __future__ import annotations

import json
import re
from typing import Any, Awaitable, Protocol, TypeVar

from pydantic import BaseModel

from graphopt.errors import ReplyFormatError
from graphopt.llm.ledger import active_budgets, token_room
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


MAX_REPLY_CHARS = 1_000_000
"""The longest reply parsed; a longer one is refused (``ReplyFormatError``) before parsing."""
MAX_DEPTH = 64
"""The deepest nesting of ``[`` and ``{`` parsed; deeper is refused, never a ``RecursionError``."""

# Inside a JSON value only quotes, escapes and brackets change the nesting; everything else is skipped.
_STRUCTURE = re.compile(r'\\.|["\[\]{}]', re.S)


def _too_deep(max_depth: int) -> ReplyFormatError:
    return ReplyFormatError(f"reply nests JSON deeper than {max_depth} levels; refused unparsed")


def _spans(text: str, max_depth: int) -> Any:
    """``(start, end)`` of each balanced top-level ``{...}`` or ``[...]`` in ``text``, in order.

    Quotes count only inside a value (prose may hold stray ones). Raises ``ValueError`` when the
    text ends inside a value: a fragment from inside an unterminated value is never offered.
    """
    depth = 0
    start = 0
    in_string = False
    for match in _STRUCTURE.finditer(text):
        token = match.group()
        if depth == 0:
            if token in "{[":
                depth, start = 1, match.start()
            continue
        if in_string:
            if token == '"':
                in_string = False
        elif token == '"':
            in_string = True
        elif token in "{[":
            depth += 1
            if depth > max_depth:
                raise _too_deep(max_depth)
        elif token in "}]":
            depth -= 1
            if depth == 0:
                yield start, match.end()
    if depth:
        raise ValueError("no JSON value found in the reply: it ends inside an unterminated JSON "
                         "value (cut short, e.g. at max_tokens)")


def _loads(candidate: str, max_depth: int) -> Any:
    """``candidate`` as JSON if it is exactly one value within ``max_depth``, else ``_NOTHING``."""
    if not candidate or candidate[0] not in "{[":
        try:  # a bare string, number or literal cannot nest
            return json.loads(candidate)
        except ValueError:
            return _NOTHING
    try:
        spans = list(_spans(candidate, max_depth))
    except ValueError:
        return _NOTHING
    if len(spans) != 1 or spans[0] != (0, len(candidate)):
        return _NOTHING
    try:
        return json.loads(candidate)
    except ValueError:
        return _NOTHING


_NOTHING = object()


def extract_json(text: str, *, max_chars: int = MAX_REPLY_CHARS, max_depth: int = MAX_DEPTH) -> Any:
    """The first JSON value found in ``text``; ``ValueError`` when there is none.

    Looks at the whole text, fenced blocks, ``<json>`` tags, then each balanced top-level value.
    A reply over ``max_chars`` or nested deeper than ``max_depth`` raises ``ReplyFormatError``.
    """
    if len(text) > max_chars:
        raise ReplyFormatError(f"reply of {len(text):,} characters is over the {max_chars:,} "
                               f"parsed; refused unparsed", raw=text[:2_000])
    candidates = [text.strip()]
    candidates += [match.group(1).strip() for match in _FENCED.finditer(text)]
    candidates += [match.group(2).strip() for match in _TAGGED.finditer(text)]
    for candidate in candidates:
        value = _loads(candidate, max_depth)
        if value is not _NOTHING:
            return value
    for start, end in _spans(text, max_depth):
        try:
            return json.loads(text[start:end])
        except ValueError:
            continue
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


def _failure(client: Completer, schema: type[BaseModel], raw: str, error: Exception,
             repaired: bool) -> ReplyFormatError:
    after = "after one repair request" if repaired else "(no repair request could succeed)"
    return ReplyFormatError(f"model {client.model!r}: reply does not match {schema.__name__} "
                            f"{after}: {error}", raw=raw)


def _parse(reply: Reply, schema: type[M], params: dict[str, Any]) -> tuple[M | None, Exception | None]:
    """The validated reply, or why it could not be had (a cut reply says so)."""
    try:
        return parse_reply(reply.text, schema), None
    except ReplyFormatError as err:
        return None, err
    except ValueError as err:
        if reply.finish_reason == "length":
            limit = params.get("max_tokens") or params.get("max_completion_tokens")
            cut = f"max_tokens={limit}" if limit else "the model's token limit"
            return None, ValueError(f"the reply was cut at {cut} before its JSON closed: {err}")
        return None, err


def _repairable(client: Completer, reply: Reply, error: Exception, params: dict[str, Any]) -> bool:
    """Whether a repair request can succeed where the first reply failed.

    Not over the size or depth limits (refused unparsed); not when a decoder that enforces the
    schema was cut short (it would be cut the same way); not when a budget has no room for it.
    """
    if isinstance(error, ReplyFormatError):
        return False
    if reply.finish_reason == "length" and getattr(client.backend, "structured_output", False):
        return False
    room = token_room()
    if room is not None:
        cap = params.get("max_tokens") or params.get("max_completion_tokens") or 1
        if room < reply.usage.total_tokens + int(cap):
            return False
    return not any(b.max_calls is not None and b.calls + b.pending >= b.max_calls
                   for b in active_budgets())


def complete_json(client: Completer, messages: list[Message], schema: type[M], **params: Any) -> M:
    """A validated ``schema`` instance from the model, with at most one repair request."""
    messages = with_instruction(messages, schema)
    params = _params(client, schema, params)
    reply = client.complete(messages, **params)
    parsed, error = _parse(reply, schema, params)
    if error is None:
        return parsed  # type: ignore[return-value]
    if not _repairable(client, reply, error, params):
        raise _failure(client, schema, reply.text, error, repaired=False) from error
    reply = client.complete(_repair(messages, reply.text, error), **params)
    parsed, error = _parse(reply, schema, params)
    if error is None:
        return parsed  # type: ignore[return-value]
    raise _failure(client, schema, reply.text, error, repaired=True) from error


async def acomplete_json(client: Completer, messages: list[Message], schema: type[M],
                         **params: Any) -> M:
    """The async twin of ``complete_json``."""
    messages = with_instruction(messages, schema)
    params = _params(client, schema, params)
    reply = await client.acomplete(messages, **params)
    parsed, error = _parse(reply, schema, params)
    if error is None:
        return parsed  # type: ignore[return-value]
    if not _repairable(client, reply, error, params):
        raise _failure(client, schema, reply.text, error, repaired=False) from error
    reply = await client.acomplete(_repair(messages, reply.text, error), **params)
    parsed, error = _parse(reply, schema, params)
    if error is None:
        return parsed  # type: ignore[return-value]
    raise _failure(client, schema, reply.text, error, repaired=True) from error
