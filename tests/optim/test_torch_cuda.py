"""On a CUDA device: a torch step synchronises once (the finite check's flag), backward and
zero_feedback never, and parameters spread over two devices are each checked."""

import warnings

import pytest
import torch

import graphopt as go

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


def _syncs(call):
    """How many synchronising CUDA operations ``call`` ran (torch's sync debug mode counts them)."""
    torch.cuda.synchronize()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        torch.cuda.set_sync_debug_mode("warn")
        try:
            call()
        finally:
            torch.cuda.set_sync_debug_mode("default")
    return sum("synchronizing CUDA operation" in str(w.message) for w in caught)


def test_a_step_synchronises_once_and_backward_never(plugin_manager):
    w = go.param(torch.ones(8, device="cuda", requires_grad=True), name="w")
    opt = go.optimizer("torch", [w], algorithm="Adam", lr=0.1, plugin_manager=plugin_manager)
    x, y = torch.randn(4, 8, device="cuda"), torch.randn(4, device="cuda")
    model = go.op(name="model")(lambda x, w: x @ w)
    for _ in range(2):  # the second step has Adam's state already
        assert _syncs(opt.zero_feedback) == 0
        loss = go.ops.mse(model(x, w), y)
        assert _syncs(lambda: go.backward(loss, plugin_manager=plugin_manager)) == 0
        assert _syncs(opt.step) == 1


def test_params_on_two_devices_are_each_checked(plugin_manager):
    near = go.param(torch.ones(3, requires_grad=True), name="near")
    far = go.param(torch.ones(3, device="cuda", requires_grad=True), name="far")
    opt = go.optimizer("torch", [near, far], algorithm="SGD", lr=0.5, plugin_manager=plugin_manager)
    (near.value.sum() + (far.value * float("nan")).sum().cpu()).backward()
    with pytest.raises(go.OptimizerStepError, match=r"in 'far'$"):
        opt.step()
    assert torch.equal(near.value.detach(), torch.ones(3))
    opt.zero_feedback()
    (near.value.sum() + far.value.sum().cpu()).backward()
    assert opt.step()
    assert torch.equal(far.value.detach().cpu(), torch.full((3,), 0.5))
