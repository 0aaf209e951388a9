import json

import pytest
import torch

import graphopt as go
from graphopt.optim import Optimizer


class Suffixer(Optimizer):
    """Test optimizer: proposes a fixed value per name, from a script."""

    name = "suffixer"
    kinds = frozenset({"text", "int"})

    def __init__(self, params, script, *, plugin_manager=None):
        super().__init__(params, {"lr": 1.0}, plugin_manager=plugin_manager)
        self.script = script

    def propose(self, closure=None):
        by_name = {n: p for p, n in self.param_names.items()}
        return {by_name[n]: v for n, v in self.script.items()}


def test_kind_mismatch_names_the_param_and_what_is_accepted(plugin_manager):
    with pytest.raises(go.ParamValidationError, match="optimizer 'torch' cannot optimize param 'prompt' of kind 'text'; it accepts: tensor"):
        go.optimizer("torch", [go.param("hi", name="prompt")], plugin_manager=plugin_manager)


def test_params_must_be_named_unique_and_ordered(plugin_manager):
    with pytest.raises(go.ParamValidationError, match="has no name"):
        Suffixer([go.param("a")], {}, plugin_manager=plugin_manager)
    p = go.param("a", name="p")
    with pytest.raises(go.ParamValidationError, match="appears twice"):
        Suffixer([p, p], {}, plugin_manager=plugin_manager)
    with pytest.raises(go.ParamValidationError, match="not a set"):
        Suffixer({p}, {}, plugin_manager=plugin_manager)
    with pytest.raises(go.ParamValidationError, match="empty"):
        Suffixer([], {}, plugin_manager=plugin_manager)


def test_param_groups_take_defaults_and_overrides(plugin_manager):
    a, b = go.param("a", name="a"), go.param("b", name="b")
    opt = Suffixer([{"params": [a]}, {"params": [b], "lr": 0.5}], {}, plugin_manager=plugin_manager)
    assert [g["lr"] for g in opt.param_groups] == [1.0, 0.5]
    assert opt.params == [a, b]


def test_step_commits_all_valid_values(plugin_manager):
    a, k = go.param("a", name="a"), go.param(2, name="k", space=go.Int(1, 5))
    opt = Suffixer([a, k], {"a": "new", "k": 4}, plugin_manager=plugin_manager)
    assert opt.step() == {"a": "new", "k": 4}
    assert (a.value, k.value) == ("new", 4)


def test_step_with_one_invalid_value_commits_nothing(plugin_manager):
    a, k = go.param("a", name="a"), go.param(2, name="k", space=go.Int(1, 5))
    opt = Suffixer([a, k], {"a": "new", "k": 9}, plugin_manager=plugin_manager)
    with pytest.raises(go.OptimizerStepError, match=r"nothing changed: k: .*Int\(1, 5\), got 9") as info:
        opt.step()
    assert info.value.errors.keys() == {"k"}
    assert (a.value, k.value) == ("a", 2)


def test_optimizer_over_module_uses_dotted_names(plugin_manager):
    class Flow(go.Module):
        def __init__(self):
            self.prompt = go.param("x")

    opt = Suffixer(Flow(), {"prompt": "y"}, plugin_manager=plugin_manager)
    assert list(opt.param_names.values()) == ["prompt"]


def test_trainable_op_can_be_passed_directly(plugin_manager):
    @go.op(trainable=True)
    def f(x):
        return x

    class CodeOpt(Suffixer):
        kinds = frozenset({"code"})

    opt = CodeOpt(f, {}, plugin_manager=plugin_manager)
    assert opt.params == [f.code]


def test_state_dict_is_json_and_load_checks_names(plugin_manager):
    a = go.param("a", name="a")
    opt = Suffixer([a], {}, plugin_manager=plugin_manager)
    opt.state[a] = {"seen": 3}
    data = json.loads(json.dumps(opt.state_dict()))
    other = Suffixer([go.param("z", name="a")], {}, plugin_manager=plugin_manager)
    other.load_state_dict(data)
    assert list(other.state.values()) == [{"seen": 3}]
    wrong = Suffixer([go.param("z", name="b")], {}, plugin_manager=plugin_manager)
    with pytest.raises(go.ParamValidationError, match="do not match"):
        wrong.load_state_dict(data)
    with pytest.raises(go.ParamValidationError, match="is for optimizer 'other'"):
        other.load_state_dict({**data, "optimizer": "other"})


def test_zero_feedback_clears_feedback_and_grads(plugin_manager):
    w = go.param(torch.ones(2, requires_grad=True), name="w")
    opt = go.optimizer("torch", [w], plugin_manager=plugin_manager, lr=0.1)
    go.backward((w * 2).sum(), go.Feedback(text="note"))
    assert w.value.grad is not None and w.feedback
    opt.zero_feedback()
    assert w.value.grad is None and w.feedback == []
