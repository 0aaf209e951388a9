import contextvars
import threading
from typing import Any, Callable

import pytest

from graphopt.errors import BudgetExceeded, LLMError
from graphopt.llm import Budget, Client, Reply, Usage, budget
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


def test_max_tokens_refuses_the_call_that_could_overrun_it(client: Client) -> None:
    with budget(max_tokens=40) as spent:
        for text in ("one two", "three four", "five six"):  # 10 prompt + 2 completion tokens
            client.complete(text, max_tokens=5)  # each reserves 10 + 5
        with pytest.raises(BudgetExceeded, match=r"max_tokens=40 would be exceeded \(36 used, "
                                                 r"0 reserved in flight, this call may use up to 15\)"):
            client.complete("seven", max_tokens=5)
    assert (spent.tokens, spent.pending_tokens) == (36, 0)


def test_request_without_max_tokens_is_capped_to_the_room_left(
        make_client: Callable[..., Client], scripted: Any) -> None:
    client = make_client()
    with budget(max_tokens=100):
        client.complete("a")
    assert scripted.created[0].calls[0][1]["max_tokens"] == 90  # 100 minus the 10-token prompt


def test_concurrent_threads_never_spend_past_max_tokens(
        make_client: Callable[..., Client], scripted: Any) -> None:
    # Every reply uses all of its max_tokens: only a reservation made before sending keeps
    # ten threads inside the limit (without it they all pass the check, then all spend).
    scripted.delay = 0.02
    scripted.handler = lambda messages, params: Reply(
        text="x", model="scripted/model",
        usage=Usage(prompt_tokens=10, completion_tokens=params["max_tokens"]))
    client = make_client()
    refused: list[BudgetExceeded] = []
    with budget(max_tokens=100) as spent:
        def call(i: int) -> None:
            try:
                client.complete(f"q{i}", max_tokens=20)
            except BudgetExceeded as err:
                refused.append(err)

        threads = [threading.Thread(target=contextvars.copy_context().run, args=(call, i))
                   for i in range(10)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert spent.tokens == 90 and len(refused) == 7
    assert (spent.pending, spent.pending_tokens) == (0, 0)


def test_max_usd_reserves_the_backends_cost_estimate(
        make_client: Callable[..., Client], scripted: Any) -> None:
    client = make_client()
    backend = client.backend
    backend.estimate_cost = lambda prompt, completion: 0.0001 * (prompt + completion)
    with budget(max_usd=0.005) as spent:
        client.complete("a", max_tokens=20)  # may cost 0.003: allowed; costs 0.001
        with pytest.raises(BudgetExceeded, match=r"max_usd=0.005 would be exceeded"):
            client.complete("b", max_tokens=40)  # 0.001 spent + up to 0.005
    assert spent.usd == pytest.approx(0.001) and spent.pending_usd == 0.0


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
    with pytest.raises(ValueError, match="Budget max_usd expects a number >= 0 or None, got nan"):
        Budget(max_usd=float("nan"))
    with pytest.raises(ValueError, match="Budget max_usd expects a number >= 0 or None, got -0.5"):
        Budget(max_usd=-0.5)
    with pytest.raises(TypeError, match="Budget max_calls expects an int >= 0 or None, got str '5'"):
        Budget(max_calls="5")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="Budget max_tokens expects an int >= 0 or None, got float"):
        budget(max_tokens=1.5).__enter__()  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="either a Budget or limits"):
        with budget(Budget(), max_calls=1):
            pass


def test_no_budget_outside_block(client: Client) -> None:
    with budget(max_calls=0):
        pass
    assert client.complete("free").text == "FREE"
