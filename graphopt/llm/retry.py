"""Retries with exponential backoff for transient failures; the last failure becomes ``LLMError``.

Refused credentials (401/403, a missing key) fail at once: retrying cannot fix them. The error's
text is redacted (``graphopt.llm.redact``) and the provider's exception is not chained, since its
own text may echo the key.
"""

from __future__ import annotations

import asyncio
import random
import re
import time
from typing import Awaitable, Callable, Iterable, TypeVar

from graphopt.errors import GraphoptError, LLMError
from graphopt.llm.redact import redact

T = TypeVar("T")

# litellm's transient exceptions, by name, so this module never imports litellm.
_TRANSIENT_NAMES = frozenset({
    "RateLimitError", "Timeout", "APITimeoutError", "APIConnectionError",
    "ServiceUnavailableError", "InternalServerError", "BadGatewayError",
})
_TRANSIENT_STATUS = frozenset({408, 409, 425, 429, 500, 502, 503, 504})


class TransientError(Exception):
    """Raised by a backend for a failure worth retrying (rate limit, timeout, overload)."""


def is_transient(err: BaseException) -> bool:
    """Whether ``err`` is worth another try: timeouts, lost connections, 429 and 5xx answers."""
    if isinstance(err, (TransientError, TimeoutError, ConnectionError)):
        return True
    if any(cls.__name__ in _TRANSIENT_NAMES for cls in type(err).__mro__):
        return True
    return getattr(err, "status_code", None) in _TRANSIENT_STATUS


_AUTH_NAMES = frozenset({"AuthenticationError", "PermissionDeniedError"})
_AUTH_STATUS = frozenset({401, 403})
_MISSING_KEY = re.compile(
    r"(api[_ ]?key|credentials?|auth\w*)\b.{0,40}\b(missing|(must be|is not|not) (set|found|"
    r"provided|configured)|required|invalid|incorrect)"
    r"|\b(missing|no|invalid|incorrect)\b.{0,20}(api[_ ]?key|credentials?)", re.I)


def is_auth_error(err: BaseException) -> bool:
    """Whether ``err`` says the credentials were refused or are missing (never worth a retry)."""
    if any(cls.__name__ in _AUTH_NAMES for cls in type(err).__mro__):
        return True
    if getattr(err, "status_code", None) in _AUTH_STATUS:
        return True
    return bool(_MISSING_KEY.search(str(err)))


def delay(attempt: int, backoff: float) -> float:
    """Seconds to wait before retry ``attempt`` (1-based): doubling, with up to 25% jitter."""
    base = backoff * 2 ** (attempt - 1)
    return base + random.uniform(0.0, base / 4)


def _failure(model: str, attempts: int, err: BaseException, secrets: Iterable[str]) -> LLMError:
    detail = redact(f"{type(err).__name__}: {err}", secrets)
    if is_auth_error(err):
        status = getattr(err, "status_code", None)
        code = f" ({status})" if status else ""
        return LLMError(f"model {model!r} refused the credentials{code}, not retried: {detail}",
                        model=model)
    tries = "1 attempt" if attempts == 1 else f"{attempts} attempts"
    return LLMError(f"model {model!r} failed after {tries}: {detail}", model=model)


def _cause(err: Exception, secrets: Iterable[str]) -> Exception | None:
    """``err`` to chain, or ``None`` when its text holds a secret (a chained cause is printed)."""
    text = f"{type(err).__name__}: {err}"
    return err if redact(text, secrets) == text else None


def call_with_retries(call: Callable[[], T], *, model: str, retries: int, backoff: float,
                      secrets: Iterable[str] = ()) -> T:
    """``call()``, retried up to ``retries`` times on transient errors; else ``LLMError``."""
    attempt = 0
    while True:
        attempt += 1
        try:
            return call()
        except GraphoptError:
            raise
        except Exception as err:
            if is_auth_error(err) or not is_transient(err) or attempt > retries:
                raise _failure(model, attempt, err, secrets) from _cause(err, secrets)
        time.sleep(delay(attempt, backoff))


async def acall_with_retries(call: Callable[[], Awaitable[T]], *, model: str, retries: int,
                             backoff: float, secrets: Iterable[str] = ()) -> T:
    """The async twin of ``call_with_retries``."""
    attempt = 0
    while True:
        attempt += 1
        try:
            return await call()
        except GraphoptError:
            raise
        except Exception as err:
            if is_auth_error(err) or not is_transient(err) or attempt > retries:
                raise _failure(model, attempt, err, secrets) from _cause(err, secrets)
        await asyncio.sleep(delay(attempt, backoff))
