"""The optuna optimizer: ask/tell driven by score feedback, samplers by name, several objectives."""

from __future__ import annotations

import math

import pytest

import graphopt as go
from graphopt.errors import OptimizerStepError, ParamValidationError
from graphopt_optuna import OptunaOptimizer

PROMPTS = ["Answer.", "Answer briefly.", "Think step by step, then answer."]


@go.op
def workflow(top_k, temperature, prompt):
    return (top_k, temperature, prompt)


def score(top_k, temperature, prompt):
    return -abs(top_k - 7) / 10 - abs(temperature - 0.3) + (prompt == PROMPTS[2])


def make_params():
    return [go.param(1, name="top_k", space=go.Int(1, 10)),
            go.param(1.0, name="temperature", space=go.Float(0.0, 1.0)),
            go.param(PROMPTS[0], name="prompt", space=go.Choice(PROMPTS))]


def tune(plugin_manager, steps, **config):
    params = make_params()
    opt = go.optimizer("optuna", params, plugin_manager=plugin_manager, **config)
    for _ in range(steps):
        out = workflow(*params)
        go.backward(out, go.Feedback(score=score(*out.value)))
        opt.step()
        opt.zero_feedback()
    return params, opt


def test_registered_under_its_name(plugin_manager):
    assert plugin_manager.lookup("optimizers", "optuna") is OptunaOptimizer


def test_tpe_tunes_ints_floats_and_text_candidates(plugin_manager):
    _, opt = tune(plugin_manager, 40, seed=0)
    [best] = opt.best_trials()
    assert best["values"]["prompt"] == PROMPTS[2]
    assert best["objectives"]["score"] > 0.7


def test_the_initial_values_are_the_first_trial(plugin_manager):
    _, opt = tune(plugin_manager, 1, seed=0)
    first = opt.study.trials[0]
    assert first.params == {"top_k": 1, "temperature": 1.0, "prompt": PROMPTS[0]}
    assert first.value == pytest.approx(score(1, 1.0, PROMPTS[0]))


def test_each_step_commits_the_next_trials_values(plugin_manager):
    params, opt = tune(plugin_manager, 5, seed=0)
    running = [t for t in opt.study.trials if t.state.name == "RUNNING"]
    assert [t.number for t in running] == [5]
    assert running[0].params == {p.name: p.value for p in params}
    assert [t.state.name for t in opt.study.trials[:5]] == ["COMPLETE"] * 5


def test_same_seed_same_values_other_seed_other_values(plugin_manager):
    def values(seed):
        return [t.params for t in tune(plugin_manager, 12, seed=seed)[1].study.trials]
    assert values(0) == values(0)
    assert values(0) != values(1)


@pytest.mark.parametrize("sampler", ["tpe", "cmaes", "gp", "nsga2", "random", "qmc", "TPESampler"])
def test_every_sampler_by_name_proposes_values_in_the_spaces(plugin_manager, sampler):
    params, opt = tune(plugin_manager, 4, sampler=sampler, seed=0)
    assert len(opt.study.trials) == 5
    for target in params:
        target.validate(target.value)


def test_sampler_options_reach_the_sampler(plugin_manager):
    _, opt = tune(plugin_manager, 1, sampler="tpe", sampler_options={"n_startup_trials": 3})
    assert opt.study.sampler._n_startup_trials == 3


def test_an_unknown_sampler_names_close_matches(plugin_manager):
    with pytest.raises(ValueError, match=r"no Optuna sampler named 'tpee'.*did you mean 'tpe'"):
        go.optimizer("optuna", make_params(), sampler="tpee", plugin_manager=plugin_manager)


def test_bad_sampler_options_name_the_sampler(plugin_manager):
    with pytest.raises(ValueError, match="sampler 'tpe' .*refused options"):
        tune(plugin_manager, 1, sampler_options={"no_such_option": 1})


def test_a_number_without_space_is_refused_by_name(plugin_manager):
    unbounded = go.param(3, name="retries")
    with pytest.raises(ParamValidationError, match="param 'retries' needs a space") as caught:
        go.optimizer("optuna", [unbounded], plugin_manager=plugin_manager)
    assert caught.value.param is unbounded


