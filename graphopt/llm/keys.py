"""Cache keys: sha256 of the canonical JSON of everything that shapes a reply, and nothing secret.

The key covers provider, resolved api_base, model, messages, sampling params and seed / rollout
id. Credentials (api keys, tokens, headers) and transport settings (timeouts, retries,
streaming) never enter it; an api_base loses its user info and query string, where keys hide.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from typing import Any
from urllib.parse import urlsplit, urlunsplit

KEY_VERSION = 1

# Settings that change how a request travels, not what comes back.
_TRANSPORT = frozenset({
    "timeout", "request_timeout", "num_retries", "max_retries", "stream", "stream_options",
    "metadata", "user", "logger_fn", "mock_response", "api_base", "base_url", "api_version",
    "extra_headers", "headers", "caching", "cache",
})
# Any parameter whose name says it is a credential.
_SECRET = re.compile(r"(^|_)(api_?key|key|secret|password|token|credentials?|auth\w*)($|_)", re.I)


def is_secret(name: str) -> bool:
    """Whether a parameter name denotes a credential (``max_tokens`` does not)."""
    return bool(_SECRET.search(name))


def canonical_json(value: Any) -> str:
    """Sorted keys, no spaces, UTF-8 kept, NaN refused: the same request gives the same text."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                      allow_nan=False, default=_jsonable)


def _jsonable(value: Any) -> Any:
    dump = getattr(value, "model_json_schema", None)  # a pydantic class as response_format
    if callable(dump):
        return {"json_schema": dump()}
    if isinstance(value, (set, frozenset, tuple)):
        return list(value)
    raise TypeError(f"cache key: {type(value).__name__} value {value!r} is not JSON-serializable")


def strip_url_secrets(url: str | None) -> str | None:
    """``url`` without user info, query or fragment, and without a trailing slash."""
    if not url:
        return None
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    return urlunsplit((parts.scheme, host, parts.path.rstrip("/"), "", ""))


def resolve_api_base(provider: str, params: dict[str, Any]) -> str | None:
    """The endpoint the request will reach: an explicit one, else the provider's env variable."""
    explicit = params.get("api_base") or params.get("base_url")
    if explicit:
        return strip_url_secrets(str(explicit))
    prefix = re.sub(r"\W", "_", provider).upper()
    for variable in (f"{prefix}_API_BASE", f"{prefix}_BASE_URL"):
        if os.environ.get(variable):
            return strip_url_secrets(os.environ[variable])
    return None


def sampling_params(params: dict[str, Any]) -> dict[str, Any]:
    """The params that shape the reply: all but transport settings and credentials."""
    return {name: value for name, value in params.items()
            if name not in _TRANSPORT and not is_secret(name) and value is not None}


def cache_key(*, provider: str, model: str, messages: list[dict[str, Any]], params: dict[str, Any],
              rollout_id: str | int | None = None) -> str:
    """The sha256 hex digest naming one request in the cache."""
    sampled = sampling_params(params)
    request = {
        "v": KEY_VERSION,
        "provider": provider,
        "api_base": resolve_api_base(provider, params),
        "model": model,
        "messages": messages,
        "params": sampled,
        "seed": sampled.pop("seed", None),
        "rollout_id": rollout_id,
    }
    return hashlib.sha256(canonical_json(request).encode("utf-8")).hexdigest()
