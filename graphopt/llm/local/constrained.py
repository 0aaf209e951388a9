"""Constrained decoding for the local model: only tokens that keep the reply valid JSON may follow.

The 135M model rarely writes parseable JSON unaided. ``lm-format-enforcer`` turns a JSON schema
into a ``prefix_allowed_tokens_fn`` for ``generate``; the tokenizer's token table is built once
per tokenizer (about a second) and reused.
"""

from __future__ import annotations

import functools
import threading
from typing import Any, Callable

_tables: dict[int, Any] = {}
_tables_lock = threading.Lock()

AllowedTokens = Callable[[int, Any], list[int]]


def json_schema_of(response_format: Any) -> tuple[bool, dict[str, Any] | None]:
    """``(wants_json, schema)`` from an OpenAI-style ``response_format`` or a pydantic class.

    ``{"type": "json_object"}`` wants any JSON object (schema ``None``); ``{"type": "json_schema",
    "json_schema": {"schema": ...}}`` wants that schema; ``{"type": "text"}`` or ``None`` wants text.
    """
    if response_format is None:
        return False, None
    schema_of = getattr(response_format, "model_json_schema", None)
    if callable(schema_of):
        return True, schema_of()
    if not isinstance(response_format, dict):
        raise ValueError(f"response_format expects a dict or a pydantic model class, got "
                         f"{type(response_format).__name__}")
    kind = response_format.get("type")
    if kind == "json_object":
        return True, response_format.get("schema") or {"type": "object"}
    if kind == "json_schema":
        spec = response_format.get("json_schema") or {}
        schema = spec.get("schema") if isinstance(spec, dict) else None
        return True, schema or {"type": "object"}
    if kind in (None, "text"):
        return False, None
    raise ValueError(f"response_format type expects 'text', 'json_object' or 'json_schema', got {kind!r}")


def _decode(tokenizer: Any, tokens: list[int]) -> str:
    # A token sequence may end inside a multi-byte character; the enforcer wants whole ones.
    return tokenizer.decode(tokens).rstrip("\ufffd")


def build_tokenizer_table(tokenizer: Any) -> Any:
    """lm-format-enforcer's view of a transformers tokenizer: each regular token's text.

    A token's text is read after an anchor token, so a leading space (a word start) survives
    decoding; lm-format-enforcer's own transformers helper predates transformers 5.
    """
    from lmformatenforcer import TokenEnforcerTokenizerData

    anchor = tokenizer.encode("0", add_special_tokens=False)[-1]
    offset = len(tokenizer.decode([anchor]))
    special = set(tokenizer.all_special_ids)
    ids = [i for i in range(len(tokenizer)) if i not in special]
    alone = tokenizer.batch_decode([[i] for i in ids])
    anchored = tokenizer.batch_decode([[anchor, i] for i in ids])
    regular = [(i, text[offset:], len(text) - offset > len(single))
               for i, single, text in zip(ids, alone, anchored)]
    return TokenEnforcerTokenizerData(regular, functools.partial(_decode, tokenizer),
                                      tokenizer.eos_token_id, False, len(tokenizer))


def _tokenizer_table(tokenizer: Any) -> Any:
    with _tables_lock:
        table = _tables.get(id(tokenizer))
        if table is None:
            table = _tables[id(tokenizer)] = build_tokenizer_table(tokenizer)
        return table


class _AllowedTokens:
    """``prefix_allowed_tokens_fn`` for ``generate``: the tokens the parser accepts next."""

    __slots__ = ("enforcer",)

    def __init__(self, enforcer: Any) -> None:
        self.enforcer = enforcer

    def __call__(self, batch_id: int, sequence: Any) -> list[int]:
        return self.enforcer.get_allowed_tokens(sequence.tolist()).allowed_tokens


def allowed_tokens_fn(tokenizer: Any, schema: dict[str, Any] | None) -> AllowedTokens:
    """A ``prefix_allowed_tokens_fn`` keeping each generated row inside ``schema``."""
    from lmformatenforcer import JsonSchemaParser, TokenEnforcer

    return _AllowedTokens(TokenEnforcer(_tokenizer_table(tokenizer), JsonSchemaParser(schema)))