def test_choice_of_structured_options_commits_the_options_themselves(plugin_manager):
    shots = [[], [{"q": "2+2", "a": "4"}], [{"q": "2+2", "a": "4"}, {"q": "3+3", "a": "6"}]]
    demos = go.param(shots[0], name="demos", space=go.Choice(shots))
    opt = go.optimizer("optuna", [demos], plugin_manager=plugin_manager, seed=0)
    seen = []
    for _ in range(8):
        go.backward(workflow(demos, 0, 0), go.Feedback(score=len(demos.value)))
        opt.step()
        opt.zero_feedback()
        seen.append(demos.value)
    assert all(value in shots for value in seen)
    assert opt.best_trials()[0]["values"]["demos"] == shots[2]


def test_step_without_score_changes_nothing(plugin_manager):
    params = make_params()
    opt = go.optimizer("optuna", params, plugin_manager=plugin_manager)
    go.backward(workflow(*params), "text only, no score")
    assert opt.step() == {}
    assert opt.study.trials == []


def test_values_set_by_hand_are_recorded_and_the_unused_trial_failed(plugin_manager):
    params, opt = tune(plugin_manager, 2, seed=0)
    params[0].assign(10)
    go.backward(workflow(*params), go.Feedback(score=0.5))
    opt.step()
    states = [t.state.name for t in opt.study.trials]
    assert states[:4] == ["COMPLETE", "COMPLETE", "FAIL", "COMPLETE"]
    assert opt.study.trials[3].params["top_k"] == 10 and opt.study.trials[3].value == 0.5


def test_a_nan_score_fails_the_trial(plugin_manager):
    params = make_params()
    opt = go.optimizer("optuna", params, plugin_manager=plugin_manager)
    go.backward(workflow(*params), go.Feedback(score=math.nan, text="crashed"))
    go.backward(workflow(*params), go.Feedback(score=math.nan))
    opt.step(lambda: math.nan)
    assert opt.study.trials[0].state.name == "FAIL"


def test_closure_value_is_the_single_objective(plugin_manager):
    params = make_params()
    opt = go.optimizer("optuna", params, objectives={"loss": "minimize"}, plugin_manager=plugin_manager)
    opt.step(lambda: 0.25)
    assert opt.study.trials[0].value == 0.25


class TestSeveralObjectives:
    def make(self, plugin_manager):
        params = make_params()
        opt = go.optimizer("optuna", params, sampler="nsga2", sampler_options={"population_size": 4},
                           objectives={"score": "maximize", "cost": "minimize"}, seed=0,
                           plugin_manager=plugin_manager)
        return params, opt

    def test_score_from_feedback_cost_from_the_closure_give_a_pareto_front(self, plugin_manager):
        params, opt = self.make(plugin_manager)
        for _ in range(12):
            out = workflow(*params)
            go.backward(out, go.Feedback(score=score(*out.value)))
            opt.step(lambda: {"cost": params[0].value * 0.01})
            opt.zero_feedback()
        front = opt.best_trials()
        assert front and all(set(t["objectives"]) == {"score", "cost"} for t in front)
        costs = [t["objectives"]["cost"] for t in front]
        scores = [t["objectives"]["score"] for t in front]
        # On a Pareto front a cheaper trial never also scores higher than a dearer one.
        pairs = sorted(zip(costs, scores))
        assert all(a[1] <= b[1] for a, b in zip(pairs, pairs[1:]))

    def test_a_missing_objective_refuses_the_step(self, plugin_manager):
        params, opt = self.make(plugin_manager)
        go.backward(workflow(*params), go.Feedback(score=1.0))
        before = [p.value for p in params]
        with pytest.raises(OptimizerStepError, match="no value for objective.*cost"):
            opt.step()
        assert [p.value for p in params] == before

    def test_an_unknown_objective_from_the_closure_is_refused(self, plugin_manager):
        params, opt = self.make(plugin_manager)
        with pytest.raises(OptimizerStepError, match="closure returned objective 'latency'"):
            opt.step(lambda: {"score": 1.0, "cost": 0.1, "latency": 3})


def test_objectives_need_a_direction(plugin_manager):
    with pytest.raises(ValueError, match="objective 'cost' must be 'maximize' or 'minimize'"):
        go.optimizer("optuna", make_params(), objectives={"cost": "cheap"}, plugin_manager=plugin_manager)


def test_loading_a_state_dict_with_another_sampler_is_refused(plugin_manager):
    _, opt = tune(plugin_manager, 2, sampler="tpe")
    other = go.optimizer("optuna", make_params(), sampler="random", plugin_manager=plugin_manager)
    with pytest.raises(ParamValidationError, match="state dict has sampler='tpe'"):
        other.load_state_dict(opt.state_dict())
