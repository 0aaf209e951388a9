import json

import pytest
import torch

import graphopt as go


@go.op
def quadratic(x, y):
    """(x - 3)^2 + (y - 7)^2"""
    return (x - 3.0) ** 2 + (y - 7) ** 2


def test_spsa_minimizes_a_traced_quadratic_over_bounded_numbers(plugin_manager):
    x = go.param(0.0, name="x", space=go.Float(-10.0, 10.0))
    y = go.param(0, name="y", space=go.Int(0, 20))
    opt = go.optimizer("spsa", [x, y], lr=0.002, perturbation=0.05, seed=0, plugin_manager=plugin_manager)
    start = quadratic(x, y).value
    for _ in range(200):
        opt.step(lambda: quadratic(x, y))
    assert quadratic(x, y).value < start / 50
    assert x.value == pytest.approx(3.0, abs=0.5) and y.value in (6, 7, 8)


def test_spsa_on_a_tensor_without_grad(plugin_manager):
    target = torch.tensor([1.0, -2.0, 0.5])
    w = go.param(torch.zeros(3), name="w")
    opt = go.optimizer("spsa", [w], lr=0.1, perturbation=0.05, seed=1, plugin_manager=plugin_manager)
    for _ in range(300):
        opt.step(lambda: ((w - target) ** 2).sum())
    assert torch.allclose(w.value, target, atol=0.1)


def test_spsa_maximizes_feedback_scores(plugin_manager):
    t = go.param(0.0, name="t", space=go.Float(0.0, 1.0))
    opt = go.optimizer("spsa", [t], lr=0.5, perturbation=0.05, seed=0, plugin_manager=plugin_manager)
    for _ in range(100):
        opt.step(lambda: go.Feedback(score=-(t.value - 0.8) ** 2))
    assert t.value == pytest.approx(0.8, abs=0.05)


def test_spsa_without_closure_refuses_and_leaves_values(plugin_manager):
    x = go.param(1.0, name="x")
    opt = go.optimizer("spsa", [x], plugin_manager=plugin_manager)
    with pytest.raises(go.OptimizerStepError, match="needs step\\(closure\\)"):
        opt.step()
    assert x.value == 1.0


def test_failing_closure_restores_values(plugin_manager):
    x = go.param(1.0, name="x")
    opt = go.optimizer("spsa", [x], plugin_manager=plugin_manager)
    with pytest.raises(go.OptimizerStepError, match="closure result"):
        opt.step(lambda: "not a number")
    assert x.value == 1.0


def test_spsa_state_resumes_identically(plugin_manager):
    def run(steps, state=None, start=0.0):
        x = go.param(start, name="x", space=go.Float(-10.0, 10.0))
        opt = go.optimizer("spsa", [x], lr=0.01, seed=3, plugin_manager=plugin_manager)
        if state is not None:
            opt.load_state_dict(state)
        for _ in range(steps):
            opt.step(lambda: (x.value - 2.0) ** 2)
        return x, opt

    full, _ = run(20)
    half, opt = run(10)
    state = json.loads(json.dumps(opt.state_dict()))
    resumed, _ = run(10, state=state, start=half.value)
    assert resumed.value == full.value
