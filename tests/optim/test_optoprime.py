"""optoprime with a scripted model: what the prompt holds, and what each kind of reply commits."""

from __future__ import annotations

import json
import threading
from typing import Any

import pytest

import graphopt as go
from graphopt.errors import BudgetExceeded, ParamValidationError
from graphopt.llm.scripted import follow_schema, scripted_client


@go.op
def answer(prompt: str, question: str) -> str:
    """Answers `question` as `prompt` says."""
    return f"{prompt} {question}"


@go.op(trainable=True)
def parse(reply: str) -> str:
    return reply.split()[-1]


GOOD_CODE = "def parse(reply):\n    return reply.strip()\n"


@pytest.fixture(autouse=True)
def _fresh_parse():
    """``parse`` is module-level: each test starts from its original code and no feedback."""
    parse.code.assign(parse._original_source)
    parse.code.feedback.clear()
    yield
    parse.code.assign(parse._original_source)
    parse.code.feedback.clear()


def replies(*objects: Any):
    """A handler answering with each object in turn (as JSON), repeating the last."""
    queue = [o if isinstance(o, str) else json.dumps(o) for o in objects]

    def handler(messages, params):
        return queue.pop(0) if len(queue) > 1 else queue[0]

    return handler


def in_any_order(*objects: Any):
    """A handler giving each object once, whichever thread asks first."""
    queue = [json.dumps(o) for o in objects]
    lock = threading.Lock()

    def handler(messages, params):
        with lock:
            return queue.pop(0)

    return handler


@pytest.fixture
def params():
    prompt = go.param("Be brief.", name="system_prompt")
    top_k = go.param(3, name="top_k", space=go.Int(1, 10))
    mode = go.param("fast", name="mode", space=go.Choice(["fast", "slow"]))
    return prompt, top_k, mode


def run_once(prompt, top_k, mode, feedback="expected 42"):
    question = go.param("What is six times seven?", name="question", trainable=False)
    out = parse(answer(prompt, go.ops.format("{} {} {}", question, top_k, mode)))
    go.backward(out, feedback)
    return out


def build(params, handler, plugin_manager, **config):
    client = scripted_client(handler)
    opt = go.optimizer("optoprime", [*params, parse], llm=client, plugin_manager=plugin_manager, **config)
    return opt, client


def user_prompt(client, index=0):
    return client.backend.calls[index][0][-1]["content"]


def test_prompt_has_every_section(params, plugin_manager):
    opt, client = build(params, replies({"reasoning": "none"}), plugin_manager)
    run_once(*params)
    opt.step()
    text = user_prompt(client)
    for title in ("# Objective", "# Variables", "# Code", "# Documentation", "# Inputs",
                  "# Intermediate values", "# Outputs", "# Feedback"):
        assert title in text, title
    assert "top_k (int in Int(1, 10)) = 3" in text
    assert "mode (choice in Choice(['fast', 'slow'])) = 'fast'" in text
    assert "answer0 = answer(prompt=system_prompt, question=format0)" in text
    assert "question = 'What is six times seven?'" in text
    assert "[answer] Answers `question` as `prompt` says." in text
    assert "- expected 42" in text
    system = client.backend.calls[0][0][0]["content"]
    assert '"system_prompt"' in system and '"parse.code"' in system  # the reply schema


def test_errors_section_holds_the_traceback(params, plugin_manager):
    opt, client = build(params, replies({"reasoning": "none"}), plugin_manager)
    parse.code.assign("def parse(reply):\n    return reply.missing()\n")
    run_once(*params)
    opt.step()
    text = user_prompt(client)
    assert "# Errors\nparse0: AttributeError: 'str' object has no attribute 'missing'" in text


def test_several_feedbacks_are_aggregated_and_runs_shown(params, plugin_manager):
    opt, client = build(params, replies({"reasoning": "none"}), plugin_manager)
    for _ in range(3):
        run_once(*params, feedback="too short")
    run_once(*params, feedback="wrong language")
    opt.step()
    text = user_prompt(client)
    assert "- too short (×3)\n- wrong language" in text
    assert "## Run 1" in text and "## Run 3" in text and "## Run 4" not in text
    assert "(1 more runs not shown" in text


def test_long_values_are_truncated(params, plugin_manager):
    prompt, top_k, mode = params
    opt, client = build(params, replies({"reasoning": "none"}), plugin_manager, max_value_chars=120)
    out = parse(answer(prompt, "question " * 500))
    go.backward(out, "wrong")
    opt.step()
    assert "chars, cut" in user_prompt(client)


@pytest.mark.parametrize("length", [1_000, 10_000])
def test_prompt_stays_within_the_token_budget(plugin_manager, length):
    start = go.param(0, name="start", space=go.Int(0, 100))
    node = start
    for _ in range(length):
        node = node + 1
    go.backward(node, "should be 5")
    opt = go.optimizer("optoprime", [start], llm=scripted_client(follow_schema),
                       plugin_manager=plugin_manager, max_prompt_tokens=1_000)
    messages = opt.prompt()
    with_schema = sum(len(m["content"]) for m in messages) + 600  # the schema instruction
    assert with_schema <= 1_000 * 4
    assert "ops omitted (add ×" in messages[1]["content"]


