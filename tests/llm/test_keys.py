import pytest

from graphopt.llm.keys import cache_key, canonical_json, is_secret, resolve_api_base, strip_url_secrets

MESSAGES = [{"role": "user", "content": "hi"}]


def key(**changes: object) -> str:
    request: dict = {"provider": "openai", "model": "openai/gpt-4o-mini", "messages": MESSAGES,
                     "params": {"temperature": 0.0, "max_tokens": 10}}
    request.update(changes)
    return cache_key(**request)


def test_key_is_sha256_hex_and_stable() -> None:
    assert key() == key()
    assert len(key()) == 64 and int(key(), 16) >= 0


def test_param_order_does_not_matter() -> None:
    assert key(params={"max_tokens": 10, "temperature": 0.0}) == key()


@pytest.mark.parametrize("change", [
    {"model": "openai/gpt-4o"},
    {"provider": "anthropic"},
    {"messages": [{"role": "user", "content": "hello"}]},
    {"params": {"temperature": 0.0, "max_tokens": 11}},
    {"params": {"temperature": 0.0, "max_tokens": 10, "seed": 1}},
    {"params": {"temperature": 0.0, "max_tokens": 10, "api_base": "http://127.0.0.1:9/v1"}},
    {"rollout_id": 3},
])
def test_anything_that_shapes_the_reply_changes_the_key(change: dict) -> None:
    assert key(**change) != key()


@pytest.mark.parametrize("extra", [
    {"api_key": "sk-secret"}, {"aws_secret_access_key": "x"}, {"azure_ad_token": "t"},
    {"extra_headers": {"Authorization": "Bearer x"}}, {"timeout": 30}, {"num_retries": 2},
    {"stream": True},
])
def test_secrets_and_transport_settings_are_not_in_the_key(extra: dict) -> None:
    assert key(params={"temperature": 0.0, "max_tokens": 10, **extra}) == key()


def test_secret_names() -> None:
    assert all(is_secret(n) for n in ("api_key", "apikey", "vertex_credentials", "password",
                                      "azure_ad_token", "authorization"))
    assert not any(is_secret(n) for n in ("max_tokens", "top_k", "temperature", "seed", "monkey"))


def test_api_base_loses_user_info_and_query() -> None:
    assert strip_url_secrets("https://user:pw@api.example.com:8443/v1/?key=abc") == \
        "https://api.example.com:8443/v1"
    assert key(params={"temperature": 0.0, "max_tokens": 10, "api_base": "http://h/v1?key=1"}) == \
        key(params={"temperature": 0.0, "max_tokens": 10, "api_base": "http://h/v1/?key=2"})


def test_api_base_resolved_from_provider_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    before = key()
    monkeypatch.setenv("OPENAI_API_BASE", "http://127.0.0.1:8000/v1")
    assert resolve_api_base("openai", {}) == "http://127.0.0.1:8000/v1"
    assert key() != before


def test_canonical_json_is_compact_sorted_and_refuses_nan() -> None:
    assert canonical_json({"b": 1, "a": "é"}) == '{"a":"é","b":1}'
    with pytest.raises(ValueError):
        canonical_json({"x": float("nan")})
    with pytest.raises(TypeError, match="not JSON-serializable"):
        canonical_json({"x": object()})
