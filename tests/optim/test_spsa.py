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
    opt = go.optimizer("spsa", [x, y], seed=0, plugin_manager=plugin_manager)
    start = quadratic(x, y).value
    for _ in range(200):
        opt.step(lambda: quadratic(x, y))
    assert quadratic(x, y).value < start / 50
    assert x.value == pytest.approx(3.0, abs=1.0) and y.value in (6, 7, 8)


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


def walk(plugin_manager, scale=1.0, bounds=((-5.0, 10.0), (0.0, 15.0)), steps=30, seed=0):
    """spsa on a Branin-like bowl; the trajectory in unit coordinates and the closure's runs."""
    (xl, xh), (yl, yh) = bounds
    x = go.param(xl + 0.8 * (xh - xl), name="x", space=go.Float(xl, xh))
    y = go.param(yl + 0.9 * (yh - yl), name="y", space=go.Float(yl, yh))
    opt = go.optimizer("spsa", [x, y], seed=seed, plugin_manager=plugin_manager)
    runs = []

    def closure():
        u, v = x.kind.space.to_unit(x.value), y.kind.space.to_unit(y.value)
        runs.append((u, v))
        return scale * ((15 * v - 5.1 / 39.5 * (15 * u - 5) ** 2 + 1.6 * (15 * u - 5) - 6) ** 2 + 8 * u)

    trajectory = []
    for _ in range(steps):
        opt.step(closure)
        trajectory += [x.kind.space.to_unit(x.value), y.kind.space.to_unit(y.value)]
    return trajectory, runs, opt


def test_spsa_walks_the_same_unit_path_when_the_loss_is_scaled(plugin_manager):
    plain, _, _ = walk(plugin_manager)
    scaled, _, _ = walk(plugin_manager, scale=1e5)
    tiny, _, _ = walk(plugin_manager, scale=1e-4)
    assert scaled == pytest.approx(plain, abs=1e-9) and tiny == pytest.approx(plain, abs=1e-9)
    assert len(set(plain)) > 20  # it moved


def test_spsa_walks_the_same_unit_path_when_the_ranges_are_rescaled(plugin_manager):
    plain, _, _ = walk(plugin_manager)
    rescaled, _, _ = walk(plugin_manager, bounds=((-5000.0, 10000.0), (3.0, 3.015)))
    assert rescaled == pytest.approx(plain, abs=1e-9)


def test_spsa_improves_a_loss_whose_values_reach_1e5(plugin_manager):
    a = go.param(5.0, name="a", space=go.Float(0.0, 100.0))
    c = go.param(-900.0, name="c", space=go.Float(-1000.0, 1000.0))

    def loss():
        return 1e5 * ((a.value - 62) / 100) ** 2 + 3e4 * ((c.value - 310) / 2000) ** 2

    start = loss()
    opt = go.optimizer("spsa", [a, c], seed=0, plugin_manager=plugin_manager)
    for _ in range(40):
        opt.step(loss)
    assert loss() < start / 20  # steps in unit coordinates: no saturation at the bounds


def test_spsa_gain_grows_while_the_loss_falls_and_shrinks_when_it_rises(plugin_manager):
    x = go.param(0.0, name="x", space=go.Float(0.0, 1.0))
    y = go.param(0.0, name="y", space=go.Float(0.0, 1.0))
    opt = go.optimizer("spsa", [x, y], lr=0.01, seed=0, plugin_manager=plugin_manager)
    for _ in range(6):
        opt.step(lambda: -(x.value + y.value))  # a slope to climb all the way
    assert opt.tracks[0].gain == pytest.approx(0.01 * 1.2 ** 5)
    _, _, opt = walk(plugin_manager, steps=40)
    assert opt.tracks[0].gain < 0.1  # near the bottom of the bowl steps overshoot and shrink


def test_spsa_runs_each_integer_point_once(plugin_manager):
    k = go.param(3, name="k", space=go.Int(0, 8))
    runs = []

    def closure():
        runs.append(k.value)
        return (k.value - 6) ** 2

    opt = go.optimizer("spsa", [k], seed=0, plugin_manager=plugin_manager)
    for _ in range(20):  # 40 points asked for, at most 9 of them distinct
        opt.step(closure)
    assert len(runs) == len(set(runs)) == opt.evaluations == opt.distinct_points <= 9
    assert k.value in (5, 6, 7)


def test_spsa_state_round_trips_exactly_mid_walk(plugin_manager):
    x = go.param(8.0, name="x", space=go.Float(-5.0, 10.0))
    y = go.param(12, name="y", space=go.Int(0, 20))

    def loss(a, b):
        return (a.value - 3.3) ** 2 + (b.value - 7) ** 2

    opt = go.optimizer("spsa", [x, y], seed=4, plugin_manager=plugin_manager)
    for _ in range(7):
        opt.step(lambda: loss(x, y))
    state = json.loads(json.dumps(opt.state_dict()))
    x2 = go.param(x.value, name="x", space=go.Float(-5.0, 10.0))
    y2 = go.param(y.value, name="y", space=go.Int(0, 20))
    other = go.optimizer("spsa", [x2, y2], seed=4, plugin_manager=plugin_manager)
    other.load_state_dict(state)
    assert json.dumps(other.state_dict(), sort_keys=True) == json.dumps(state, sort_keys=True)
    for _ in range(6):
        opt.step(lambda: loss(x, y))
        other.step(lambda: loss(x2, y2))
        assert (x2.value, y2.value) == (x.value, y.value)


def test_spsa_refuses_a_non_finite_loss_and_changes_nothing(plugin_manager):
    x = go.param(1.0, name="x", space=go.Float(0.0, 2.0))
    opt = go.optimizer("spsa", [x], plugin_manager=plugin_manager)
    with pytest.raises(go.OptimizerStepError, match="non-finite loss"):
        opt.step(lambda: float("nan"))
    assert x.value == 1.0 and opt.iteration == 0


def test_spsa_probes_one_group_with_the_other_groups_at_their_values(plugin_manager):
    x = go.param(0.5, name="x", space=go.Float(0.0, 1.0))
    y = go.param(0.5, name="y", space=go.Float(0.0, 1.0))
    opt = go.optimizer("spsa", [{"params": [x]}, {"params": [y]}], seed=0, plugin_manager=plugin_manager)
    seen = []

    def closure():
        seen.append((x.value, y.value))
        return (x.value - 0.2) ** 2 + (y.value - 0.7) ** 2

    opt.step(closure)
    probes_of_y = seen[2:]  # the first two runs probe x's group
    assert all(point[0] == 0.5 for point in probes_of_y)
