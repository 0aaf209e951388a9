"""Asking a model for new parameter values: a reply schema, validation, one resend, the verdict.

The reply is a pydantic model (``reasoning`` plus one optional field per parameter, aliased to
the parameter's name). Each suggested value is checked against its parameter (code compiles and
keeps its signature, numbers lie in their space, choices are among the options); refused values
go back to the model once, quoting every error. What stays invalid is reported, never assigned.
"""

from __future__ import annotations

import json
import logging
import re
from typing import Any, Mapping, Sequence

from pydantic import BaseModel, ConfigDict, Field, create_model

from graphopt.errors import ParamValidationError, ReplyFormatError
from graphopt.graph.kinds import SpaceKind
from graphopt.graph.node import Param
from graphopt.graph.render import CHARS_PER_TOKEN
from graphopt.graph.space import Choice, Float, Int
from graphopt.llm.client import Client
from graphopt.llm.protocol import Message
from graphopt.optim.echoes import Scaffold, refuse_echoes

logger = logging.getLogger("graphopt.optim")

_FENCE = re.compile(r"^\s*```[\w+-]*\s*\n(.*?)\n?```\s*$", re.S)


class Verdict:
    """What one request for values came to: the valid values, the refused ones and why."""

    __slots__ = ("values", "errors", "reasoning", "reason", "requests")

    def __init__(self, values: dict[Param, Any], errors: dict[str, str], reasoning: str,
                 reason: str | None, requests: int) -> None:
        self.values = values
        self.errors = errors
        self.reasoning = reasoning
        self.reason = reason
        self.requests = requests

    def __repr__(self) -> str:
        return (f"Verdict(values={len(self.values)}, errors={sorted(self.errors)}, "
                f"reason={self.reason!r})")


def reply_schema(params: Sequence[Param], names: Mapping[Param, str], *,
                 title: str = "Suggestion", max_tokens: int | None = None) -> type[BaseModel]:
    """The reply model: ``reasoning`` and one optional field per parameter, named as in ``names``.

    Field types in the JSON schema guide the model (and constrained decoders); parsing accepts
    any JSON value, so a wrong type is refused by the parameter's own validation and sent back.
    Strings carry a ``maxLength`` from the parameter's own limit and, given ``max_tokens``, the
    reply's token budget, so a constrained decoder cannot spend the budget inside one string.
    """
    reasoning: dict[str, Any] = {}
    if max_tokens:
        reasoning["maxLength"] = max(40, min(400, int(max_tokens)))
    fields: dict[str, Any] = {
        "reasoning": (str, Field(description="why these values should improve the feedback",
                                 json_schema_extra=reasoning or None)),
    }
    for index, target in enumerate(params):
        fields[f"value_{index}"] = (Any, Field(None, alias=names[target],
                                               json_schema_extra=_json_type(target, max_tokens)))
    return create_model(title, __config__=ConfigDict(populate_by_name=True, extra="ignore"),
                        **fields)


def max_length(target: Param, max_tokens: int | None) -> int | None:
    """The longest string a reply should give ``target``: its kind's limit, at most three times
    its current length (and 200 characters), and what ``max_tokens`` can hold."""
    limit = getattr(target.kind, "max_chars", None)
    if limit is None:
        return None
    current = target.value if isinstance(target.value, str) else ""
    limit = min(limit, max(3 * len(current), 200))
    if max_tokens:
        limit = min(limit, int(max_tokens) * CHARS_PER_TOKEN)
    return limit


def _json_type(target: Param, max_tokens: int | None = None) -> dict[str, Any]:
    kind = target.kind
    space = kind.space if isinstance(kind, SpaceKind) else None
    if isinstance(space, Choice):
        return {"enum": list(space.options)}
    if isinstance(space, Int):
        return {"type": "integer", "minimum": space.low, "maximum": space.high}
    if isinstance(space, Float):
        return {"type": "number", "minimum": space.low, "maximum": space.high}
    if kind.name == "int":
        return {"type": "integer"}
    if kind.name == "float":
        return {"type": "number"}
    bound = max_length(target, max_tokens)
    length = {"maxLength": bound} if bound is not None else {}
    if kind.name == "code":
        return {"type": "string", "description": f"complete Python source; {kind.describe()}",
                **length}
    return {"type": "string", **length}


def coerce(target: Param, value: Any) -> Any:
    """Undo common reply habits before validating: fenced code, numbers and options as strings."""
    kind = target.kind
    if not isinstance(value, str):
        return value
    if kind.name == "code":
        match = _FENCE.match(value)
        return match.group(1) + "\n" if match else value
    space = kind.space if isinstance(kind, SpaceKind) else None
    if isinstance(space, Choice):
        return next((o for o in space.options if str(o) == value.strip()), value)
    if kind.name in ("int", "float"):
        try:
            number = json.loads(value.strip())
        except ValueError:
            return value
        return number if isinstance(number, (int, float)) and not isinstance(number, bool) else value
    return value


