"""Constrained decoding for the local model: only tokens that keep the reply valid JSON may follow.

The 135M model rarely writes parseable JSON unaided. ``lm-format-enforcer`` turns a JSON schema
into a ``prefix_allowed_tokens_fn`` for ``generate``; the tokenizer's token table is built once
per tokenizer (about a second) and reused.
"""

from __future__ import annotations

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


def _tokenizer_table(tokenizer: Any) -> Any:
    from lmformatenforcer.integrations.transformers import build_token_enforcer_tokenizer_data

    with _tables_lock:
        table = _tables.get(id(tokenizer))
        if table is None:
            table = _tables[id(tokenizer)] = build_token_enforcer_tokenizer_data(tokenizer)
        return table


def allowed_tokens_fn(tokenizer: Any, schema: dict[str, Any] | None) -> AllowedTokens:
    """A ``prefix_allowed_tokens_fn`` keeping each generated row inside ``schema``."""
    from lmformatenforcer import JsonSchemaParser
    from lmformatenforcer.integrations.transformers import build_transformers_prefix_allowed_tokens_fn

    return build_transformers_prefix_allowed_tokens_fn(_tokenizer_table(tokenizer),
                                                       JsonSchemaParser(schema))
