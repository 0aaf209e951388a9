"""The torch optimizer's lean step: hooks found per step, the finite check's flag reset after a
refusal, zero_feedback matching torch's zero_grad, and a module that imports without torch."""

import subprocess
import sys

import pytest
import torch

import graphopt as go
from graphopt.plugins.manager import hookimpl


def _trained(plugin_manager, algorithm="SGD", **options):
    w = go.param(torch.ones(3, requires_grad=True), name="w")
    opt = go.optimizer("torch", [w], algorithm=algorithm, lr=0.5, plugin_manager=plugin_manager,
                       **options)
    return w, opt


def _backward(w, plugin_manager, scale=1.0):
    go.backward(go.op(name="total")(lambda w: (w * scale).sum())(w), plugin_manager=plugin_manager)


class _Recorder:
    def __init__(self):
        self.calls = []

    @hookimpl
    def graphopt_before_step(self, optimizer, params):
        self.calls.append(("before", [p.name for p in params]))

    @hookimpl
    def graphopt_after_step(self, optimizer, params, committed):
        self.calls.append(("after", sorted(committed)))


def test_a_step_hook_registered_after_the_optimizer_is_called(plugin_manager):
    w, opt = _trained(plugin_manager)
    _backward(w, plugin_manager)
    opt.step()
    recorder = _Recorder()
    plugin_manager.register(recorder, name="recorder")
    opt.zero_feedback()
    _backward(w, plugin_manager)
    opt.step()
    assert recorder.calls == [("before", ["w"]), ("after", ["w"])]
    plugin_manager.unregister(name="recorder")
    opt.step()
    assert len(recorder.calls) == 2


def test_a_refused_step_does_not_poison_the_next_one(plugin_manager):
    w, opt = _trained(plugin_manager)
    _backward(w, plugin_manager, float("nan"))
    with pytest.raises(go.OptimizerStepError, match="in 'w'"):
        opt.step()
    assert torch.equal(w.value.detach(), torch.ones(3))
    opt.zero_feedback()
    _backward(w, plugin_manager)
    assert opt.step() == {"w": w.value}
    assert torch.equal(w.value.detach(), torch.full((3,), 0.5))


def test_an_infinite_gradient_is_refused_after_clean_steps(plugin_manager):
    w, opt = _trained(plugin_manager, algorithm="Adam")
    for _ in range(3):
        opt.zero_feedback()
        _backward(w, plugin_manager)
        opt.step()
    state = {k: v.clone() for k, v in opt.torch_optimizer.state[w.value].items()}
    before = w.value.detach().clone()
    opt.zero_feedback()
    _backward(w, plugin_manager, float("inf"))
    with pytest.raises(go.OptimizerStepError, match="non-finite gradient"):
        opt.step()
    assert torch.equal(w.value.detach(), before)
    assert all(torch.equal(v, state[k]) for k, v in opt.torch_optimizer.state[w.value].items())


@pytest.mark.parametrize("set_to_none", [True, False])
def test_zero_feedback_clears_feedback_and_gradients_as_torch_does(plugin_manager, set_to_none):
    w, opt = _trained(plugin_manager)
    _backward(w, plugin_manager)
    assert w.feedback and w.value.grad is not None
    opt.zero_feedback(set_to_none=set_to_none)
    assert w.feedback == []
    if set_to_none:
        assert w.value.grad is None
    else:
        assert torch.equal(w.value.grad, torch.zeros(3))


def test_the_module_imports_without_torch():
    code = ("import sys, graphopt.optim.torch_optim, graphopt.optim.tensor_state; "
            "print('torch' in sys.modules)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "False"


def test_a_group_added_after_construction_is_stepped_and_saved(plugin_manager):
    first = go.param(torch.ones(2, requires_grad=True), name="first")
    later = go.param(torch.ones(3, requires_grad=True), name="later")
    opt = go.optimizer("torch", [first], algorithm="SGD", lr=0.5, plugin_manager=plugin_manager)
    opt.add_param_group({"params": [later], "lr": 0.25})
    (first.value.sum() + later.value.sum()).backward()
    committed = opt.step()
    assert set(committed) == {"first", "later"}
    assert torch.equal(later.value.detach(), torch.full((3,), 0.75))
    assert torch.equal(first.value.detach(), torch.full((2,), 0.5))
    opt.zero_feedback()
    assert later.value.grad is None
    saved = opt.state_dict()
    assert [g["params"] for g in saved["param_groups"]] == [["first"], ["later"]]


def test_a_group_torch_refuses_leaves_the_optimizer_unchanged(plugin_manager):
    first = go.param(torch.ones(2, requires_grad=True), name="first")
    alias = go.param(first.value, name="alias")  # another param over the same tensor
    opt = go.optimizer("torch", [first], algorithm="SGD", lr=0.5, plugin_manager=plugin_manager)
    with pytest.raises(ValueError, match="optimizer 'torch' \\(SGD\\): .*more than one"):
        opt.add_param_group({"params": [alias]})
    assert opt.params == [first] and len(opt.torch_optimizer.param_groups) == 1
    assert len(opt.param_groups) == 1 and "alias" not in opt.param_names.values()
    first.value.sum().backward()
    assert set(opt.step()) == {"first"}
