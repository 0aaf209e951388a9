"""Early-stopping racing: per-example scores and the Wilcoxon pruner."""

from __future__ import annotations

import random

import pytest

import graphopt as go

EXAMPLES = 30


@go.op
def answer(quality, example):
    return quality


def example_score(quality, example):
    # Easy and hard examples: the same example is scored alike across trials.
    return quality + 0.2 * ((example * 7919) % 5)


def evaluate(opt, quality, order):
    """Evaluate examples in ``order`` until the pruner stops it; the number evaluated."""
    for count, example in enumerate(order, start=1):
        go.backward(answer(quality, example), example_score(quality.value, example))
        if opt.should_prune(example=example):
            return count
    return len(order)


def test_worse_values_are_stopped_early_and_told_pruned(plugin_manager):
    quality = go.param(0.9, name="quality", space=go.Choice([0.9, 0.2]))
    opt = go.optimizer("optuna", [quality], pruner="wilcoxon", pruner_options={"p_threshold": 0.1},
                       sampler="random", seed=0, plugin_manager=plugin_manager)
    rng = random.Random(0)
    evaluated = []
    for _ in range(6):
        order = rng.sample(range(EXAMPLES), EXAMPLES)
        evaluated.append((quality.value, evaluate(opt, quality, order)))
        opt.step()
        opt.zero_feedback()
    states = {t.number: t.state.name for t in opt.study.trials}
    assert evaluated[0] == (0.9, EXAMPLES) and states[0] == "COMPLETE"
    worse = [(n, count) for n, (value, count) in enumerate(evaluated) if value == 0.2]
    assert worse, "the sampler never tried the worse value"
    for number, count in worse:
        assert count < EXAMPLES and states[number] == "PRUNED"


def test_examples_are_numbered_in_report_order_without_ids(plugin_manager):
    quality = go.param(0.9, name="quality", space=go.Choice([0.9, 0.2]))
    opt = go.optimizer("optuna", [quality], pruner="wilcoxon", plugin_manager=plugin_manager)
    for example in range(3):
        go.backward(answer(quality, example), 1.0 + example)
        opt.should_prune()
    go.backward(answer(quality, 3), 9.0)
    go.backward(answer(quality, 4), 11.0)
    opt.should_prune()  # two new feedbacks: one report of their mean
    assert opt.study.trials[0].intermediate_values == {0: 1.0, 1: 2.0, 2: 3.0, 3: 10.0}


def test_a_pruner_needs_the_single_score_objective(plugin_manager):
    quality = go.param(0.9, name="quality", space=go.Choice([0.9, 0.2]))
    with pytest.raises(ValueError, match="pruner 'wilcoxon' needs the single objective 'score'"):
        go.optimizer("optuna", [quality], pruner="wilcoxon",
                     objectives={"score": "maximize", "cost": "minimize"}, plugin_manager=plugin_manager)
