"""Constrained decoding closes the JSON value before ``max_tokens`` runs out.

A toy tokenizer (single characters plus a few words) and a "model" that always prefers to keep
writing inside a string stand in for SmolLM2's worst habit; the real model is in tests/e2e.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
import torch
from lmformatenforcer import JsonSchemaParser, TokenEnforcer, TokenEnforcerTokenizerData

import graphopt as go
from graphopt.llm.local.constrained import (
    _AllowedTokens, _TokenTexts, _only_space, closing_text,
)
from graphopt.optim.suggest import reply_schema

WORDS = ["hello", " world", '"}', '":"', "reasoning", "code", "def", " ", "\n"]
CHARS = [chr(c) for c in range(32, 127)]
VOCAB = [*CHARS, *WORDS]
EOS = len(VOCAB)


def table() -> Any:
    regular = [(i, text, False) for i, text in enumerate(VOCAB)]
    return TokenEnforcerTokenizerData(regular, lambda ids: "".join(VOCAB[i] for i in ids if i < EOS),
                                      EOS, False, EOS + 1)


def schema() -> dict[str, Any]:
    prompt = go.param("Be brief.", name="system_prompt")
    top_k = go.param(3, name="top_k", space=go.Int(1, 10))
    return reply_schema([prompt, top_k], {prompt: "system_prompt", top_k: "top_k"}).model_json_schema()


def rambling(allowed: list[int]) -> int:
    """The model's choice: keep talking (" world", "hello", letters) while it may."""
    for preferred in (VOCAB.index(" world"), VOCAB.index("hello"), VOCAB.index("a")):
        if preferred in allowed:
            return preferred
    return allowed[0]


def generate(max_new_tokens: int, *, start: str = '{"reasoning": "') -> tuple[str, int]:
    data = table()
    allowed_fn = _AllowedTokens(TokenEnforcer(data, JsonSchemaParser(schema())), _TokenTexts(data),
                                width=1, max_new_tokens=max_new_tokens, eos=EOS)
    prompt = [VOCAB.index(" ")]
    sequence = list(prompt)
    opening = [VOCAB.index(char) for char in start]  # the model opens the string, then rambles
    while len(sequence) - len(prompt) < max_new_tokens:
        allowed = allowed_fn(0, torch.tensor(sequence))
        step = len(sequence) - len(prompt)
        token = opening[step] if step < len(opening) else rambling(allowed)
        if token == EOS:
            break
        sequence.append(token)
    return "".join(VOCAB[i] for i in sequence[len(prompt):]), allowed_fn.forced


@pytest.mark.parametrize("max_new_tokens", [20, 33, 64, 120])
def test_a_rambling_model_still_closes_its_json_within_max_tokens(max_new_tokens: int) -> None:
    text, forced = generate(max_new_tokens)
    assert json.loads(text)["reasoning"].startswith(" world")
    assert forced >= 1


def test_a_complete_object_ends_instead_of_trailing_whitespace() -> None:
    data = table()
    allowed_fn = _AllowedTokens(TokenEnforcer(data, JsonSchemaParser(schema())), _TokenTexts(data),
                                width=1, max_new_tokens=500, eos=EOS)
    prompt = [VOCAB.index(" ")]
    reply = [VOCAB.index(c) for c in '{"reasoning": "ok"']
    inside = allowed_fn(0, torch.tensor(prompt + reply))
    assert EOS not in inside and len(inside) > 1
    closed = allowed_fn(0, torch.tensor(prompt + reply + [VOCAB.index("}")]))
    assert closed == [EOS] and allowed_fn.ended == 1


def test_only_whitespace_after_a_complete_object_not_after_a_growing_number() -> None:
    number = JsonSchemaParser({"type": "object", "properties": {"n": {"type": "integer"}}})
    for char in '{"n": 4':
        number = number.add_character(char)
    assert not _only_space(number)  # 4 may become 42
    done = number.add_character("}")
    assert done.can_end() and _only_space(done)


