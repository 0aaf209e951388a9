"""Secrets out of error texts: configured keys and anything shaped like one, replaced before
a text is printed, cached or written.

Configured keys are the values of environment variables whose names say they are credentials
(``OPENAI_API_KEY``, ``HF_TOKEN``…) and the credentials a backend was given (``api_key=``).
Shapes: ``sk-…`` keys, ``Bearer`` tokens, well-known key prefixes, and long key-like strings
after ``api_key=``, ``token:`` and the like.
"""

from __future__ import annotations

import os
import re
from typing import Any, Iterable, Mapping

from graphopt.llm.keys import is_secret

MASK = "[redacted]"
# Shorter values are too likely to be ordinary words to be replaced wherever they appear.
MIN_SECRET_CHARS = 8

_SHAPES = re.compile(
    r"(?:sk|pk|rk)-[A-Za-z0-9_\-]{8,}"            # OpenAI, Anthropic (sk-ant-…), Stripe-like
    r"|AIza[0-9A-Za-z_\-]{20,}"                    # Google
    r"|AKIA[0-9A-Z]{16}"                           # AWS access key id
    r"|gh[pousr]_[A-Za-z0-9]{20,}"                 # GitHub
    r"|hf_[A-Za-z0-9]{20,}"                        # Hugging Face
    r"|xox[abprs]-[A-Za-z0-9\-]{10,}"              # Slack
    r"|eyJ[A-Za-z0-9_\-]{10,}\.[A-Za-z0-9_\-]{10,}\.[A-Za-z0-9_\-]*"  # JWT
)
_BEARER = re.compile(r"(\b(?:Bearer|Basic|Token)\s+)[A-Za-z0-9._~+/=\-]{8,}", re.I)
_ASSIGNED = re.compile(
    r"""((?:api[_-]?key|x-api-key|access[_-]?token|auth[_-]?token|token|secret|password|passwd|"""
    r"""authorization|credentials?)["']?\s*[:=]\s*["']?)([^\s"',;&}]{8,})""", re.I)


def configured_secrets(options: Mapping[str, Any] | None = None) -> set[str]:
    """The credential values in the environment and in a backend's ``options``."""
    found = {value for name, value in os.environ.items() if is_secret(name)}
    for name, value in (options or {}).items():
        if isinstance(value, str) and is_secret(name):
            found.add(value)
    return {value for value in found if len(value) >= MIN_SECRET_CHARS}


def mask_known(text: str, secrets: Iterable[str] = ()) -> str:
    """``text`` with every configured or given secret masked (shapes left alone: for replies,
    where code may well say ``token = ...``)."""
    known = configured_secrets() | {s for s in secrets if s and len(s) >= MIN_SECRET_CHARS}
    for secret in sorted(known, key=len, reverse=True):  # a key containing another goes first
        if secret in text:
            text = text.replace(secret, MASK)
    return text


def redact(text: str, secrets: Iterable[str] = ()) -> str:
    """``text`` with every configured or given secret, and every key-shaped string, masked."""
    text = _SHAPES.sub(MASK, mask_known(text, secrets))
    text = _BEARER.sub(lambda m: m.group(1) + MASK, text)
    return _ASSIGNED.sub(lambda m: m.group(1) + MASK, text)


def backend_secrets(backend: Any) -> set[str]:
    """The credentials a backend holds in its ``options`` (a litellm backend's ``api_key``)."""
    options = getattr(backend, "options", None)
    return configured_secrets(options if isinstance(options, Mapping) else None)


__all__ = ["MASK", "backend_secrets", "configured_secrets", "mask_known", "redact"]
