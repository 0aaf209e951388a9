"""Retries with exponential backoff for transient failures; the last failure becomes ``LLMError``."""

from __future__ import annotations

import asyncio
import random
import time
from typing import Awaitable, Callable, TypeVar

from graphopt.errors import GraphoptError, LLMError

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


def delay(attempt: int, backoff: float) -> float:
    """Seconds to wait before retry ``attempt`` (1-based): doubling, with up to 25% jitter."""
    base = backoff * 2 ** (attempt - 1)
    return base + random.uniform(0.0, base / 4)


def _failure(model: str, attempts: int, err: BaseException) -> LLMError:
    tries = "1 attempt" if attempts == 1 else f"{attempts} attempts"
    return LLMError(f"model {model!r} failed after {tries}: {type(err).__name__}: {err}", model=model)


def call_with_retries(call: Callable[[], T], *, model: str, retries: int, backoff: float) -> T:
    """``call()``, retried up to ``retries`` times on transient errors; else ``LLMError``."""
    attempt = 0
    while True:
        attempt += 1
        try:
            return call()
        except GraphoptError:
            raise
        except Exception as err:
            if not is_transient(err) or attempt > retries:
                raise _failure(model, attempt, err) from err
        time.sleep(delay(attempt, backoff))


async def acall_with_retries(call: Callable[[], Awaitable[T]], *, model: str, retries: int,
                             backoff: float) -> T:
    """The async twin of ``call_with_retries``."""
    attempt = 0
    while True:
        attempt += 1
        try:
            return await call()
        except GraphoptError:
            raise
        except Exception as err:
            if not is_transient(err) or attempt > retries:
                raise _failure(model, attempt, err) from err
        await asyncio.sleep(delay(attempt, backoff))
