"""Fault injection on the LLM layer: hostile and broken replies, oversize suggestions, budgets
under concurrency, echoed keys, scaffolding echoes, bad budget options.

Each case is one parametrized id, so the test names count the cases tried. Every case must end
in the documented outcome: a ``ReplyFormatError``/``LLMError``/``BudgetExceeded`` or a refused
value with its reason, the parameters unchanged, never a ``RecursionError``, a leaked key or an
overrun budget.
"""

from __future__ import annotations

import contextvars
import json
import threading
import traceback
from typing import Any

import pytest

import graphopt as go
from graphopt.errors import BudgetExceeded, LLMError, ReplyFormatError
from graphopt.llm import Budget, budget
from graphopt.llm.scripted import ScriptedFactory, scripted_client
from graphopt.llm.structured import extract_json
from graphopt.plugins.manager import PluginManager

KEY = "sk-test-4f9a8b7c6d5e4f3a2b1c0d9e8f7a6b5c"

HOSTILE_REPLIES = {
    "100k-nested-brackets": "[" * 100_000,
    "100k-nested-objects": '{"a":' * 100_000,
    "nested-closed-deep": "[" * 10_000 + "]" * 10_000,
    "nested-in-a-fence": "```json\n" + "[" * 50_000 + "\n```",
    "nested-in-a-tag": "<json>" + "{" * 50_000 + "</json>",
    "5MB-reply": '{"reasoning": "r", "system_prompt": "' + "x" * 5_000_000 + '"}',
}

CUT_REPLIES = {
    "cut-in-string-with-brackets": '{"reasoning": "return [] when empty and {} when',
    "cut-after-key": '{"reasoning": "r", "system_prompt":',
    "cut-in-escape": '{"reasoning": "a \\',
    "cut-in-nested-array": '{"reasoning": "r", "xs": [1, [2, {"y": [',
    "prose-then-cut": 'Sure! Here it is: {"reasoning": "the list [1, 2] is',
}

ECHOES = {
    "param-name-as-title": "System Prompt",
    "param-name-raw": "system_prompt",
    "omitted-ops-counts": "ReviewTriage.label ×1, ReviewTriage.parse ×1",
    "omitted-ops-line": "# … 7 ops omitted (label ×4, parse ×3)",
    "section-title": "# Feedback",
    "instructions": "Change the variables so that the feedback on the outputs improves.",
    "empty": "",
    "whitespace": " \n\t ",
    "current-with-spaces": "  Be brief.  ",
}


@go.op
def answer(prompt: str, question: str) -> str:
    """Answers `question` as `prompt` says."""
    return f"{prompt} {question}"


def stepped(reply_text: str, **options: Any) -> tuple[Any, go.Param]:
    """optoprime stepped once on a prompt with a model that always answers ``reply_text``."""
    prompt = go.param("Be brief.", name="system_prompt")
    go.backward(answer(prompt, "q"), "expected a longer answer")
    client = scripted_client(lambda messages, params: reply_text)
    opt = go.optimizer("optoprime", [prompt], llm=client, **options)
    opt.step()
    return opt, prompt


@pytest.mark.parametrize("case", list(HOSTILE_REPLIES))
def test_hostile_reply_is_refused_unparsed(case: str) -> None:
    with pytest.raises(ReplyFormatError):
        extract_json(HOSTILE_REPLIES[case])
    opt, prompt = stepped(HOSTILE_REPLIES[case])
    assert prompt.value == "Be brief."
    assert opt.last_step["reason"].startswith("reply unusable")


@pytest.mark.parametrize("case", list(CUT_REPLIES))
def test_cut_reply_yields_no_fragment(case: str) -> None:
    with pytest.raises(ValueError, match="unterminated JSON value"):
        extract_json(CUT_REPLIES[case])
    opt, prompt = stepped(CUT_REPLIES[case])
    assert prompt.value == "Be brief." and opt.last_step["reason"].startswith("reply unusable")


@pytest.mark.parametrize("size", [20_001, 100_000, 5_000_000])
def test_oversize_suggestion_is_refused_with_the_limit(size: int) -> None:
    reply = json.dumps({"reasoning": "r", "system_prompt": "y" * size})
    opt, prompt = stepped(reply)
    assert prompt.value == "Be brief."
    refusal = opt.last_step["errors"].get("system_prompt") or opt.last_step["reason"]
    assert ("expects at most 20,000 characters" in refusal
            or "over the 1,000,000 parsed" in refusal), refusal


@pytest.mark.parametrize("case", list(ECHOES))
def test_scaffolding_echo_is_refused_before_evaluation(case: str) -> None:
    opt, prompt = stepped(json.dumps({"reasoning": "r", "system_prompt": ECHOES[case]}))
    assert prompt.value == "Be brief."
    assert opt.last_step["errors"]["system_prompt"].startswith("refused before evaluation")


@pytest.mark.parametrize(("limit", "threads", "max_tokens"),
                         [(500, 32, 60), (2_000, 32, 60), (5_000, 32, 200), (1_000, 8, 999)])
def test_token_budget_is_never_exceeded_under_concurrency(limit: int, threads: int,
                                                          max_tokens: int) -> None:
    # Every reply uses its whole max_tokens, the worst case a reservation must cover.
    client = scripted_client(lambda messages, params: "w" * (4 * params["max_tokens"]))
    barrier = threading.Barrier(threads)
    refused = []

    def call(i: int) -> None:
        barrier.wait()
        try:
            client.complete(f"question {i}", max_tokens=max_tokens)
        except BudgetExceeded:
            refused.append(i)

    with budget(max_tokens=limit) as spent:
        workers = [threading.Thread(target=contextvars.copy_context().run, args=(call, i))
                   for i in range(threads)]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()
    assert spent.tokens <= limit and spent.pending == spent.pending_tokens == 0
    assert spent.calls + len(refused) == threads


class AuthenticationError(Exception):
    status_code = 401


@pytest.mark.parametrize("echo", [
    f"Incorrect API key provided: {KEY}.",
    f"401 Unauthorized: header Authorization: Bearer {KEY}",
    f'{{"error": {{"message": "invalid x-api-key", "api_key": "{KEY}"}}}}',
])
def test_echoed_key_is_in_no_error_text(echo: str, tmp_path: Any) -> None:
    client = go.llm.get("scripted/model", cache_dir=tmp_path, retries=4, backoff=0.0,
                        plugin_manager=_scripted_manager(lambda m, p: AuthenticationError(echo)))
    client.backend.options = {"api_key": KEY}
    with pytest.raises(LLMError) as caught:
        client.complete("hi")
    assert KEY not in "".join(traceback.format_exception(caught.value))
    assert "not retried" in str(caught.value)
    assert all(KEY not in repr(record) for record in client.ledger.records)


@pytest.mark.parametrize(("options", "error"), [
    ({"max_usd": float("nan")}, ValueError), ({"max_usd": float("inf")}, ValueError),
    ({"max_tokens": -1}, ValueError), ({"max_calls": "5"}, TypeError),
    ({"max_calls": True}, TypeError), ({"max_tokens": 2.5}, TypeError),
])
def test_bad_budget_option_names_itself(options: dict[str, Any], error: type) -> None:
    (name,) = options
    with pytest.raises(error, match=f"Budget {name} expects"):
        Budget(**options)


def _scripted_manager(handler: Any) -> PluginManager:
    manager = PluginManager()
    manager.register(ScriptedFactory(handler), name="scripted-llm")
    return manager
