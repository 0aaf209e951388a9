import contextvars
import threading
from typing import Any, Callable

import pytest

from graphopt.errors import BudgetExceeded, LLMError
from graphopt.llm import Budget, Client, budget
from graphopt.llm.ledger import active_budgets


def test_call_past_max_calls_is_refused_before_sending(client: Client, scripted: Any) -> None:
    with budget(max_calls=2) as spent:
        client.complete("a")
        client.complete("b")
        with pytest.raises(BudgetExceeded, match=r"budget refuses a call to 'scripted/model': "
                                                 r"max_calls=2 reached") as caught:
            client.complete("c")
    assert caught.value.budget is spent
    assert len(scripted.created[0].calls) == 2
    assert (spent.calls, spent.pending) == (2, 0)


def test_cache_hits_are_free_under_a_spent_budget(client: Client) -> None:
    client.complete("a")
    with budget(max_calls=0):
        assert client.complete("a").cached
        with pytest.raises(BudgetExceeded):
            client.complete("new")


def test_max_tokens_refuses_once_reached(client: Client) -> None:
    with budget(max_tokens=25) as spent:
        client.complete("one two")  # 10 prompt + 2 completion tokens
        client.complete("three four")
        client.complete("five six")
        with pytest.raises(BudgetExceeded, match="max_tokens=25 reached"):
            client.complete("seven")
    assert spent.tokens == 36


def test_max_usd_refuses_once_reached(client: Client) -> None:
    with budget(max_usd=0.002) as spent:
        client.complete("a")
        client.complete("b")
        with pytest.raises(BudgetExceeded, match="max_usd=0.002 reached"):
            client.complete("c")
    assert spent.usd == pytest.approx(0.002)


def test_nested_budgets_all_count_and_inner_refuses(client: Client) -> None:
    with budget(max_calls=10) as outer:
        with budget(max_calls=1) as inner:
            client.complete("a")
            with pytest.raises(BudgetExceeded):
                client.complete("b")
        client.complete("c")
    assert (outer.calls, inner.calls) == (2, 1)
    assert active_budgets() == ()


def test_budget_object_keeps_counting_across_blocks(client: Client) -> None:
    shared = Budget(max_calls=2)
    with budget(shared):
        client.complete("a")
    with budget(shared):
        client.complete("b")
        with pytest.raises(BudgetExceeded):
            client.complete("c")
    assert shared.remaining_calls == 0


def test_failed_call_gives_its_reservation_back(make_client: Callable[..., Client], scripted: Any) -> None:
    scripted.handler = lambda messages, params: ValueError("bad request")
    client = make_client()
    with budget(max_calls=1) as spent:
        with pytest.raises(LLMError):
            client.complete("a")
    assert (spent.calls, spent.pending) == (0, 0)


def test_concurrent_threads_cannot_overrun_max_calls(make_client: Callable[..., Client], scripted: Any) -> None:
    scripted.delay = 0.02
    client = make_client()
    refused: list[BudgetExceeded] = []
    with budget(max_calls=3) as spent:
        def call(i: int) -> None:
            try:
                client.complete(f"q{i}")
            except BudgetExceeded as err:
                refused.append(err)

        threads = [threading.Thread(target=contextvars.copy_context().run, args=(call, i))
                   for i in range(10)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert len(scripted.created[0].calls) == 3 and len(refused) == 7
    assert spent.calls == 3


def test_batch_threads_see_the_callers_budget(client: Client) -> None:
    with budget(max_calls=2):
        with pytest.raises(BudgetExceeded):
            client.batch([f"q{i}" for i in range(5)], concurrency=1)


def test_limits_are_validated() -> None:
    with pytest.raises(ValueError, match="Budget max_calls expects a number >= 0 or None, got -1"):
        Budget(max_calls=-1)
    with pytest.raises(TypeError, match="either a Budget or limits"):
        with budget(Budget(), max_calls=1):
            pass


def test_no_budget_outside_block(client: Client) -> None:
    with budget(max_calls=0):
        pass
    assert client.complete("free").text == "FREE"
