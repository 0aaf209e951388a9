"""``mezo``: two forward runs per step along one seeded direction, the update along the same one."""

from __future__ import annotations

import json

import pytest
import torch

import graphopt as go
from graphopt.errors import OptimizerStepError
from graphopt_gradients.mezo import direction, mix


def quadratic(params, targets):
    return sum(float(((p.value - t) ** 2).sum()) for p, t in zip(params, targets))


def test_decreases_a_quadratic_loss():
    generator = torch.Generator().manual_seed(0)
    targets = [torch.randn(6, generator=generator), torch.randn(2, 3, generator=generator)]
    params = [go.param(torch.zeros(6), name="a"), go.param(torch.zeros(2, 3), name="b")]
    opt = go.optimizer("mezo", params, lr=0.02, eps=1e-3, seed=7)
    start = quadratic(params, targets)
    for _ in range(300):
        opt.step(lambda: quadratic(params, targets))
    assert quadratic(params, targets) < 0.1 * start


def test_the_same_direction_serves_both_runs_and_the_update():
    w = go.param(torch.randn(5, generator=torch.Generator().manual_seed(1)), name="w")
    theta = w.value.clone()
    seen = []

    def closure():
        seen.append(w.value.clone())
        return float((w.value ** 2).sum())

    opt = go.optimizer("mezo", [w], lr=0.1, eps=0.01, seed=5)
    seed = opt.step_seed()
    opt.step(closure)
    assert opt.last_step["seed"] == seed
    z = direction(theta, mix(seed, 0))  # param 0's direction, regenerated from the seed alone
    torch.testing.assert_close((seen[0] - theta) / 0.01, z)
    torch.testing.assert_close((seen[1] - theta) / -0.01, z)
    g = (float((seen[0] ** 2).sum()) - float((seen[1] ** 2).sum())) / 0.02
    assert opt.last_step["projected_grad"] == [pytest.approx(g)]
    torch.testing.assert_close(w.value, theta - 0.1 * g * z)


def test_each_step_draws_a_new_direction():
    w = go.param(torch.zeros(4), name="w")
    opt = go.optimizer("mezo", [w], seed=0)
    seeds = set()
    for _ in range(3):
        opt.step(lambda: float(w.value.sum()))
        seeds.add(opt.last_step["seed"])
    assert len(seeds) == 3 and opt.iteration == 3


def test_a_feedback_score_is_maximized():
    w = go.param(torch.zeros(3), name="w")
    opt = go.optimizer("mezo", [w], lr=0.05, eps=1e-2, seed=2)
    target = torch.tensor([0.5, -0.5, 1.0])
    for _ in range(300):
        opt.step(lambda: go.Feedback(score=-float(((w.value - target) ** 2).sum())))
    assert float(((w.value - target) ** 2).sum()) < 0.05 * float((target ** 2).sum())


def test_weight_decay_shrinks_without_a_signal():
    w = go.param(torch.ones(3), name="w")
    opt = go.optimizer("mezo", [w], lr=0.1, weight_decay=0.5)
    opt.step(lambda: 1.0)  # a constant loss: projected gradient 0
    torch.testing.assert_close(w.value, torch.full((3,), 0.95))


def test_a_non_finite_loss_is_refused_and_the_params_go_back():
    w = go.param(torch.randn(4, generator=torch.Generator().manual_seed(3)), name="w")
    before = w.value.clone()
    opt = go.optimizer("mezo", [w], eps=0.1)
    calls = []

    def closure():
        calls.append(1)
        return float("nan") if len(calls) == 2 else 1.0

    with pytest.raises(OptimizerStepError, match="non-finite loss"):
        opt.step(closure)
    torch.testing.assert_close(w.value, before)
    assert opt.iteration == 0


def test_a_closure_that_raises_leaves_the_params_where_they_were():
    w = go.param(torch.randn(4, generator=torch.Generator().manual_seed(4)), name="w")
    before = w.value.clone()
    opt = go.optimizer("mezo", [w], eps=0.1)
    with pytest.raises(RuntimeError, match="workflow broke"):
        opt.step(lambda: (_ for _ in ()).throw(RuntimeError("workflow broke")))
    torch.testing.assert_close(w.value, before)


def test_step_without_a_closure_is_refused():
    opt = go.optimizer("mezo", [go.param(torch.zeros(2), name="w")])
    with pytest.raises(OptimizerStepError, match="needs step\\(closure\\)"):
        opt.step()


def test_the_closure_runs_without_autograd():
    w = go.param(torch.zeros(3, requires_grad=True), name="w")
    opt = go.optimizer("mezo", [w])
    modes = []
    opt.step(lambda: modes.append(torch.is_grad_enabled()) or 0.0)
    assert modes == [False, False]


def test_state_dict_round_trips_step_and_seed():
    w = go.param(torch.zeros(3), name="w")
    opt = go.optimizer("mezo", [w], seed=11)
    for _ in range(4):
        opt.step(lambda: float(w.value.sum()))
    saved = json.loads(json.dumps(opt.state_dict()))
    assert saved["extra"] == {"iteration": 4, "seed": 11}
    w2 = go.param(w.value.clone(), name="w")
    restored = go.optimizer("mezo", [w2], seed=0)
    restored.load_state_dict(saved)
    assert restored.step_seed() == opt.step_seed()
    opt.step(lambda: float(w.value.sum()))
    restored.step(lambda: float(w2.value.sum()))
    assert torch.equal(w.value, w2.value)


@pytest.mark.parametrize("options, message", [
    ({"lr": -1.0}, "lr expects a finite number > 0"),
    ({"eps": 0.0}, "eps expects a finite number > 0"),
    ({"weight_decay": float("inf")}, "weight_decay expects a finite number >= 0"),
    ({"seed": 1.5}, "seed expects an int"),
])
def test_bad_options_are_refused(options, message):
    with pytest.raises(ValueError, match=message):
        go.optimizer("mezo", [go.param(torch.zeros(2), name="w")], **options)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.gpu
def test_directions_are_drawn_on_the_params_device():
    w = go.param(torch.zeros(1000, device="cuda"), name="w")
    target = torch.ones(1000, device="cuda")
    opt = go.optimizer("mezo", [w], lr=1e-3, seed=1)
    start = float(((w.value - target) ** 2).sum())
    for _ in range(50):
        opt.step(lambda: ((w.value - target) ** 2).sum())
    assert w.value.device.type == "cuda"
    assert float(((w.value - target) ** 2).sum()) < start
