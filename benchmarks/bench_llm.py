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


# -- prefix caching and the demo's request shapes ----------------------------------------------
SYSTEM = ("You label customer reviews. Read the review and answer with one word, positive or "
          "negative, and nothing else. A review that praises the product is positive; one that "
          "complains about it is negative.")
SHOTS = "".join(f"Review: {text}\nSentiment: {label}\n\n" for text, label in [
    ("Absolutely loved it, the battery lasts for days.", "positive"),
    ("Stopped working after two days, total waste of money.", "negative"),
    ("Great value and it arrived early.", "positive")])
REVIEWS = ["The zipper broke on the first day.", "Crisp screen, smooth performance.",
           "Customer service never answered my emails.", "My kids adore this game.",
           "The colours faded after one wash.", "Comfortable and well made.",
           "Arrived damaged and late.", "Best purchase this year."]


def shared_prefix_messages() -> list[list[dict[str, str]]]:
    """Eight labelling prompts sharing a system prompt and three examples (the demo's shape)."""
    return [[{"role": "system", "content": SYSTEM},
             {"role": "user", "content": f"{SHOTS}Review: {review}\nSentiment:"}] for review in REVIEWS]


def run_batch(engine: Any, messages: list[list[dict[str, str]]], max_tokens: int) -> list[Any]:
    futures = [engine.submit(m, max_tokens=max_tokens) for m in messages]
    return [f.result() for f in futures]


@pytest.mark.parametrize("prefix_cache", ["off", "on"])
def test_shared_prefix_batch_of_8(benchmark: Any, client: Client, prefix_cache: str) -> None:
    from graphopt.llm.local.engine import Engine

    loaded = client.backend.engine
    engine = Engine(loaded.model, loaded.tokenizer, batch_wait_ms=100,
                    prefix_cache_tokens=8192 if prefix_cache == "on" else 0)
    replies = benchmark.pedantic(run_batch, args=(engine, shared_prefix_messages(), 4),
                                 rounds=3, iterations=1, warmup_rounds=1)
    assert len(replies) == 8 and engine.generate_calls == 4
    if engine.prefixes is not None:
        benchmark.extra_info["reused_tokens"] = engine.prefixes.reused_tokens


def main() -> None:
    """Tokens per second alone and batched, and a shared-prefix batch with prefix caching off and
    on, on the embedded model (each figure the median of three runs, in this process)."""
    import statistics
    import tempfile
    import time

    from graphopt.llm.local.engine import Engine

    configure_threads(load_settings())
    loaded = weights.load(Path(tempfile.gettempdir()) / "graphopt-bench-llm" / "models")
    engines = {name: Engine(loaded.model, loaded.tokenizer, batch_wait_ms=100,
                            prefix_cache_tokens=tokens) for name, tokens in (("off", 0), ("on", 8192))}

    def timed(function: Any) -> tuple[float, Any]:
        runs = []
        for _ in range(3):
            started = time.perf_counter()
            result = function()
            runs.append(time.perf_counter() - started)
        return statistics.median(runs), result

    stories = [[{"role": "user", "content": f"Tell a short story about a robot named R{i}."}]
               for i in range(8)]
    for name, requests in (("one request", stories[:1]), ("batch of 8", stories)):
        seconds, replies = timed(lambda: run_batch(engines["off"], requests, 64))
        tokens = sum(r.completion_tokens for r in replies)
        print(f"{name:34} {tokens / seconds:7.1f} tokens/s ({tokens} tokens in {seconds:.2f} s)")
    run_batch(engines["on"], shared_prefix_messages(), 4)  # stores the shared prefix
    for name, engine in engines.items():
        seconds, replies = timed(lambda: run_batch(engine, shared_prefix_messages(), 4))
        prompt = sum(r.prompt_tokens for r in replies)
        print(f"shared-prefix batch of 8, cache {name:3} {seconds:7.2f} s ({prompt} prompt tokens)")


if __name__ == "__main__":
    main()
