import asyncio
from typing import Any, Callable

import pytest

from graphopt.errors import BudgetExceeded
from graphopt.graph.context import no_trace
from graphopt.graph.node import Error, Message, param
from graphopt.llm import Client, budget, chat
from graphopt.llm.chat import achat


def test_chat_returns_a_message_node_with_call_info(client: Client) -> None:
    node = chat("hello there", client=client, max_tokens=5)
    assert isinstance(node, Message) and not isinstance(node, Error)
    assert node.value == "HELLO THERE"
    assert node.info["model"] == "scripted/model"
    assert node.info["params"] == {"max_tokens": 5}
    assert node.info["usage"] == {"prompt_tokens": 10, "completion_tokens": 2}
    assert node.info["cached"] is False


def test_prompt_and_system_params_become_parents(client: Client, scripted: Any) -> None:
    system = param("Be brief.", name="system_prompt")
    prompt = param("what is 2+2", name="question")
    node = chat(prompt, system, client=client)
    assert system in node.parents and prompt in node.parents
    sent = scripted.created[0].calls[0][0]
    assert sent == [{"role": "system", "content": "Be brief."},
                    {"role": "user", "content": "what is 2+2"}]


def test_chat_inside_no_trace_returns_text(client: Client) -> None:
    with no_trace():
        assert chat("plain", client=client) == "PLAIN"


def test_failed_call_becomes_an_error_node(make_client: Callable[..., Client], scripted: Any) -> None:
    scripted.handler = lambda messages, params: ValueError("refused")
    node = chat("x", client=make_client())
    assert isinstance(node, Error)
    assert "refused" in str(node.value)


def test_budget_exceeded_stops_the_run(client: Client) -> None:
    with budget(max_calls=0):
        with pytest.raises(BudgetExceeded):
            chat("x", client=client)


def test_achat_is_traced_too(client: Client) -> None:
    node = asyncio.run(achat("async", client=client))
    assert isinstance(node, Message) and node.value == "ASYNC"
    assert node.info["model"] == "scripted/model"