def test_valid_reply_commits_every_value(params, plugin_manager):
    opt, _ = build(params, replies({"reasoning": "longer", "system_prompt": "Answer with a number.",
                                    "top_k": 5, "mode": "slow", "parse.code": GOOD_CODE}),
                   plugin_manager)
    run_once(*params)
    committed = opt.step()
    assert committed == {"system_prompt": "Answer with a number.", "top_k": 5, "mode": "slow",
                         "parse.code": GOOD_CODE}
    assert opt.last_step["reason"] is None and opt.last_step["reasoning"] == "longer"


def test_common_reply_habits_are_undone(params, plugin_manager):
    fenced = "```python\n" + GOOD_CODE + "```"
    opt, _ = build(params, replies({"reasoning": "r", "top_k": "7", "parse.code": fenced}), plugin_manager)
    run_once(*params)
    assert opt.step() == {"top_k": 7, "parse.code": GOOD_CODE}


def test_invalid_values_are_sent_back_once_with_their_errors(params, plugin_manager):
    first = {"reasoning": "r", "top_k": 12, "mode": "medium",
             "parse.code": "def parse(text):\n    return text\n"}
    second = {"reasoning": "fixed", "top_k": 4, "mode": "slow", "parse.code": GOOD_CODE}
    opt, client = build(params, replies(first, second), plugin_manager)
    run_once(*params)
    assert opt.step() == {"top_k": 4, "mode": "slow", "parse.code": GOOD_CODE}
    assert len(client.backend.calls) == 2
    resend = client.backend.calls[1][0][-1]["content"]
    assert "top_k: param 'top_k' expects Int(1, 10), got 12" in resend
    assert "mode: param 'mode' expects one of ['fast', 'slow'], got 'medium'" in resend
    assert "signature must stay parse(reply), got parse(text)" in resend


def test_partial_opt_in_commits_only_the_valid_values(params, plugin_manager):
    prompt, top_k, mode = params
    bad = {"reasoning": "r", "system_prompt": "Think step by step.", "top_k": 0,
           "parse.code": "def parse(reply) return"}
    opt, client = build(params, replies(bad), plugin_manager, partial=True)
    run_once(*params)
    assert opt.step() == {"system_prompt": "Think step by step."}
    assert top_k.value == 3 and parse.code.value == parse._original_source
    assert set(opt.last_step["errors"]) == {"top_k", "parse.code"}
    assert "does not compile" in opt.last_step["errors"]["parse.code"]
    assert len(client.backend.calls) == 2  # one resend, no more


def test_all_or_none_by_default_commits_nothing_when_a_value_stays_invalid(params, plugin_manager):
    prompt, top_k, mode = params
    opt, _ = build(params, replies({"reasoning": "r", "system_prompt": "New.", "top_k": 99}),
                   plugin_manager)
    assert opt.partial is False
    run_once(*params)
    assert opt.step() == {}
    assert prompt.value == "Be brief." and top_k.value == 3
    assert "partial commits are off" in opt.last_step["reason"]


def test_unparseable_reply_changes_nothing_and_says_why(params, plugin_manager):
    opt, client = build(params, replies("I would rather not."), plugin_manager)
    run_once(*params)
    assert opt.step() == {}
    assert opt.last_step["reason"].startswith("reply unusable")
    assert params[0].value == "Be brief."


def test_reply_keeping_every_value_records_the_reason(params, plugin_manager):
    opt, _ = build(params, replies({"reasoning": "fine as is", "top_k": 3}), plugin_manager)
    run_once(*params)
    assert opt.step() == {}
    assert opt.last_step["reason"] == "no valid change suggested"


def test_usage_is_tagged_with_the_optimizer_name(params, plugin_manager):
    opt, client = build(params, replies({"reasoning": "r"}), plugin_manager)
    run_once(*params)
    opt.step()
    assert client.ledger.by_tag()["optoprime"]["calls"] == 1


def test_budget_refuses_the_call_and_changes_nothing(params, plugin_manager):
    opt, client = build(params, replies({"reasoning": "r", "top_k": 5}), plugin_manager)
    run_once(*params)
    with go.budget(max_calls=0), pytest.raises(BudgetExceeded):
        opt.step()
    assert params[1].value == 3 and client.backend.calls == []


def test_memory_recalls_the_last_k_steps_and_round_trips(params, plugin_manager):
    opt, client = build(params, replies({"reasoning": "r", "top_k": 5}, {"reasoning": "r", "top_k": 6},
                                        {"reasoning": "r", "top_k": 7}), plugin_manager, memory=2)
    for feedback in ("first feedback", "second feedback", "third feedback"):
        run_once(*params, feedback=feedback)
        opt.step()
        opt.zero_feedback()
    assert [r["values"]["top_k"] for r in opt.history] == [5, 6]
    run_once(*params, feedback="fourth")
    opt.step()
    text = user_prompt(client, -1)
    assert "# Memory" in text and "second feedback" in text and "third feedback" in text
    assert "first feedback" not in text
    saved = json.loads(json.dumps(opt.state_dict()))
    fresh, _ = build(params, replies({"reasoning": "r"}), plugin_manager, memory=2)
    fresh.load_state_dict(saved)
    assert fresh.history == opt.history and fresh.steps == opt.steps == 4