def test_closing_is_not_forced_while_there_is_room() -> None:
    data = table()
    allowed_fn = _AllowedTokens(TokenEnforcer(data, JsonSchemaParser(schema())), _TokenTexts(data),
                                width=1, max_new_tokens=500, eos=EOS)
    allowed_fn(0, torch.tensor([0, VOCAB.index("{")]))
    assert allowed_fn.forced == 0


@pytest.mark.parametrize(("prefix", "closing"), [
    ("", '{"reasoning":""}'),
    ('{"reasoning": "abc', '"}'),
    ('{"reasoning": "abc", "top_k": 1', "}"),
    ('{"reasoning": "a\\', '""}'),
    ('{"reas', 'oning":""}'),
])
def test_closing_text_closes_strings_objects_and_required_keys(prefix: str, closing: str) -> None:
    parser = JsonSchemaParser(schema())
    for char in prefix:
        parser = parser.add_character(char)
    assert closing_text(parser) == closing
    assert json.loads(prefix + closing)["reasoning"] is not None


def test_closing_text_writes_the_required_keys_still_missing() -> None:
    # Two required strings: from inside the first, closing means writing the second too. A
    # breadth-first search over every character a string may hold never got that far.
    essay = {"type": "object", "required": ["title", "essay"],
             "properties": {"title": {"type": "string"}, "essay": {"type": "string"}}}
    parser = JsonSchemaParser(essay)
    for char in '{\n  "title": "The Sea':
        parser = parser.add_character(char)
    assert closing_text(parser) == '","essay":""}'


def test_schema_bounds_strings_by_the_params_limit_and_the_token_budget() -> None:
    prompt = go.param("Be brief.", name="system_prompt")
    bounded = reply_schema([prompt], {prompt: "system_prompt"}, max_tokens=30).model_json_schema()
    assert bounded["properties"]["system_prompt"]["maxLength"] == 120  # 30 tokens of 4 chars
    assert bounded["properties"]["reasoning"]["maxLength"] == 40
    free = reply_schema([prompt], {prompt: "system_prompt"}).model_json_schema()
    assert free["properties"]["system_prompt"]["maxLength"] == 200
    assert "maxLength" not in free["properties"]["reasoning"]


def byte_level_tokenizer() -> Any:
    """A small GPT-2 style tokenizer (byte-level BPE) built in memory: bytes, a few merges that make
    word-start pieces ("Ġhello"), and the two halves of a multi-byte character."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    from graphopt.llm.local.constrained import _byte_alphabet

    alphabet = list(_byte_alphabet().values())
    merges = [("Ġ", "h"), ("Ġh", "e"), ("Ġhe", "l"), ("Ġhel", "l"), ("Ġhell", "o"), ("{", '"'),
              ("Ã", "©")]
    vocab = {"<eos>": 0, **{c: i + 1 for i, c in enumerate(alphabet)}}
    for left, right in merges:
        vocab[left + right] = len(vocab)
    model = Tokenizer(models.BPE(vocab=vocab, merges=merges))
    model.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    model.decoder = decoders.ByteLevel()
    return PreTrainedTokenizerFast(tokenizer_object=model, eos_token="<eos>")


def test_byte_level_token_texts_equal_the_decoded_ones() -> None:
    from graphopt.llm.local.constrained import _byte_level_tokens, _decoded_tokens

    tokenizer = byte_level_tokenizer()
    ids = [i for i in range(len(tokenizer)) if i not in set(tokenizer.all_special_ids)]
    fast = _byte_level_tokens(tokenizer, ids)
    assert fast is not None and fast == _decoded_tokens(tokenizer, ids)
    texts = {text for _, text, _ in fast}
    assert {" hello", '{"', "é", "\ufffd"} <= texts  # a word start, a merge, a whole and half character


def test_a_tokenizer_that_is_not_byte_level_is_decoded_token_by_token() -> None:
    from graphopt.llm.local.constrained import _byte_level_tokens

    tokenizer = byte_level_tokenizer()
    from tokenizers import decoders

    tokenizer.backend_tokenizer.decoder = decoders.WordPiece()
    assert _byte_level_tokens(tokenizer, list(range(1, 50))) is None
