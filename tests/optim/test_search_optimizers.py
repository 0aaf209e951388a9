"""``evolution`` and ``fewshot`` on their own: what they propose from feedback and evaluations."""

from __future__ import annotations

from typing import Any, Mapping, Sequence

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