def test_candidates_are_sampled_and_the_closure_picks_the_best(params, plugin_manager):
    prompt, top_k, mode = params

    handler = in_any_order({"reasoning": "r", "top_k": 2}, {"reasoning": "r", "top_k": 9},
                           {"reasoning": "r", "top_k": 5})
    opt, client = build(params, handler, plugin_manager, n_candidates=3)
    run_once(*params)
    assert opt.step(lambda: abs(top_k.value - 8)) == {"top_k": 9}  # a loss
    assert len(client.backend.calls) == 3
    assert all(call[1]["temperature"] == 0.8 for call in client.backend.calls)


def test_candidates_without_closure_take_the_most_valid(params, plugin_manager):
    handler = in_any_order({"reasoning": "r", "top_k": 2}, {"reasoning": "r", "top_k": 4, "mode": "slow"})
    opt, _ = build(params, handler, plugin_manager, n_candidates=2)
    run_once(*params)
    assert opt.step() == {"top_k": 4, "mode": "slow"}


def test_tensor_params_are_refused_with_a_clear_error(plugin_manager):
    torch = pytest.importorskip("torch")
    weights = go.param(torch.zeros(2), name="weights")
    with pytest.raises(ParamValidationError, match="cannot optimize param 'weights' of kind 'tensor'"):
        go.optimizer("optoprime", [weights], llm=scripted_client(follow_schema),
                     plugin_manager=plugin_manager)


@pytest.mark.parametrize(("option", "value"), [("max_prompt_tokens", 10), ("memory", -1),
                                                ("n_candidates", 0), ("selector", "best")])
def test_bad_options_are_refused(params, plugin_manager, option, value):
    with pytest.raises(ValueError, match=option if option != "selector" else "selector expects"):
        build(params, follow_schema, plugin_manager, **{option: value})


@pytest.mark.parametrize(("echo", "why"), [
    ("System Prompt", "copies a variable's name"),
    ("ReviewTriage.label ×1, ReviewTriage.parse ×1", "copies the prompt's omitted-ops marker"),
    ("# … 12 ops omitted (add ×12)", "copies the prompt's omitted-ops marker"),
    ("Variables", "copies a section title of the prompt"),
    ("Change the variables so that the feedback on the outputs improves.",
     "copies the optimizer's instructions"),
    ("   ", "empty value"),
    ("Be brief.\n", "same as the current value"),
    ("reply.split()", "copies an op or variable name of the prompt"),
    ("The review is positive. 1.2042, -2.0, ReviewTriage.label ×1, ReviewTriage.label ×1,",
     "copies the prompt's omitted-ops marker"),
])
def test_scaffolding_echo_is_refused_before_evaluation(params, plugin_manager, echo, why):
    prompt, top_k, mode = params
    opt, client = build(params, replies({"reasoning": "r", "system_prompt": echo, "top_k": 5}),
                        plugin_manager)
    run_once(*params)
    assert opt.step() == {"top_k": 5}  # an echo is dropped, not a reason to lose the rest
    assert prompt.value == "Be brief."
    assert opt.last_step["errors"]["system_prompt"].startswith(f"refused before evaluation: {why}")
    assert "refused before evaluation" in client.backend.calls[1][0][-1]["content"]  # resent once


def test_echo_only_reply_says_so(params, plugin_manager):
    opt, _ = build(params, replies({"reasoning": "r", "system_prompt": "system_prompt"}),
                   plugin_manager)
    run_once(*params)
    assert opt.step() == {}
    assert opt.last_step["reason"] == "every suggested value was refused as an echo of the prompt"


def test_a_real_change_that_mentions_prompt_words_is_kept(params, plugin_manager):
    better = "Answer with the number only; check the feedback on the outputs first."
    opt, _ = build(params, replies({"reasoning": "r", "system_prompt": better}), plugin_manager)
    run_once(*params)
    assert opt.step() == {"system_prompt": better}


def test_oversize_suggestion_is_refused_with_the_limit(params, plugin_manager):
    prompt, top_k, mode = params
    opt, _ = build(params, replies({"reasoning": "r", "system_prompt": "x" * 25_000}),
                   plugin_manager)
    run_once(*params)
    assert opt.step() == {}
    assert opt.last_step["errors"]["system_prompt"] == (
        "param 'system_prompt' expects at most 20,000 characters, got 25,000")
    assert prompt.value == "Be brief."


def test_prompt_renders_when_a_param_and_an_input_hold_equal_values(plugin_manager):
    weight = go.param(0.0, name="p0")
    offset = go.param(0.0, name="x", trainable=False)
    go.backward(go.ops.format("{}", weight + offset), "bigger")
    opt, _ = build([weight], replies({"reasoning": "r"}), plugin_manager)
    assert "x = 0.0" in opt.prompt()[1]["content"]
