"""Every (values, example) pair runs once; evaluations and distinct points are counted and capped."""

from __future__ import annotations

import pytest

import graphopt as go
from graphopt.train import Checkpoint, Trainer, optimize


def counted_workflow():
    """A one-number workflow whose every real run is logged as (value, input)."""
    x = go.param(0, name="x", space=go.Int(-10, 10))
    calls: list[tuple[int, int]] = []

    @go.op
    def f(a: int, x: int) -> int:
        calls.append((x, a))
        return -(x - 3) ** 2 + a

    return x, calls, (lambda a: f(a, x))


@pytest.mark.parametrize("name, config", [("random", {"seed": 1}),
                                          ("evolution", {"population": 2, "offspring": 2, "seed": 1}),
                                          ("spsa", {"seed": 1})], ids=["random", "evolution", "spsa"])
def test_no_values_example_pair_is_run_twice(name, config):
    x, calls, flow = counted_workflow()
    result = optimize(flow, [(0, 0)], metric=lambda e, p: p, epochs=15, batch_size=1, eval_every=1,
                      quiet=True, optimizers=[go.optimizer(name, [x], **config)])
    assert len(calls) == result.evaluations > 0
    assert len(set(calls)) == result.distinct_points == result.evaluations
    assert sum(r.usage.evaluations for r in result.history) == result.evaluations


def test_training_runs_reuse_the_validation_runs_of_the_same_values():
    x, calls, flow = counted_workflow()
    data = [(a, 0) for a in range(4)]
    result = optimize(flow, data, metric=lambda e, p: p, epochs=3, batch_size=2, eval_every=1, quiet=True,
                      optimizers=[go.optimizer("random", [x], seed=2)])
    assert result.distinct_points == result.evaluations == len(set(calls)) == len(calls)


def test_max_evaluations_stops_the_run_exactly_there_with_a_valid_checkpoint(tmp_path):
    x, calls, flow = counted_workflow()
    checkpoint = tmp_path / "run.ckpt"
    options = dict(metric=lambda e, p: p, epochs=20, batch_size=1, eval_every=1, quiet=True,
                   checkpoint=checkpoint)
    result = optimize(flow, [(0, 0), (1, 0)], optimizers=[go.optimizer("random", [x], seed=1)],
                      max_evaluations=7, **options)
    assert result.stopped == "budget"
    assert len(calls) == result.evaluations == 7
    saved = Checkpoint.load(checkpoint)
    assert saved.finished is None and saved.position.step == result.steps
    assert saved.usage.evaluations <= 7
    resumed = optimize(flow, [(0, 0), (1, 0)], optimizers=[go.optimizer("random", [x], seed=1)],
                       max_evaluations=12, resume=checkpoint, **options)
    # a resumed run counts what its checkpoint records (the cut-short step is run again)
    assert resumed.stopped == "budget" and len(calls) == 7 + 12 - saved.usage.evaluations


def test_max_evaluations_must_be_a_positive_int():
    x, _, flow = counted_workflow()
    with pytest.raises(ValueError, match="max_evaluations expects an int >= 1 or None, got 0"):
        Trainer(flow, [(0, 0)], metric=lambda e, p: p, optimizers=[go.optimizer("random", [x])],
                max_evaluations=0)


def test_changed_targets_under_the_same_ids_are_scored_anew(tmp_path):
    x, calls, flow = counted_workflow()
    cache = tmp_path / "eval"

    def exact(example, prediction):
        return float(prediction == example.target)

    def trainer(target):
        return Trainer(flow, [{"id": "a", "input": 1, "target": target}], metric=exact, cache=cache,
                       optimizers=[go.optimizer("random", [x])], quiet=True)

    assert trainer(-8).validate() == 1.0  # x=0: -(0-3)**2 + 1 == -8
    assert trainer(5).validate() == 0.0
    assert len(calls) == 2
    assert trainer(5).validate() == 0.0 and len(calls) == 2  # same content: served from the cache


def test_another_metric_or_workflow_code_gets_its_own_cache_entries(tmp_path):
    x, calls, flow = counted_workflow()
    cache = tmp_path / "eval"
    data = [{"id": "a", "input": 1, "target": 0}]
    first = Trainer(flow, data, metric=lambda e, p: 1.0, cache=cache, quiet=True,
                    optimizers=[go.optimizer("random", [x])])
    second = Trainer(flow, data, metric=lambda e, p: 2.0, cache=cache, quiet=True,
                     optimizers=[go.optimizer("random", [x])])
    assert (first.validate(), second.validate()) == (1.0, 2.0)
    _, _, other_flow = counted_workflow()
    assert first.runner.namespace != second.runner.namespace
    third = Trainer(lambda a: other_flow(a) + 0, data, metric=lambda e, p: 1.0, cache=cache, quiet=True,
                    optimizers=[go.optimizer("random", [x])])
    assert third.runner.namespace != first.runner.namespace


def test_kept_runs_with_tensors_are_used_once_and_dropped_once_the_tensors_change():
    import torch

    w = go.param(torch.zeros(2, requires_grad=True), name="w")
    k = go.param(0, name="k", space=go.Int(0, 3))

    @go.op
    def predict(w, x, k):
        return (w * x).sum() + 0 * k

    def loss(example, prediction):
        return (prediction - example.target) ** 2

    data = [([1.0, 2.0], 3.0), ([2.0, 1.0], 3.0)]
    result = optimize(lambda x: predict(w, torch.tensor(x), k), data, metric=loss, epochs=6, batch_size=2,
                      eval_every=1, quiet=True, restore_best=False,
                      optimizers=[go.optimizer("torch", [w], algorithm="SGD", lr=0.05),
                                  go.optimizer("random", [k], seed=0)])
    assert result.history[-1].val_score > result.history[0].val_score
    assert result.distinct_points == result.evaluations
