"""``lion``: the paper's update on random tensors, driven by ``go.backward``; state, refusals, devices."""

from __future__ import annotations

import json

import pytest
import torch

import graphopt as go
from graphopt.errors import OptimizerStepError, ParamValidationError


def reference_lion(theta, grads, *, lr, beta1, beta2, weight_decay):
    """Algorithm 2 of Chen et al. (2023), one tensor, written out step by step in float64."""
    m = torch.zeros_like(theta)
    for g in grads:
        c = beta1 * m + (1 - beta1) * g
        theta = theta - lr * (torch.sign(c) + weight_decay * theta)
        m = beta2 * m + (1 - beta2) * g
    return theta, m


@pytest.mark.parametrize("weight_decay", [0.0, 0.3])
def test_matches_the_paper_over_several_steps(weight_decay):
    generator = torch.Generator().manual_seed(0)
    start = torch.randn(5, 4, generator=generator, dtype=torch.float64)
    grads = [torch.randn(5, 4, generator=generator, dtype=torch.float64) for _ in range(6)]
    w = go.param(start.clone().requires_grad_(True), name="w")
    opt = go.optimizer("lion", [w], lr=0.01, betas=(0.8, 0.95), weight_decay=weight_decay)
    for g in grads:
        w.value.grad = g.clone()
        opt.step()
        opt.zero_feedback()
    expected, momentum = reference_lion(start, grads, lr=0.01, beta1=0.8, beta2=0.95, weight_decay=weight_decay)
    torch.testing.assert_close(w.value.detach(), expected, rtol=0, atol=1e-12)
    torch.testing.assert_close(opt.state[w]["exp_avg"], momentum, rtol=0, atol=1e-12)
    assert opt.state[w]["step"] == len(grads)


def test_go_backward_drives_it_down_a_loss():
    target = torch.tensor([1.0, -2.0, 3.0])
    w = go.param(torch.zeros(3, requires_grad=True), name="w")
    # A short momentum memory (beta2): with 0.99 the sign keeps pushing well past the minimum.
    opt = go.optimizer("lion", [w], lr=0.05, betas=(0.9, 0.9))
    for _ in range(100):
        go.backward(go.ops.mse(w * 1.0, target))
        opt.step()
        opt.zero_feedback()
    torch.testing.assert_close(w.value.detach(), target, atol=0.2, rtol=0)


def test_every_coordinate_moves_by_lr_on_the_first_step():
    w = go.param(torch.zeros(4, requires_grad=True), name="w")
    opt = go.optimizer("lion", [w], lr=0.1)
    w.value.grad = torch.tensor([1e-6, -3.0, 50.0, -1e-9])
    opt.step()
    torch.testing.assert_close(w.value.detach(), torch.tensor([-0.1, 0.1, -0.1, 0.1]))


def test_a_non_finite_gradient_is_refused_with_nothing_changed():
    a = go.param(torch.ones(2, requires_grad=True), name="a")
    b = go.param(torch.ones(2, requires_grad=True), name="b")
    opt = go.optimizer("lion", [a, b], lr=0.1)
    a.value.grad, b.value.grad = torch.ones(2), torch.ones(2)
    opt.step()
    before = [a.value.detach().clone(), b.value.detach().clone(), opt.state[a]["exp_avg"].clone()]
    a.value.grad, b.value.grad = torch.ones(2), torch.tensor([1.0, float("nan")])
    with pytest.raises(OptimizerStepError, match="non-finite gradient in b") as caught:
        opt.step()
    assert caught.value.errors == {"b": "non-finite gradient"}
    after = [a.value.detach(), b.value.detach(), opt.state[a]["exp_avg"]]
    for old, new in zip(before, after):
        assert torch.equal(old, new)
    assert opt.state[a]["step"] == 1


def test_state_dict_round_trips_the_momentum_exactly():
    w = go.param(torch.randn(3, 2, generator=torch.Generator().manual_seed(1)).requires_grad_(True), name="w")
    opt = go.optimizer("lion", [w], lr=0.01, betas=(0.9, 0.99))
    for k in range(3):
        w.value.grad = torch.full((3, 2), float(k) - 0.7)
        opt.step()
    saved = json.loads(json.dumps(opt.state_dict()))
    w2 = go.param(w.value.detach().clone().requires_grad_(True), name="w")
    restored = go.optimizer("lion", [w2], lr=0.01, betas=(0.9, 0.99))
    restored.load_state_dict(saved)
    assert torch.equal(restored.state[w2]["exp_avg"], opt.state[w]["exp_avg"])
    assert restored.param_groups[0]["betas"] == [0.9, 0.99]


def test_state_of_the_wrong_shape_is_refused_before_loading():
    w = go.param(torch.zeros(3, requires_grad=True), name="w")
    opt = go.optimizer("lion", [w], lr=0.01)
    w.value.grad = torch.ones(3)
    opt.step()
    saved = opt.state_dict()
    other = go.optimizer("lion", [go.param(torch.zeros(4, requires_grad=True), name="w")], lr=0.01)
    with pytest.raises(ParamValidationError, match="param 'w' expects exp_avg of shape"):
        other.load_state_dict(saved)


def test_keeps_one_state_tensor_per_param_half_of_adams():
    w = go.param(torch.zeros(1000, requires_grad=True), name="w")
    opt = go.optimizer("lion", [w], lr=0.01)
    w.value.grad = torch.ones(1000)
    opt.step()
    assert opt.state_bytes() == 4000


@pytest.mark.parametrize("options, message", [
    ({"lr": 0.0}, "lr expects a finite number > 0"),
    ({"betas": (0.9, 1.0)}, "betas expects two numbers in"),
    ({"weight_decay": -1.0}, "weight_decay expects a finite number >= 0"),
])
def test_bad_options_are_refused(options, message):
    with pytest.raises(ValueError, match=message):
        go.optimizer("lion", [go.param(torch.zeros(2, requires_grad=True), name="w")], **options)


def test_a_tensor_without_grad_is_refused_by_name():
    with pytest.raises(ParamValidationError, match="param 'frozen' must be a floating-point leaf"):
        go.optimizer("lion", [go.param(torch.zeros(2), name="frozen")])


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.gpu
def test_state_lives_on_the_params_device():
    w = go.param(torch.zeros(3, device="cuda", requires_grad=True), name="w")
    opt = go.optimizer("lion", [w], lr=0.1)
    go.backward(go.ops.mse(w * 1.0, torch.ones(3, device="cuda")))
    opt.step()
    assert opt.state[w]["exp_avg"].device.type == "cuda"
    restored = go.optimizer("lion", [w], lr=0.1)
    restored.load_state_dict(json.loads(json.dumps(opt.state_dict())))
    assert restored.state[w]["exp_avg"].device.type == "cuda"
