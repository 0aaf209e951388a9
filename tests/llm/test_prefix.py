"""Prefix caching in the local engine: shared prompt starts run once and are reused, replies unchanged.

A tiny randomly initialised Llama (float32, so greedy decoding is exact) and a byte-level
tokenizer stand in for SmolLM2: the layout, cache reuse and generation path are the real ones.
"""

from __future__ import annotations

import time
from typing import Any

import pytest
import torch

from graphopt.llm.local.engine import Engine
from graphopt.llm.local.prefix import MIN_PREFIX, PrefixStore, common_prefix


class ByteTokenizer:
    """Bytes as tokens (ids 3..258); 0 pads, 1 ends. Enough of the transformers surface for Engine."""

    padding_side = "right"
    pad_token_id = 0
    eos_token_id = 1
    eos_token = "<eos>"

    def apply_chat_template(self, messages: list[dict[str, Any]], **_: Any) -> str:
        return "".join(f"<{m['role']}>{m['content']}\n" for m in messages) + "<assistant>"

    def __call__(self, text: str, **_: Any) -> dict[str, list[int]]:
        return {"input_ids": [b + 3 for b in text.encode()]}

    def decode(self, tokens: list[int], **_: Any) -> str:
        return bytes(t - 3 for t in tokens if t >= 3).decode(errors="replace")


@pytest.fixture(scope="module")
def model() -> Any:
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=259, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=512)
    return LlamaForCausalLM(config).eval()


def messages(system: str, user: str) -> list[dict[str, str]]:
    return [{"role": "system", "content": system}, {"role": "user", "content": user}]


SYSTEM = "You label customer reviews as positive or negative. Answer with one word."
USERS = ["Loved it.", "Broke after a day, awful.", "Fine, I guess?", "Would buy again!"]


def replies(engine: Engine, prompts: list[list[dict[str, str]]]) -> list[Any]:
    futures = [engine.submit(p, max_tokens=6) for p in prompts]
    return [f.result() for f in futures]


def test_batch_with_shared_prefix_gives_the_same_replies_and_reuses_it(model: Any) -> None:
    prompts = [messages(SYSTEM, u) for u in USERS]
    plain = Engine(model, ByteTokenizer(), prefix_cache_tokens=0, batch_wait_ms=200)
    cached = Engine(model, ByteTokenizer(), batch_wait_ms=200)
    expected = replies(plain, prompts)
    first = replies(cached, prompts)
    assert cached.generate_calls == 1  # one batch, as without the cache
    assert [r.text for r in first] == [r.text for r in expected]
    assert [r.prompt_tokens for r in first] == [r.prompt_tokens for r in expected]
    assert [r.completion_tokens for r in first] == [r.completion_tokens for r in expected]
    assert cached.prefixes.misses == 1 and cached.prefixes.reused_tokens == 0
    again = replies(cached, [messages(SYSTEM, u) for u in reversed(USERS)])
    assert [r.text for r in again] == [r.text for r in reversed(expected)]
    shared = len(ByteTokenizer()(f"<system>{SYSTEM}\n<user>")["input_ids"])
    assert cached.prefixes.reused_tokens >= shared


def test_a_later_call_reuses_the_start_it_shares_with_an_earlier_one(model: Any) -> None:
    plain = Engine(model, ByteTokenizer(), prefix_cache_tokens=0)
    cached = Engine(model, ByteTokenizer())
    for user in USERS[:2]:
        assert cached.generate(messages(SYSTEM, user), max_tokens=5).text == \
            plain.generate(messages(SYSTEM, user), max_tokens=5).text
    assert cached.prefixes.hits == 1 and cached.prefixes.reused_tokens >= len(SYSTEM)


def test_requests_arriving_one_after_another_still_share_a_batch(model: Any) -> None:
    # Each arrives within one wait of the last, though the last comes after the first wait is up.
    engine = Engine(model, ByteTokenizer(), batch_wait_ms=400)
    futures = []
    for user in USERS:
        futures.append(engine.submit(messages(SYSTEM, user), max_tokens=2))
        time.sleep(0.25)
    assert all(f.result().completion_tokens >= 1 for f in futures)
    assert engine.generate_calls == 1


def test_prompts_without_a_shared_start_run_without_the_store(model: Any) -> None:
    cached = Engine(model, ByteTokenizer(), batch_wait_ms=200)
    replies(cached, [messages("a", "x"), messages("b", "y")])
    assert cached.prefixes.hits == cached.prefixes.misses == 0 and len(cached.prefixes) == 0


def test_common_prefix_leaves_every_row_a_token() -> None:
    assert common_prefix([[1, 2, 3, 4], [1, 2, 3, 5]]) == 3
    assert common_prefix([[1, 2, 3], [1, 2, 3, 4]]) == 2
    assert common_prefix([[7, 8, 9]]) == 2
    assert common_prefix([[1], [2]]) == 0


def layers(length: int, fill: float = 0.0) -> list[tuple[torch.Tensor, torch.Tensor]]:
    return [(torch.full((1, 2, length, 4), fill), torch.full((1, 2, length, 4), fill))]


def test_store_hands_back_the_longest_stored_start_cut_to_the_shared_length() -> None:
    store = PrefixStore()
    first = list(range(40))
    store.put(first, layers(40, 1.0))
    start, found = store.longest(first[:30] + [99] * 5)
    assert start == 30 and found[0][0].shape[2] == 30
    assert store.longest([5] * 40) == (0, None)
    assert store.longest(first[:MIN_PREFIX - 1] + [99]) == (0, None)  # too short to be worth it


def test_store_extends_a_stored_start_and_drops_what_the_longer_entry_covers() -> None:
    store = PrefixStore()
    calls: list[tuple[int, int]] = []

    def compute(start: int, known: Any) -> Any:
        calls.append((start, 0 if known is None else known[0][0].shape[2]))
        return layers(len(tokens))

    tokens = list(range(20))
    store.get(tokens, compute)
    tokens = list(range(50))
    store.get(tokens, compute)
    assert calls == [(0, 0), (20, 20)]
    assert len(store) == 1 and store.hits == 1 and store.misses == 1 and store.reused_tokens == 20
    store.get(tokens, compute)  # exactly stored: nothing computed
    assert len(calls) == 2


def test_store_stays_within_its_token_bound() -> None:
    store = PrefixStore(max_tokens=100)
    for base in range(5):
        store.put([base * 1000 + i for i in range(40)], layers(40))
    assert len(store) == 2
    store.put(list(range(500)), layers(500))  # larger than the bound: not kept
    assert len(store) == 2
