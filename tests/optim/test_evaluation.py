"""The evaluation memo: each (values, example) run once, counted; keys by value, not by order."""

from __future__ import annotations

import json

import pytest
import torch

import graphopt as go
from graphopt.errors import OptimizerStepError
from graphopt.optim.evaluation import (ClosureEvaluation, EvaluationMemo, as_evaluation, point_key,
                                       require_evaluation)


def make_params():
    return [go.param(1, name="k", space=go.Int(0, 10)), go.param("a", name="mode", space=go.Choice(["a", "b"]))]


def test_a_memo_runs_each_key_once_and_counts_runs_and_points():
    memo = EvaluationMemo()
    runs = []

    def compute(value):
        runs.append(value)
        return value * 2.0

    keys = ("a", "bb", "a", "bb", "ccc")
    assert [memo.run(key, lambda key=key: compute(len(key))) for key in keys] == [2.0, 4.0, 2.0, 4.0, 6.0]
    assert runs == [1, 2, 3]
    assert (memo.evaluations, memo.distinct_points) == (3, 3)


def test_a_full_memo_drops_the_least_recently_used_and_counts_its_rerun():
    memo = EvaluationMemo(capacity=2)
    for key in ("a", "b", "a", "c"):  # "a" was used again, so "b" is dropped
        memo.run(key, lambda: 1.0)
    assert list(memo.entries) == ["a", "c"]
    memo.run("b", lambda: 1.0)
    assert (memo.evaluations, memo.distinct_points) == (4, 4)


def test_a_memo_refuses_a_bad_capacity():
    with pytest.raises(ValueError, match="capacity expects an int >= 0, got -1"):
        EvaluationMemo(-1)


def test_a_memo_of_capacity_zero_runs_every_time_and_counts():
    memo = EvaluationMemo(0)
    runs = []
    for _ in range(3):
        memo.run("a", lambda: runs.append(1) or 1.0)
    assert len(runs) == memo.evaluations == 3 and not memo.entries


def test_the_memo_state_round_trips_through_json():
    memo = EvaluationMemo(capacity=3)
    for key in ("x", "y", "x"):
        memo.run(key, lambda key=key: float(ord(key)))
    restored = EvaluationMemo()
    restored.load_state_dict(json.loads(json.dumps(memo.state_dict())))
    assert restored.state_dict() == memo.state_dict()
    assert restored.run("y", lambda: -1.0) == float(ord("y"))


def test_point_keys_follow_values_not_their_order_or_the_example():
    k, mode = make_params()
    names = {k: "k", mode: "mode"}
    assert point_key({k: 3, mode: "b"}, names) == point_key({mode: "b", k: 3}, names)
    assert point_key({k: 3, mode: "b"}, names) != point_key({k: 4, mode: "b"}, names)
    assert point_key({k: 3, mode: "b"}, names, 0) != point_key({k: 3, mode: "b"}, names, 1)


def test_point_keys_read_tensors_by_their_bytes():
    w = go.param(torch.zeros(3), name="w")
    names = {w: "w"}
    same = point_key({w: torch.tensor([1.0, 2.0, 3.0])}, names)
    assert same == point_key({w: torch.tensor([1.0, 2.0, 3.0])}, names)
    assert same != point_key({w: torch.tensor([1.0, 2.0, 3.5])}, names)


def test_a_closure_evaluation_with_a_memo_runs_each_candidate_once():
    k, mode = make_params()
    calls = []

    def closure():
        calls.append((k.value, mode.value))
        return float(k.value)  # a loss

    evaluation = as_evaluation(closure, memo=EvaluationMemo(), names={k: "k", mode: "mode"})
    assert isinstance(evaluation, ClosureEvaluation)
    for values in ({k: 3, mode: "a"}, {k: 5, mode: "b"}, {mode: "a", k: 3}):
        evaluation.scores(values, [0])
    assert evaluation.scores({k: 5, mode: "b"}, [0]) == [-5.0]
    assert calls == [(3, "a"), (5, "b")]
    assert (k.value, mode.value) == (1, "a")  # candidates assigned only while scored
    assert (evaluation.memo.evaluations, evaluation.memo.distinct_points) == (2, 2)


def test_a_closure_evaluation_without_a_memo_runs_every_time():
    k, _ = make_params()
    calls = []
    evaluation = ClosureEvaluation(lambda: calls.append(k.value) or 0.0)
    evaluation.scores({k: 2}, [0])
    evaluation.scores({k: 2}, [0])
    assert calls == [2, 2]


def test_a_memo_needs_names_to_key_candidates():
    with pytest.raises(ValueError, match="needs the params' names"):
        ClosureEvaluation(lambda: 0.0, memo=EvaluationMemo())


def test_is_evaluation_agrees_with_the_protocol():
    from graphopt.optim.evaluation import Evaluation, is_evaluation

    k, _ = make_params()
    closure = ClosureEvaluation(lambda: 0.0)
    for candidate in (closure, lambda: 0.0, None, 3.0, EvaluationMemo()):
        assert is_evaluation(candidate) == isinstance(candidate, Evaluation)


def test_require_evaluation_names_the_optimizer_when_there_is_no_closure():
    class Searcher:
        name = "searcher"

    with pytest.raises(OptimizerStepError, match="optimizer 'searcher' needs step\\(closure\\)") as caught:
        require_evaluation(Searcher(), None)
    assert caught.value.optimizer.name == "searcher"
    assert require_evaluation(Searcher(), lambda: 1.0).scores({}, [0]) == [-1.0]