def check(target: Param, value: Any) -> Any:
    """``value`` coerced and normalized for ``target``; ``ParamValidationError`` if it does not fit."""
    return target.validate(coerce(target, value))


def validate_reply(reply: BaseModel, params: Sequence[Param], names: Mapping[Param, str]
                   ) -> tuple[dict[Param, Any], dict[str, str]]:
    """The reply's values that fit their parameters and differ from the current ones, and the
    errors of those that do not fit, by parameter name."""
    values: dict[Param, Any] = {}
    errors: dict[str, str] = {}
    for index, target in enumerate(params):
        raw = getattr(reply, f"value_{index}")
        if raw is None:
            continue
        name = names[target]
        try:
            value = check(target, raw)
        except ParamValidationError as err:
            errors[name] = str(err)
            continue
        if not _same(value, target.value):
            values[target] = value
    return values, errors


def _same(value: Any, current: Any) -> bool:
    return type(value) is type(current) and value == current


def resend_message(errors: Mapping[str, str]) -> str:
    """The follow-up that quotes refused values' errors and asks for corrected ones."""
    lines = "\n".join(f"- {name}: {error}" for name, error in errors.items())
    return ("These suggested values were refused:\n" + lines
            + "\nReply again with the same JSON object, correcting the refused values "
              "(set a variable to null to keep its current value).")


def _screen(reply: BaseModel, params: Sequence[Param], names: Mapping[Param, str],
            scaffold: Scaffold | None) -> tuple[dict[Param, Any], dict[str, str], dict[str, str]]:
    """Valid values, invalid ones' errors, and echoes refused (dropped from the values)."""
    values, errors = validate_reply(reply, params, names)
    refused = refuse_echoes(values, names, scaffold)
    for name, why in refused.items():
        logger.info("suggested value for %r %s", name, why)
    return values, errors, refused


def ask(client: Client, messages: list[Message], params: Sequence[Param],
        names: Mapping[Param, str], *, partial: bool = False, resend: bool = True,
        scaffold: Scaffold | None = None, **request: Any) -> Verdict:
    """New values for ``params`` from one reply, plus one resend when some value is refused.

    ``partial=False`` keeps nothing unless every suggested value is valid. ``scaffold`` (default:
    read off ``messages``) refuses echoes of the prompt before anything evaluates them: they are
    dropped (the parameter keeps its value) and reported in ``errors`` with the reason. A reply
    that cannot be parsed after the client's own repair request yields no values and says why in
    ``reason``. ``request`` goes to ``complete_json`` (``max_tokens``, ``temperature``…).
    """
    schema = reply_schema(params, names, max_tokens=request.get("max_tokens"))
    if scaffold is None:
        scaffold = Scaffold.of(messages, names.values())
    try:
        reply = client.complete_json(messages, schema=schema, **request)
    except ReplyFormatError as err:
        return Verdict({}, {}, "", f"reply unusable: {err}", 1)
    values, errors, refused = _screen(reply, params, names, scaffold)
    requests = 1
    if (errors or refused) and resend:
        follow_up = [*messages,
                     {"role": "assistant", "content": reply.model_dump_json(by_alias=True)},
                     {"role": "user", "content": resend_message({**errors, **refused})}]
        requests += 1
        try:
            second = client.complete_json(follow_up, schema=schema, **request)
        except ReplyFormatError:
            second = None
        if second is not None:
            again, still, echoed = _screen(second, params, names, scaffold)
            values.update(again)
            settled = {names[t] for t in values}
            errors = {n: e for n, e in {**errors, **still}.items() if n not in settled}
            refused = {n: e for n, e in {**refused, **echoed}.items()
                       if n not in settled and n not in errors}
            reply = second
    reason = None
    if errors and not partial:
        reason = (f"{len(errors)} suggested value(s) stayed invalid after one resend and partial "
                  f"commits are off: nothing committed")
        values = {}
    elif not values:
        reason = ("every suggested value was refused as an echo of the prompt" if refused and not errors
                  else "every suggested value stayed invalid after one resend" if errors
                  else "no valid change suggested")
    return Verdict(values, {**errors, **refused}, reply.reasoning, reason,  # type: ignore[attr-defined]
                   requests)


__all__ = ["Verdict", "ask", "check", "coerce", "reply_schema", "resend_message", "validate_reply"]
