"""The embedded model's costs: load from GGUF vs the safetensors cache, cold vs warm 20 requests,
and tokens per second alone and in a batch of 8. Run with ``make bench`` (never part of the tests).

Figures land in each benchmark's ``extra_info`` (``--benchmark-json``) as well as the table.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from graphopt.llm import Client, backends, get
from graphopt.llm.local import weights
from graphopt.llm.local.runtime import configure_threads
from graphopt.llm.config import load_settings
from graphopt.plugins.manager import PluginManager

PROMPTS = [f"Write one short sentence about the number {i}." for i in range(20)]


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("bench-llm")


@pytest.fixture(scope="module")
def client(root: Path) -> Client:
    manager = PluginManager()
    manager.register(backends, name="graphopt.llm.backends")
    client = get("local/smollm2", cache_dir=root, plugin_manager=manager)
    return client


def test_load_from_gguf(benchmark: Any, root: Path) -> None:
    configure_threads(load_settings())
    loaded = benchmark.pedantic(weights.load, args=(root / "models",), rounds=1, iterations=1)
    assert loaded.source == "gguf"
    benchmark.extra_info["seconds"] = loaded.seconds


def test_load_from_safetensors_cache(benchmark: Any, root: Path) -> None:
    loaded = benchmark.pedantic(weights.load, args=(root / "models",), rounds=3, iterations=1)
    assert loaded.source == "safetensors"
    benchmark.extra_info["seconds"] = loaded.seconds


def test_cold_cache_20_requests(benchmark: Any, client: Client) -> None:
    client.backend.engine  # loaded outside the timing
    replies = benchmark.pedantic(client.batch, args=(PROMPTS,), kwargs={"max_tokens": 16},
                                 rounds=1, iterations=1)
    assert not any(reply.cached for reply in replies)
    benchmark.extra_info["completion_tokens"] = sum(r.usage.completion_tokens for r in replies)


def test_warm_cache_20_requests(benchmark: Any, client: Client) -> None:
    calls = client.backend.engine.generate_calls
    replies = benchmark.pedantic(client.batch, args=(PROMPTS,), kwargs={"max_tokens": 16},
                                 rounds=5, iterations=1)
    assert all(reply.cached for reply in replies)
    assert client.backend.engine.generate_calls == calls


def _tokens_per_second(benchmark: Any, client: Client, requests: int) -> None:
    prompts = [f"Tell a short story about a robot named R{i}." for i in range(requests)]
    replies = benchmark.pedantic(client.batch, args=(prompts,),
                                 kwargs={"max_tokens": 64, "cache": False, "concurrency": requests},
                                 rounds=1, iterations=1)
    tokens = sum(r.usage.completion_tokens for r in replies)
    benchmark.extra_info["completion_tokens"] = tokens
    benchmark.extra_info["tokens_per_second"] = tokens / benchmark.stats.stats.mean


def test_tokens_per_second_one_request(benchmark: Any, client: Client) -> None:
    _tokens_per_second(benchmark, client, 1)


def test_tokens_per_second_batch_of_8(benchmark: Any, client: Client) -> None:
    _tokens_per_second(benchmark, client, 8)
