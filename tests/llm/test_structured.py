from typing import Any, Callable

import asyncio

import pytest
from pydantic import BaseModel

from graphopt.errors import ReplyFormatError
from graphopt.llm import Client, Reply, budget, extract_json
from graphopt.llm.structured import json_instruction


class Verdict(BaseModel):
    label: str
    score: int


def replies(*texts: str) -> Callable[..., str]:
    queue = list(texts)
    return lambda messages, params: queue.pop(0)


@pytest.mark.parametrize("text", [
    '{"label": "ok", "score": 3}',
    'Sure!\n```json\n{"label": "ok", "score": 3}\n```\nDone.',
    'Here: <json>{"label": "ok", "score": 3}</json>',
    'The answer is {"label": "ok", "score": 3} as requested.',
])
def test_extract_json_from_common_reply_shapes(text: str) -> None:
    assert extract_json(text) == {"label": "ok", "score": 3}


def test_extract_json_without_json_raises() -> None:
    with pytest.raises(ValueError, match="no JSON value"):
        extract_json("no braces here { at all")


def test_valid_reply_is_validated_into_the_schema(client: Client, scripted: Any) -> None:
    scripted.handler = replies('```json\n{"label": "good", "score": 9}\n```')
    verdict = client.complete_json("Judge this.", schema=Verdict)
    assert verdict == Verdict(label="good", score=9)
    sent = scripted.created[0].calls[0][0]
    assert sent[0]["role"] == "system" and json_instruction(Verdict) in sent[0]["content"]


def test_one_repair_request_quotes_the_error(make_client: Callable[..., Client], scripted: Any) -> None:
    scripted.handler = replies('{"label": "good"}', '{"label": "good", "score": 1}')
    client = make_client()
    assert client.complete_json("Judge.", schema=Verdict) == Verdict(label="good", score=1)
    repair = scripted.created[0].calls[1][0]
    assert repair[-2] == {"role": "assistant", "content": '{"label": "good"}'}
    assert "score" in repair[-1]["content"] and "Field required" in repair[-1]["content"]


def test_second_failure_raises_reply_format_error_with_raw_text(
        make_client: Callable[..., Client], scripted: Any) -> None:
    scripted.handler = replies("I cannot do that.", "Still no JSON, sorry.")
    with pytest.raises(ReplyFormatError, match="model 'scripted/model': reply does not match "
                                               "Verdict after one repair request") as caught:
        make_client().complete_json("Judge.", schema=Verdict)
    assert caught.value.raw == "Still no JSON, sorry."
    assert len(scripted.created[0].calls) == 2


def test_json_mode_is_requested_when_backend_supports_it(
        make_client: Callable[..., Client], scripted: Any) -> None:
    scripted.structured_output = True
    scripted.handler = replies('{"label": "x", "score": 0}')
    make_client().complete_json("Judge.", schema=Verdict)
    format_ = scripted.created[0].calls[0][1]["response_format"]
    assert format_["type"] == "json_schema"
    assert format_["json_schema"]["schema"] == Verdict.model_json_schema()


def test_system_message_is_extended_not_replaced(client: Client, scripted: Any) -> None:
    scripted.handler = replies('{"label": "x", "score": 0}')
    client.complete_json([{"role": "system", "content": "You judge."},
                          {"role": "user", "content": "Judge."}], schema=Verdict)
    sent = scripted.created[0].calls[0][0]
    assert len(sent) == 2 and sent[0]["content"].startswith("You judge.\n\n")


def test_async_complete_json(client: Client, scripted: Any) -> None:


    scripted.handler = replies("nope", '{"label": "a", "score": 2}')
    assert asyncio.run(client.acomplete_json("Judge.", schema=Verdict)) == Verdict(label="a", score=2)


def test_extractor_never_takes_a_fragment_from_inside_a_truncated_value() -> None:
    # The reply was cut inside its string: the `[]` in the text is not the answer.
    with pytest.raises(ValueError, match="ends inside an unterminated JSON value"):
        extract_json('{"reasoning": "return [] when the list is empty and')


def test_extractor_skips_balanced_prose_braces_and_ignores_brackets_in_strings() -> None:
    assert extract_json('Use {name} here: {"label": "a ] b", "score": 1}') == {
        "label": "a ] b", "score": 1}


@pytest.mark.parametrize("text", ["[" * 100_000, '{"a":' * 100_000 + "1" + "}" * 100_000,
                                  "```json\n" + "[" * 5_000 + "]" * 5_000 + "\n```"])
def test_deep_nesting_is_refused_not_a_recursion_error(text: str) -> None:
    with pytest.raises(ReplyFormatError, match="nests JSON deeper than 64 levels"):
        extract_json(text)


def test_oversize_reply_is_refused_unparsed() -> None:
    with pytest.raises(ReplyFormatError, match="reply of 5,000,013 characters is over the 1,000,000"):
        extract_json('{"label": "' + "x" * 5_000_000 + '"}')


def test_nested_reply_fails_the_request_without_a_repair(client: Client, scripted: Any) -> None:
    scripted.handler = replies("[" * 100_000)
    with pytest.raises(ReplyFormatError, match="no repair request could succeed.*deeper than 64"):
        client.complete_json("Judge.", schema=Verdict)
    assert len(scripted.created[0].calls) == 1


def cut(text: str) -> Callable[..., Reply]:
    return lambda messages, params: Reply(text=text, model="scripted/model", finish_reason="length")


def test_cut_reply_from_a_schema_enforcing_decoder_is_not_repaired(
        make_client: Callable[..., Client], scripted: Any) -> None:
    scripted.structured_output = True
    scripted.handler = cut('{"label": "a very long label that never')
    with pytest.raises(ReplyFormatError, match=r"cut at max_tokens=8 before its JSON closed"):
        make_client().complete_json("Judge.", schema=Verdict, max_tokens=8)
    assert len(scripted.created[0].calls) == 1


def test_cut_reply_from_free_text_gets_its_repair(make_client: Callable[..., Client],
                                                  scripted: Any) -> None:
    texts = ['{"label": "a very long label that never', '{"label": "ok", "score": 2}']
    scripted.handler = lambda messages, params: Reply(
        text=texts.pop(0), model="scripted/model", finish_reason="length" if texts else "stop")
    assert make_client().complete_json("Judge.", schema=Verdict) == Verdict(label="ok", score=2)


def test_no_repair_when_the_budget_has_no_room_for_it(make_client: Callable[..., Client],
                                                      scripted: Any) -> None:
    scripted.handler = replies("I cannot do that.", '{"label": "ok", "score": 2}')
    client = make_client()
    with budget(max_calls=1):
        with pytest.raises(ReplyFormatError, match="no repair request could succeed"):
            client.complete_json("Judge.", schema=Verdict)
    assert len(scripted.created[0].calls) == 1
