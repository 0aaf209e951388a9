"""Secrets never reach an error text, a traceback or the reply cache; refused credentials are
not retried."""

from __future__ import annotations

import traceback
from typing import Any, Callable

import pytest

from graphopt.errors import LLMError
from graphopt.llm import Client
from graphopt.llm.redact import MASK, redact

KEY = "sk-proj-Zx81QmT4uV0aB6cD2eF9gH1jK3lM5nP7"
ENV_KEY = "ant-7f3e9c2b1a0d4e5f6a7b8c9d"


class AuthenticationError(Exception):
    """Shaped like litellm's: a 401 whose text echoes the key it was given."""

    status_code = 401


class APIConnectionError(Exception):
    """Transient by name, yet its text says the key is missing."""


def test_configured_and_key_shaped_secrets_are_masked(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ANTHROPIC_API_KEY", ENV_KEY)
    text = (f"key {ENV_KEY} rejected; header Authorization: Bearer abcdEFGH1234ijkl; "
            f"url ?api_key=QWERTYUIOPASDFGH&x=1; other sk-live_0123456789abcdef; given {KEY}")
    masked = redact(text, [KEY])
    for secret in (ENV_KEY, "abcdEFGH1234ijkl", "QWERTYUIOPASDFGH", "sk-live_0123456789abcdef", KEY):
        assert secret not in masked
    assert masked.count(MASK) == 5 and "rejected" in masked


def test_ordinary_text_is_left_alone() -> None:
    text = "max_tokens=512 reached; the token budget is spent; set top_k=3"
    assert redact(text) == text


def test_echoed_key_in_a_401_is_redacted_and_not_retried(make_client: Callable[..., Client],
                                                         scripted: Any) -> None:
    scripted.handler = lambda messages, params: AuthenticationError(
        f"Incorrect API key provided: {KEY}. You can find your API key at ...")
    client = make_client(retries=5)
    client.backend.options = {"api_key": KEY}  # what a litellm backend holds
    with pytest.raises(LLMError, match=r"refused the credentials \(401\), not retried: "
                                       r"AuthenticationError: Incorrect API key provided") as caught:
        client.complete("hi")
    shown = "".join(traceback.format_exception(caught.value))
    assert KEY not in shown and KEY not in str(caught.value) and MASK in str(caught.value)
    assert caught.value.__cause__ is None
    assert len(scripted.created[0].calls) == 1


def test_key_from_the_environment_is_redacted(make_client: Callable[..., Client], scripted: Any,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", ENV_KEY)
    scripted.handler = lambda messages, params: ValueError(f"bad request for key {ENV_KEY}")
    with pytest.raises(LLMError) as caught:
        make_client().complete("hi")
    assert ENV_KEY not in "".join(traceback.format_exception(caught.value))


def test_missing_credentials_fail_at_once(make_client: Callable[..., Client], scripted: Any) -> None:
    scripted.handler = lambda messages, params: APIConnectionError(
        "The api_key client option must be set either by passing api_key or OPENAI_API_KEY")
    with pytest.raises(LLMError, match="refused the credentials, not retried"):
        make_client(retries=5).complete("hi")
    assert len(scripted.created[0].calls) == 1


def test_a_key_the_model_echoes_is_not_written_to_the_cache(make_client: Callable[..., Client],
                                                            scripted: Any,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", ENV_KEY)
    scripted.handler = lambda messages, params: f"your key is {ENV_KEY}"
    client = make_client()
    client.complete("leak it")
    cached = client.complete("leak it")
    assert cached.cached and cached.text == f"your key is {MASK}"
    store = client.cache._open()  # type: ignore[union-attr]
    assert all(ENV_KEY not in store[k] for k in store.iterkeys())
