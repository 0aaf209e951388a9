import asyncio
from typing import Any, Callable

import pytest

from graphopt.errors import LLMError, PluginNotFoundError
from graphopt.llm import Client, TransientError, backends, get, usage_ledger
from graphopt.llm.retry import is_transient
from graphopt.plugins.manager import BUILTIN_PLUGINS, PluginManager


class RateLimitError(Exception):
    """Named like litellm's, as the retry rule matches names."""


class Status(Exception):
    def __init__(self, status_code: int) -> None:
        super().__init__(f"HTTP {status_code}")
        self.status_code = status_code


def failing(times: int, error: Exception) -> Callable[..., Any]:
    state = {"left": times}

    def handler(messages: list[dict[str, Any]], params: dict[str, Any]) -> Any:
        if state["left"] > 0:
            state["left"] -= 1
            return error
        return "ok"

    return handler


def test_prompt_string_becomes_one_user_message(client: Client, scripted: Any) -> None:
    client.complete("hi")
    assert scripted.created[0].calls[0][0] == [{"role": "user", "content": "hi"}]


def test_malformed_messages_are_refused(client: Client) -> None:
    with pytest.raises(TypeError, match="message 0 expects a dict with 'role' and 'content'"):
        client.complete([{"text": "hi"}])
    with pytest.raises(ValueError, match="at least one message"):
        client.complete([])


def test_transient_failures_are_retried(make_client: Callable[..., Client], scripted: Any) -> None:
    scripted.handler = failing(2, RateLimitError("slow down"))
    reply = make_client(retries=3).complete("hi")
    assert reply.text == "ok"
    assert len(scripted.created[0].calls) == 3


def test_exhausted_retries_raise_llm_error_naming_model_and_cause(
        make_client: Callable[..., Client], scripted: Any) -> None:
    scripted.handler = failing(10, TimeoutError("read timed out"))
    with pytest.raises(LLMError, match=r"model 'scripted/model' failed after 3 attempts: "
                                       r"TimeoutError: read timed out") as caught:
        make_client(retries=2).complete("hi")
    assert caught.value.model == "scripted/model"
    assert isinstance(caught.value.__cause__, TimeoutError)
    assert len(scripted.created[0].calls) == 3


def test_permanent_failure_is_not_retried(make_client: Callable[..., Client], scripted: Any) -> None:
    scripted.handler = failing(1, Status(401))
    with pytest.raises(LLMError, match="refused the credentials \\(401\\), not retried: Status: HTTP 401"):
        make_client(retries=5).complete("hi")
    assert len(scripted.created[0].calls) == 1


def test_async_retries(make_client: Callable[..., Client], scripted: Any) -> None:
    scripted.handler = failing(1, TransientError("overloaded"))
    assert asyncio.run(make_client().acomplete("hi")).text == "ok"
    assert len(scripted.created[0].calls) == 2


@pytest.mark.parametrize("error, transient", [
    (RateLimitError(), True), (Status(429), True), (Status(503), True), (ConnectionError(), True),
    (Status(400), False), (ValueError("bad"), False),
])
def test_transient_classification(error: Exception, transient: bool) -> None:
    assert is_transient(error) is transient


def test_threads_batch_keeps_order_and_bound(make_client: Callable[..., Client], scripted: Any) -> None:
    scripted.delay = 0.02
    client = make_client()
    replies = client.batch([f"q{i}" for i in range(20)], concurrency=4)
    assert [r.text for r in replies] == [f"Q{i}" for i in range(20)]
    backend = scripted.created[0]
    assert len(backend.calls) == 20
    assert 1 < backend.max_in_flight <= 4


def test_asyncio_gather_runs_concurrently(make_client: Callable[..., Client], scripted: Any) -> None:
    scripted.delay = 0.02
    client = make_client()

    async def run() -> list[Any]:
        return await asyncio.gather(*(client.acomplete(f"q{i}") for i in range(20)))

    replies = asyncio.run(run())
    assert [r.text for r in replies] == [f"Q{i}" for i in range(20)]
    assert scripted.created[0].max_in_flight == 20


def test_abatch_is_bounded(make_client: Callable[..., Client], scripted: Any) -> None:
    scripted.delay = 0.01
    replies = asyncio.run(make_client().abatch([f"q{i}" for i in range(12)], concurrency=3))
    assert [r.text for r in replies] == [f"Q{i}" for i in range(12)]
    assert scripted.created[0].max_in_flight == 3


def test_concurrent_identical_requests_share_one_cache_entry(client: Client) -> None:
    client.batch(["same"] * 8, concurrency=8)
    assert client.complete("same").cached
    assert len(client.cache) == 1  # type: ignore[arg-type]


def test_ledger_records_calls_with_tags(client: Client) -> None:
    ledger = usage_ledger()
    before = ledger.totals()
    tagged = client.with_tag("optoprime")
    tagged.complete("a b c")
    tagged.complete("a b c")
    client.complete("d", tag="eval")
    after = ledger.totals()
    assert after["calls"] - before["calls"] == 2
    assert after["cached_calls"] - before["cached_calls"] == 1
    last = list(ledger.records)[-3:]
    assert [(r.tag, r.cached) for r in last] == [("optoprime", False), ("optoprime", True),
                                                 ("eval", False)]
    assert last[0].completion_tokens == 3 and last[0].cost == pytest.approx(0.001)


def test_reply_latency_is_measured_by_client(client: Client) -> None:
    assert client.complete("x").latency > 0.0


def test_backend_receives_credentials_the_cache_key_does_not(
        make_client: Callable[..., Client], scripted: Any) -> None:
    make_client(api_key="sk-1", api_base="http://127.0.0.1:1/v1")
    assert scripted.configs[-1]["api_key"] == "sk-1"
    assert scripted.configs[-1]["settings"].model == "scripted/model"


def test_unknown_provider_without_litellm_fallback(plugin_manager: PluginManager) -> None:
    with pytest.raises(PluginNotFoundError, match="no llm backend named 'openai'"):
        get("openai/gpt-4o-mini", plugin_manager=plugin_manager)


@pytest.fixture
def builtin_manager() -> PluginManager:
    manager = PluginManager()
    manager.register(backends, name="graphopt.llm.backends")
    return manager


def test_builtin_plugin_resolves_local_and_litellm(builtin_manager: PluginManager) -> None:
    manager = builtin_manager
    local = get("local/smollm2", plugin_manager=manager)
    hosted = get("openai/gpt-4o-mini", plugin_manager=manager, api_key="sk-x")
    assert type(local.backend).__name__ == "LocalBackend"
    assert type(hosted.backend).__name__ == "LiteLLMBackend"
    assert hosted.backend.options == {"api_key": "sk-x"}


def test_unknown_local_model_is_refused(builtin_manager: PluginManager) -> None:
    with pytest.raises(LLMError, match="local provider has no model 'gpt2'; expected one of local/smollm2"):
        get("local/gpt2", plugin_manager=builtin_manager)


def test_builtin_backends_are_listed_in_builtin_plugins() -> None:
    assert "graphopt.llm.backends" in BUILTIN_PLUGINS
