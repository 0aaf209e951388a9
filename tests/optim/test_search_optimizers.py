"""``evolution`` and ``fewshot`` on their own: what they propose from feedback and evaluations."""

from __future__ import annotations

import json
from typing import Any, Mapping, Sequence

import pytest

import graphopt as go
from graphopt.graph.demos import demos
from graphopt.graph.node import Param
from graphopt.llm.scripted import scripted_client


class TableEvaluation:
    """Scores candidates by a function of their values, the same on every example."""

    def __init__(self, score, size: int = 8) -> None:
        self.score = score
        self.size = size
        self.asked: list[dict[str, Any]] = []

    def __call__(self) -> go.Feedback:
        return go.Feedback(score=0.0)

    def scores(self, values: Mapping[Param, Any], indices: Sequence[int]) -> list[float]:
        named = {p.name: v for p, v in values.items()}
        self.asked.append(named)
        return [self.score(named, i) for i in indices]


@go.op
def run(*values: Any) -> str:
    return "out"


def test_evolution_commits_the_best_llm_rewrite_and_records_the_race():
    prompt = go.param("Answer.", name="prompt")
    client = scripted_client(lambda messages, params: "```text\nAnswer step by step.\n```")
    opt = go.optimizer("evolution", [prompt], llm=client, population=2, offspring=2, seed=0)
    go.backward(run(prompt), go.Feedback(score=0.0, text="too terse"))
    evaluation = TableEvaluation(lambda values, i: float("step by step" in values["prompt"]))
    committed = opt.step(evaluation)
    assert committed == {"prompt": "Answer step by step."}
    assert opt.last_race["candidates"] == 2
    assert "too terse" in client.backend.calls[0][0][-1]["content"]


def test_evolution_length_penalty_prefers_the_shorter_of_equals():
    prompt = go.param("A long and winding instruction that says little.", name="prompt")
    client = scripted_client(lambda messages, params: "```text\nBe brief.\n```")
    opt = go.optimizer("evolution", [prompt], llm=client, offspring=1, length_penalty=0.1, seed=0)
    go.backward(run(prompt), go.Feedback(score=1.0))
    opt.step(TableEvaluation(lambda values, i: 1.0))
    assert prompt.value == "Be brief."


def test_evolution_perturbs_hyperparameters_without_an_llm():
    k = go.param(2, name="k", space=go.Int(0, 10))
    opt = go.optimizer("evolution", [k], offspring=6, seed=0)
    go.backward(run(k), go.Feedback(score=0.0))
    opt.step(TableEvaluation(lambda values, i: -abs(values["k"] - 7)))
    assert abs(k.value - 7) < 5


def test_fewshot_bootstraps_successful_runs_into_demonstrations():
    shots = demos(name="shots", max_demos=2)

    @go.op
    def answer(shots: list, question: str) -> str:
        return question.upper()

    opt = go.optimizer("fewshot", [shots], max_demos=2, min_score=1.0, seed=0)
    for question, score in (("a", 1.0), ("b", 0.0), ("c", 1.0)):
        go.backward(answer(shots, question), go.Feedback(score=score))
    evaluation = TableEvaluation(lambda values, i: float(len(values["shots"]) == 2))
    committed = opt.step(evaluation)
    assert opt.pool["shots"] == [{"inputs": {"question": "a"}, "output": "A"},
                                 {"inputs": {"question": "c"}, "output": "C"}]
    assert committed == {"shots": opt.pool["shots"]}


def test_fewshot_keeps_the_current_value_when_no_subset_beats_it():
    shots = demos(name="shots")

    @go.op
    def answer(shots: list, question: str) -> str:
        return question

    opt = go.optimizer("fewshot", [shots], seed=0)
    go.backward(answer(shots, "q"), go.Feedback(score=1.0))
    assert opt.step(TableEvaluation(lambda values, i: float(not values["shots"]))) == {}
    assert shots.value == []


def branin_like(values):
    x, y = values["x"], values["y"]
    return (y - 0.13 * x * x + 1.6 * x - 6) ** 2 + 9.6 * (1 - 0.04 * x) + 0.0 * values["k"]


def numeric_params():
    return [go.param(9.0, name="x", space=go.Float(-5.0, 10.0)),
            go.param(14.0, name="y", space=go.Float(0.0, 15.0)),
            go.param(3, name="k", space=go.Int(0, 6))]


def test_evolution_with_a_plain_closure_never_runs_the_same_values_twice():
    params = numeric_params()
    seen = []

    def closure():
        seen.append(json.dumps({p.name: p.value for p in params}, sort_keys=True))
        return branin_like({p.name: p.value for p in params})

    opt = go.optimizer("evolution", params, seed=0)
    for _ in range(8):  # survivors stay in the population from step to step
        opt.step(closure)
    assert len(seen) == len(set(seen)) == opt.evaluations == opt.distinct_points
    assert opt.evaluations > 8 * 3


def test_evolution_steps_on_a_closure_without_feedback_and_improves():
    params = numeric_params()
    start = branin_like({p.name: p.value for p in params})
    opt = go.optimizer("evolution", params, seed=1)
    for _ in range(10):
        opt.step(lambda: branin_like({p.name: p.value for p in params}))
    assert branin_like({p.name: p.value for p in params}) < start / 4


def test_evolution_step_size_follows_the_one_fifth_rule():
    # A flat objective: no child ever beats its parents, so the numeric step shrinks each generation.
    params = numeric_params()
    opt = go.optimizer("evolution", params, step_size=0.2, seed=0)
    opt.step(lambda: 1.0)
    first = opt.step_size
    opt.step(lambda: 1.0)
    assert first < 0.2 and opt.step_size < first
    # A slope the children can keep descending: most of them beat their parents, the step grows.
    params = numeric_params()
    opt = go.optimizer("evolution", params, step_size=0.01, population=1, offspring=4, seed=0)
    for _ in range(3):
        opt.step(lambda: params[0].value + params[1].value)
    assert opt.step_size > 0.01


def test_evolution_refuses_a_step_size_outside_the_unit_range():
    with pytest.raises(ValueError, match=r"step_size expects a number in \(0, 0.5\], got 2"):
        go.optimizer("evolution", numeric_params(), step_size=2)


def test_evolution_state_keeps_the_memo_and_step_size():
    params = numeric_params()
    opt = go.optimizer("evolution", params, seed=0)

    def closure():
        return branin_like({p.name: p.value for p in params})

    for _ in range(3):
        opt.step(closure)
    state = json.loads(json.dumps(opt.state_dict()))
    other_params = numeric_params()
    for source, target in zip(params, other_params):
        target.assign(source.value)
    other = go.optimizer("evolution", other_params, seed=0)
    other.load_state_dict(state)
    assert (other.evaluations, other.distinct_points, other.step_size) == \
        (opt.evaluations, opt.distinct_points, opt.step_size)
    runs = []

    def counted():
        runs.append(1)
        return branin_like({p.name: p.value for p in other_params})

    other.step(counted)
    opt.step(closure)
    assert [p.value for p in other_params] == [p.value for p in params]
    assert 0 < len(runs) <= 4  # only the offspring run: the survivors' scores come from the memo
