import json

import pytest

import graphopt as go


def score(k, temperature):
    return -abs(k - 7) - abs(temperature - 0.3)


def run(plugin_manager, steps, seed=0):
    k = go.param(1, name="k", space=go.Int(1, 10))
    temperature = go.param(1.0, name="temperature", space=go.Float(0.0, 1.0))
    opt = go.optimizer("random", [k, temperature], seed=seed, plugin_manager=plugin_manager)

    @go.op
    def workflow(k, temperature):
        return (k, temperature)

    for _ in range(steps):
        out = workflow(k, temperature)
        go.backward(out, go.Feedback(score=score(*out.value)))
        opt.step()
        opt.zero_feedback()
    return k, temperature, opt


def test_random_search_records_history_and_keeps_the_best(plugin_manager):
    _, _, opt = run(plugin_manager, 40)
    assert len(opt.history) == 40
    best = opt.best
    assert best["score"] == max(h["score"] for h in opt.history)
    assert best["score"] > -1.0


def test_random_search_is_deterministic_per_seed(plugin_manager):
    assert run(plugin_manager, 10)[2].history == run(plugin_manager, 10)[2].history
    assert run(plugin_manager, 10)[2].history != run(plugin_manager, 10, seed=1)[2].history


def test_step_without_scores_changes_nothing(plugin_manager):
    k = go.param(2, name="k", space=go.Int(1, 10))
    opt = go.optimizer("random", [k], plugin_manager=plugin_manager)
    go.backward(k + 1, "only text")
    assert opt.step() == {}
    assert k.value == 2 and opt.history == []


def test_random_needs_spaces(plugin_manager):
    with pytest.raises(go.ParamValidationError, match="needs a space"):
        go.optimizer("random", [go.param(3, name="n")], plugin_manager=plugin_manager)


def test_state_round_trip_continues_the_same_sequence(plugin_manager):
    k, t, opt = run(plugin_manager, 5)
    state = json.loads(json.dumps(opt.state_dict()))
    k2 = go.param(k.value, name="k", space=go.Int(1, 10))
    t2 = go.param(t.value, name="temperature", space=go.Float(0.0, 1.0))
    opt2 = go.optimizer("random", [k2, t2], plugin_manager=plugin_manager)
    opt2.load_state_dict(state)
    for o, params in ((opt, (k, t)), (opt2, (k2, t2))):
        go.backward(params[0] + 0, 1.0)
        o.step()
    assert (k.value, t.value) == (k2.value, t2.value)
    assert opt2.history == opt.history


def test_random_search_scores_the_values_with_a_closure_once_per_values(plugin_manager):
    k = go.param(1, name="k", space=go.Int(1, 3))
    mode = go.param("a", name="mode", space=go.Choice(["a", "b"]))
    opt = go.optimizer("random", [k, mode], seed=0, plugin_manager=plugin_manager)
    runs = []

    def closure():
        runs.append((k.value, mode.value))
        return float(k.value) + (mode.value == "b")  # a loss

    for _ in range(30):  # six possible points: most steps revisit one
        opt.step(closure)
    assert len(runs) == len(set(runs)) == opt.evaluations == opt.distinct_points <= 6
    assert opt.best["values"] == {"k": 1, "mode": "a"} and opt.best["score"] == -1.0
    assert len(opt.history) == 30


def test_random_search_prefers_score_feedback_over_the_closure(plugin_manager):
    k, temperature, opt = run(plugin_manager, 0)

    @go.op
    def workflow(k, temperature):
        return k

    go.backward(workflow(k, temperature), go.Feedback(score=0.5))
    opt.step(lambda: pytest.fail("the closure runs only without score feedback"))
    assert opt.history[-1]["score"] == 0.5 and opt.evaluations == 0
