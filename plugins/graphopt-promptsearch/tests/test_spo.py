"""``spo`` and the judges: pairwise wins counted, position bias cancelled, no metric needed."""

from __future__ import annotations

import itertools

import pytest

import graphopt as go
from graphopt.llm.scripted import scripted_client
from graphopt_promptsearch import cli_judge, compare, llm_judge, preference_of
from graphopt_promptsearch.judge import parse_verdict

INPUTS = ["2+2?", "3+3?", "4+4?"]


def rewrites(*values: str):
    replies = itertools.cycle(values)
    return scripted_client(lambda messages, params: f"```text\n{next(replies)}\n```")


def prefers_concise(first, second) -> float:
    a, b = "concise" in first, "concise" in second
    return 0.5 if a == b else float(a)


def outputs(system):
    return lambda: [f"{system.value} | {question}" for question in INPUTS]


def test_pairwise_wins_are_counted_and_only_a_winner_is_kept():
    system = go.param("Answer.", name="system")
    calls = []

    def judge(first, second):
        calls.append((first, second))
        return prefers_concise(first, second)

    opt = go.optimizer("spo", [system], llm=rewrites("Be verbose.", "Be concise."), judge=judge, seed=0)
    assert opt.step(outputs(system)) == {}            # three ties: not kept
    assert opt.history[-1] == {"step": 1, "param": "system", "wins": 0, "losses": 0, "ties": 3,
                               "kept": False}
    assert opt.step(outputs(system)) == {"system": "Be concise."}
    assert opt.history[-1]["wins"] == 3 and opt.history[-1]["kept"]
    assert (opt.wins, opt.losses, opt.ties) == (3, 0, 3)
    assert len(calls) == 2 * 2 * len(INPUTS)          # both orders, each input, two steps
    assert opt.step(outputs(system)) == {}            # verbose now loses to concise
    assert opt.history[-1]["losses"] == 3 and system.value == "Be concise."


def test_the_rewrite_sees_requirements_and_outputs_but_no_labels():
    system = go.param("Answer.", name="system")
    client = rewrites("Be concise.")
    opt = go.optimizer("spo", [system], llm=client, judge=prefers_concise,
                       requirements="One short sentence.", seed=0)
    opt.step(outputs(system))
    prompt = client.backend.prompts()[0]
    assert "One short sentence." in prompt and "Answer. | 2+2?" in prompt
    assert "no reference answers" in prompt


def test_llm_judge_asks_the_model_and_reads_its_last_verdict():
    client = scripted_client(lambda messages, params: "A is vague, B answers.\nB")
    judge = llm_judge(client, requirements="Answer the sum.")
    feedback = judge("four-ish", "4")
    assert feedback.preference == 0.0 and "B answers" in feedback.text
    assert "Answer the sum." in client.backend.prompts()[0]
    assert parse_verdict("Both fine.\nTIE") == 0.5 and parse_verdict("no verdict") == 0.5


def test_swapping_cancels_a_judge_that_always_picks_the_first():
    assert compare(lambda a, b: "a", "x", "y", swap=False) == 1.0
    assert compare(lambda a, b: "a", "x", "y") == 0.5
    assert compare(lambda a, b: float(a == "x"), "x", "y") == 1.0


def test_spo_with_the_llm_judge_end_to_end():
    system = go.param("Answer.", name="system")

    def model(messages, params):
        content = messages[-1]["content"]
        if "Which output is better" in content:
            a = content.split("Output A:")[1].split("Output B:")[0]
            return "A" if "concise" in a else "B" if "concise" in content.split("Output B:")[1] else "TIE"
        return "```text\nBe concise.\n```"

    opt = go.optimizer("spo", [system], llm=scripted_client(model), seed=0)
    assert opt.step(outputs(system)) == {"system": "Be concise."}
    assert opt.wins == 3


def test_preference_feedback_is_checked():
    assert go.Feedback(preference=0.25).preference == 0.25
    assert "preference=0.25" in go.Feedback(preference=0.25).describe()
    for bad in (1.5, -0.1, float("nan")):
        with pytest.raises(ValueError, match="preference"):
            go.Feedback(preference=bad)
    assert preference_of(go.Feedback(preference=1.0)) == 1.0
    assert preference_of("tie") == 0.5
    with pytest.raises(ValueError, match="preference"):
        preference_of(go.Feedback(score=1.0))
    with pytest.raises(ValueError, match="'a', 'b' or 'tie'"):
        preference_of("maybe")


def test_cli_judge_shows_both_outputs_and_asks_until_answered():
    shown, answers = [], iter(["", "x", "B"])
    judge = cli_judge(ask=lambda prompt: next(answers), tell=shown.append)
    assert judge("first output", "second output").preference == 0.0
    assert "first output" in shown[0] and "second output" in shown[0]
    assert shown[1:] == ["Please answer a, b or t.", "Please answer a, b or t."]


def test_spo_step_without_a_closure_changes_nothing():
    system = go.param("Answer.", name="system")
    opt = go.optimizer("spo", [system], llm=rewrites("x"), judge=prefers_concise)
    assert opt.step() == {} and opt.steps == 0
    with pytest.raises(ValueError, match="judge"):
        go.optimizer("spo", [system], judge="person")
