from typing import Any, Callable

import asyncio

import pytest
from pydantic import BaseModel

from graphopt.errors import ReplyFormatError
from graphopt.llm import Client, extract_json
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
