import json

import pytest
import torch

import graphopt as go


@go.op
def predict(weight, x):
    """Linear prediction x @ weight."""
    return x @ weight


def fit(opt, w, x, y, steps):
    for _ in range(steps):
        opt.zero_feedback()
        loss = go.ops.mse(predict(w, x), y)
        go.backward(loss)
        opt.step()
    return loss.value.item()


def test_unknown_algorithm_suggests_close_ones(plugin_manager):
    w = go.param(torch.zeros(2, requires_grad=True), name="w")
    with pytest.raises(ValueError, match="did you mean Adam"):
        go.optimizer("torch", [w], algorithm="Adma", plugin_manager=plugin_manager)


def test_tensor_without_grad_is_refused(plugin_manager):
    w = go.param(torch.zeros(2), name="w")
    with pytest.raises(go.ParamValidationError, match="requires_grad=True"):
        go.optimizer("torch", [w], plugin_manager=plugin_manager)


def test_step_without_gradients_is_a_no_op(plugin_manager):
    w = go.param(torch.ones(2, requires_grad=True), name="w")
    opt = go.optimizer("torch", [w], algorithm="SGD", lr=1.0, plugin_manager=plugin_manager)
    assert opt.step() == {}
    assert torch.equal(w.value.detach(), torch.ones(2))


@pytest.mark.parametrize("algorithm, options", [("SGD", {"lr": 0.1, "momentum": 0.9}),
                                                ("Adam", {"lr": 0.05}), ("AdamW", {"lr": 0.05})])
def test_state_dict_resume_matches_an_uninterrupted_run(plugin_manager, algorithm, options):
    torch.manual_seed(1)
    x, y = torch.randn(32, 4), torch.randn(32)

    def fresh():
        w = go.param(torch.zeros(4, requires_grad=True), name="w")
        return w, go.optimizer("torch", [w], algorithm=algorithm, plugin_manager=plugin_manager, **options)

    w1, opt1 = fresh()
    fit(opt1, w1, x, y, 10)

    w2, opt2 = fresh()
    fit(opt2, w2, x, y, 5)
    saved_state = json.loads(json.dumps(opt2.state_dict()))
    saved_w = w2.value.detach().clone()
    w3, opt3 = fresh()
    w3.assign(saved_w)
    opt3.load_state_dict(saved_state)
    fit(opt3, w3, x, y, 5)
    assert torch.allclose(w1.value, w3.value, atol=1e-6)


def test_refused_state_dict_leaves_the_optimizer_untouched(plugin_manager):
    w = go.param(torch.zeros(2, requires_grad=True), name="w")
    adam = go.optimizer("torch", [w], algorithm="Adam", lr=0.1, plugin_manager=plugin_manager)
    sgd_state = go.optimizer("torch", [go.param(torch.zeros(2, requires_grad=True), name="w")],
                             algorithm="SGD", lr=0.5, plugin_manager=plugin_manager).state_dict()
    with pytest.raises(go.ParamValidationError, match="state dict is for 'SGD', not 'Adam'"):
        adam.load_state_dict(sgd_state)
    assert adam.param_groups[0]["lr"] == 0.1


@pytest.mark.parametrize("bad", [float("nan"), float("inf")], ids=["nan-loss", "inf-loss"])
def test_a_non_finite_gradient_is_refused_with_the_tensors_unchanged(plugin_manager, bad):
    w = go.param(torch.ones(3, requires_grad=True), name="w")
    opt = go.optimizer("torch", [w], algorithm="SGD", lr=0.1, plugin_manager=plugin_manager)
    go.backward((w * torch.tensor([1.0, bad, 1.0])).sum())
    before = w.value.detach().clone()
    with pytest.raises(go.OptimizerStepError, match="non-finite gradient .* in 'w'"):
        opt.step()
    assert torch.equal(w.value.detach(), before)
    opt.zero_feedback()
    go.backward((w * 2).sum())
    assert opt.step() and torch.allclose(w.value.detach(), before - 0.2)
