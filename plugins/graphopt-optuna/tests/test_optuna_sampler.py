"""The sampler is built once and kept: raw Optuna's suggestions, and its random state in state_dict."""

from __future__ import annotations

import functools
import json
import math

import optuna
import pytest

import graphopt as go
from graphopt.errors import ParamValidationError
from graphopt_optuna.random_state import random_states

optuna.logging.set_verbosity(optuna.logging.WARNING)

SPACES = {"x1": go.Float(-5.0, 10.0), "x2": go.Float(0.0, 15.0), "k": go.Int(1, 8),
          "mode": go.Choice(["a", "b", "c"])}
START = {"x1": 1.5, "x2": 7.0, "k": 3, "mode": "b"}


def objective(values):
    x1, x2 = values["x1"], values["x2"]
    branin = (x2 - 5.1 / (4 * math.pi ** 2) * x1 ** 2 + 5 / math.pi * x1 - 6) ** 2 \
        + 10 * (1 - 1 / (8 * math.pi)) * math.cos(x1) + 10
    return branin + abs(values["k"] - 5) + (values["mode"] != "c")


def make_params():
    return [go.param(START[name], name=name, space=space) for name, space in SPACES.items()]


def values_of(params):
    return {p.name: p.value for p in params}


def drive(opt, params, steps):
    seen = []
    for _ in range(steps):
        seen.append(values_of(params))
        opt.step(lambda: objective(values_of(params)))
    return seen


def make_opt(plugin_manager, params, **config):
    return go.optimizer("optuna", params, objectives={"value": "minimize"}, seed=7,
                        plugin_manager=plugin_manager, **config)


def test_the_sampler_is_built_once_for_the_whole_run(plugin_manager, monkeypatch):
    built = []
    original = optuna.samplers.TPESampler.__init__

    @functools.wraps(original)  # keeps the signature make_sampler reads for "seed"
    def counting(self, *args, **kwargs):
        built.append(kwargs.get("seed"))
        original(self, *args, **kwargs)

    monkeypatch.setattr(optuna.samplers.TPESampler, "__init__", counting)
    params = make_params()
    opt = make_opt(plugin_manager, params)
    drive(opt, params, 15)
    assert built == [7]
    assert opt.study.sampler is opt.sampler


def test_same_suggestions_as_raw_optuna_with_the_same_seed(plugin_manager):
    params = make_params()
    ours = drive(make_opt(plugin_manager, params), params, 25)  # past TPE's 10 startup trials
    study = optuna.create_study(sampler=optuna.samplers.TPESampler(seed=7))
    study.enqueue_trial(START)  # graphopt's first trial holds the params' own values
    distributions = {
        "x1": optuna.distributions.FloatDistribution(-5.0, 10.0),
        "x2": optuna.distributions.FloatDistribution(0.0, 15.0),
        "k": optuna.distributions.IntDistribution(1, 8),
        "mode": optuna.distributions.CategoricalDistribution(["a", "b", "c"]),
    }
    raw = []
    for _ in range(25):
        trial = study.ask(distributions)
        raw.append(trial.params)
        study.tell(trial, objective(trial.params))
    assert ours == raw


@pytest.mark.parametrize("sampler", ["tpe", "cmaes", "nsga2"])
def test_a_restored_optimizer_continues_as_the_uninterrupted_one(plugin_manager, sampler):
    config = {"sampler": sampler}
    if sampler == "nsga2":
        config["sampler_options"] = {"population_size": 4}
    params = make_params()
    opt = make_opt(plugin_manager, params, **config)
    drive(opt, params, 13)
    saved = json.loads(json.dumps(opt.state_dict()))
    restored_params = make_params()
    for source, target in zip(params, restored_params):
        target.assign(source.value)
    restored = make_opt(plugin_manager, restored_params, **config)
    restored.load_state_dict(saved)
    assert restored.sampler is not opt.sampler
    assert random_states(restored.sampler) == random_states(opt.sampler)
    assert drive(restored, restored_params, 6) == drive(opt, params, 6)


def test_the_random_state_moves_with_the_run(plugin_manager):
    params = make_params()
    opt = make_opt(plugin_manager, params)
    before = opt.state_dict()["extra"]["random_states"]
    drive(opt, params, 12)
    after = opt.state_dict()["extra"]["random_states"]
    assert set(before) == set(after) == {"_rng._rng", "_random_sampler._rng._rng"}
    assert before != after


def test_a_state_dict_naming_a_generator_the_sampler_lacks_is_refused(plugin_manager):
    params = make_params()
    opt = make_opt(plugin_manager, params)
    drive(opt, params, 2)
    saved = opt.state_dict()
    saved["extra"]["random_states"]["_no_such._rng"] = saved["extra"]["random_states"]["_rng._rng"]
    other_params = make_params()
    other = make_opt(plugin_manager, other_params)
    with pytest.raises(ParamValidationError, match=r"sampler 'tpe'.*_no_such\._rng"):
        other.load_state_dict(saved)
    assert other.study.trials == []  # refused before anything was assigned


def test_a_plain_closure_runs_once_per_values_and_repeats_are_told_from_the_memo(plugin_manager):
    k = go.param(1, name="k", space=go.Int(1, 3))
    mode = go.param("a", name="mode", space=go.Choice(["a", "b"]))
    opt = go.optimizer("optuna", [k, mode], objectives={"value": "minimize"}, seed=0,
                       plugin_manager=plugin_manager)
    runs = []

    def closure():
        runs.append((k.value, mode.value))
        return k.value + (mode.value == "b")

    for _ in range(25):  # six possible points: TPE asks for most of them again
        opt.step(closure)
    assert len(runs) == len(set(runs)) == opt.evaluations == opt.distinct_points <= 6
    finished = [t for t in opt.study.trials if t.state.name == "COMPLETE"]
    assert len(finished) == 25
    assert all(t.value == t.params["k"] + (t.params["mode"] == "b") for t in finished)


def test_memo_size_zero_runs_the_closure_every_step(plugin_manager):
    k = go.param(1, name="k", space=go.Int(1, 2))
    opt = go.optimizer("optuna", [k], objectives={"value": "minimize"}, memo_size=0, seed=0,
                       plugin_manager=plugin_manager)
    runs = []
    for _ in range(8):
        opt.step(lambda: runs.append(k.value) or float(k.value))
    assert len(runs) == opt.evaluations == 8


def test_the_memo_travels_in_the_state_dict(plugin_manager):
    params = make_params()
    opt = make_opt(plugin_manager, params)
    drive(opt, params, 5)
    restored_params = make_params()
    for source, target in zip(params, restored_params):
        target.assign(source.value)
    restored = make_opt(plugin_manager, restored_params)
    restored.load_state_dict(json.loads(json.dumps(opt.state_dict())))
    assert (restored.evaluations, restored.distinct_points) == (opt.evaluations, opt.distinct_points) == (5, 5)
