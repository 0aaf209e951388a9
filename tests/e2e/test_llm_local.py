"""The embedded model for real: the client, litellm's custom provider, and the local HTTP server.

The model is loaded once for the module (converted from the GGUF into this run's cache
directory); every request asks for a few tokens so the module stays within a few minutes on two
CPU cores.
"""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path
from typing import Any, Iterator

import pytest
from pydantic import BaseModel

from graphopt.llm import Client, backends, get, stats
from graphopt.llm.litellm_env import load_litellm
from graphopt.llm.serve import LocalServer, make_server
from graphopt.plugins.manager import PluginManager

pytestmark = pytest.mark.slow

QUESTION = [{"role": "user", "content": "What is the capital of France? Answer in one word."}]


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """This run's cache root, also in ``$GRAPHOPT_CACHE_DIR`` for litellm's provider path."""
    directory = tmp_path_factory.mktemp("graphopt-cache")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("GRAPHOPT_CACHE_DIR", str(directory))
        yield directory


@pytest.fixture(scope="module")
def local(cache_dir: Path) -> Client:
    manager = PluginManager()
    manager.register(backends, name="graphopt.llm.backends")
    client = get("local/smollm2", cache_dir=cache_dir, plugin_manager=manager)
    client.backend.engine  # load once, here, so test timings are about generation
    return client


@pytest.fixture(scope="module")
def litellm(local: Client) -> Any:
    return load_litellm()


def test_model_was_converted_to_a_safetensors_cache(local: Client, cache_dir: Path) -> None:
    converted = list((cache_dir / "models").glob("smollm2-*-bf16"))
    assert len(converted) == 1
    assert (converted[0] / "model.safetensors").stat().st_size > 100_000_000
    assert not list((cache_dir / "models").glob(".*.tmp"))


def test_generation_through_the_client(local: Client) -> None:
    reply = local.complete(QUESTION, max_tokens=12)
    assert "paris" in reply.text.lower()
    assert reply.model == "local/smollm2" and reply.cost == 0.0
    assert reply.usage.prompt_tokens > 10 and 0 < reply.usage.completion_tokens <= 12


def test_concurrent_requests_share_a_batch(local: Client) -> None:
    engine = local.backend.engine
    before = engine.generate_calls
    prompts = [f"Name a color. Number {i}." for i in range(4)]
    replies = asyncio.run(local.abatch(prompts, max_tokens=4, cache=False))
    assert all(reply.text for reply in replies)
    assert engine.generate_calls - before <= 2


def test_warm_cache_rerun_makes_zero_model_calls(local: Client) -> None:
    prompts = [f"Say the word {word}." for word in ("apple", "river", "cloud")]
    cold = local.batch(prompts, max_tokens=6)
    engine = local.backend.engine
    calls, hits = engine.generate_calls, stats().hits
    warm = local.batch(prompts, max_tokens=6)
    assert engine.generate_calls == calls
    assert all(reply.cached for reply in warm) and stats().hits - hits == 3
    assert [r.text for r in warm] == [r.text for r in cold]


class City(BaseModel):
    city: str
    country: str


def test_structured_reply_through_constrained_decoding(local: Client) -> None:
    answer = local.complete_json("Where is the Eiffel Tower? Give the city and the country.",
                                 schema=City, max_tokens=40)
    assert isinstance(answer, City) and answer.city and answer.country


class Essay(BaseModel):
    title: str
    essay: str


@pytest.mark.parametrize("max_tokens", [16, 40])
def test_constrained_reply_closes_its_json_within_max_tokens(local: Client, max_tokens: int) -> None:
    # Asked for a long essay in a small budget, the model would write inside "essay" until the
    # budget ran out; the decoder closes the value in time instead.
    reply = local.complete("Write a very long essay about the sea, in JSON.", max_tokens=max_tokens,
                           response_format=Essay, cache=False)
    assert reply.usage.completion_tokens <= max_tokens
    assert Essay.model_validate_json(reply.text).title


def test_litellm_completion_sync_async_and_streaming(litellm: Any) -> None:
    response = litellm.completion(model="local/smollm2", messages=QUESTION, max_tokens=12)
    assert response.model == "local/smollm2"
    assert "paris" in response.choices[0].message.content.lower()
    assert response.usage.completion_tokens > 0

    other = [{"role": "user", "content": "Say hello."}]
    response = asyncio.run(litellm.acompletion(model="local/smollm2", messages=other, max_tokens=6))
    assert response.choices[0].message.content

    pieces = [chunk.choices[0].delta.content or "" for chunk in
              litellm.completion(model="local/smollm2", messages=other, max_tokens=6, stream=True)]
    assert len(pieces) >= 2 and "".join(pieces).strip()


@pytest.fixture(scope="module")
def server(local: Client) -> Iterator[LocalServer]:
    server = make_server(port=0, client=local)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def test_local_http_server_through_litellm_http_client(litellm: Any, server: LocalServer) -> None:
    response = litellm.completion(model="openai/smollm2", api_base=server.url, api_key="sk-local",
                                  messages=QUESTION, max_tokens=12)
    assert "paris" in response.choices[0].message.content.lower()
    assert response.usage.prompt_tokens > 10

    stream = litellm.completion(model="openai/smollm2", api_base=server.url, api_key="sk-local",
                                messages=[{"role": "user", "content": "Say hi."}], max_tokens=6,
                                stream=True)
    text = "".join(chunk.choices[0].delta.content or "" for chunk in stream)
    assert text.strip()
