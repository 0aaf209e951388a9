"""The torch optimizer's fused non-finite gradient check names exactly the bad parameters."""

import pytest
import torch

import graphopt as go


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16])
def test_only_the_parameters_with_a_bad_gradient_are_named(plugin_manager, dtype):
    good = go.param(torch.ones(4, dtype=dtype, requires_grad=True), name="good")
    bad = go.param(torch.ones(3, dtype=dtype, requires_grad=True), name="bad")
    other = go.param(torch.ones(2, dtype=torch.float32, requires_grad=True), name="other")
    opt = go.optimizer("torch", [good, bad, other], algorithm="SGD", lr=0.5,
                       plugin_manager=plugin_manager)
    poison = torch.tensor([1.0, float("inf"), 1.0], dtype=dtype)
    (good.value.sum() + (bad.value * poison).sum() + other.value.sum()).float().backward()
    before = [p.value.detach().clone() for p in (good, bad, other)]
    with pytest.raises(go.OptimizerStepError, match=r"in 'bad'$"):
        opt.step()
    assert all(torch.equal(p.value.detach(), b) for p, b in zip((good, bad, other), before))
    assert torch.equal(good.value.grad, torch.ones(4, dtype=dtype))  # the check changed no gradient


def test_sparse_gradients_are_checked_too(plugin_manager):
    table = go.param(torch.nn.Parameter(torch.ones(5, 2)), name="table")
    opt = go.optimizer("torch", [table], algorithm="SGD", lr=0.5, plugin_manager=plugin_manager)
    rows = torch.nn.functional.embedding(torch.tensor([1, 3]), table.value, sparse=True)
    (rows * torch.tensor([[1.0, float("nan")], [1.0, 1.0]])).sum().backward()
    with pytest.raises(go.OptimizerStepError, match="in 'table'"):
        opt.step()
    opt.zero_feedback()
    torch.nn.functional.embedding(torch.tensor([1]), table.value, sparse=True).sum().backward()
    assert opt.step()
    assert torch.equal(table.value.detach()[1], torch.tensor([0.5, 0.5]))
