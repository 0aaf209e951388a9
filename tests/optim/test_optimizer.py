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


# -- the acceptance gate ----------------------------------------------------------------------
class Scripted(Optimizer):
    """Gated test optimizer: proposes the next text of a script for param ``p``."""

    name = "scripted-text"
    kinds = frozenset({"text"})

    def __init__(self, params, script, *, plugin_manager=None):
        super().__init__(params, {}, plugin_manager=plugin_manager)
        self.script = list(script)
        self.rejected = []

    def propose(self, closure=None):
        return {self.params[0]: self.script.pop(0)} if self.script else {}

    def on_rejected(self, proposal, rejection):
        self.rejected.append((dict(proposal), rejection))


class Counting:
    """A closure scoring the text param by a table (higher is better), counting its calls."""

    def __init__(self, target, table):
        self.target, self.table, self.calls = target, table, 0

    def __call__(self):
        self.calls += 1
        return go.Feedback(score=self.table[self.target.value])


def test_text_optimizers_are_gated_and_numbers_are_not(plugin_manager):
    assert Scripted([go.param("a", name="p")], [], plugin_manager=plugin_manager).is_gated
    assert not go.optimizer("random", [go.param(1, name="k", space=go.Int(0, 3))],
                            plugin_manager=plugin_manager).is_gated
    assert not go.optimizer("torch", [go.param(torch.ones(1, requires_grad=True), name="w")],
                            plugin_manager=plugin_manager).is_gated


def test_a_worse_proposal_is_rejected_and_the_values_stay(plugin_manager):
    p = go.param("start", name="p")
    opt = Scripted([p], ["worse", "better"], plugin_manager=plugin_manager)
    closure = Counting(p, {"start": 0.5, "worse": 0.2, "better": 0.9})
    assert opt.step(closure) == {}
    assert p.value == "start"
    assert opt.last_rejection.before == 0.5 and opt.last_rejection.after == 0.2
    assert "below the current 0.5" in opt.last_rejection.reason
    assert [proposal[p] for proposal, _ in opt.rejected] == ["worse"]
    assert opt.step(closure) == {"p": "better"}
    assert p.value == "better" and opt.last_rejection is None


def test_the_gate_memoizes_the_current_score_per_closure(plugin_manager):
    p = go.param("a", name="p")
    opt = Scripted([p], ["b", "c", "d"], plugin_manager=plugin_manager)
    closure = Counting(p, {"a": 0.0, "b": 1.0, "c": 2.0, "d": 0.5})
    opt.step(closure)  # scores a, then b
    opt.step(closure)  # b's score is remembered: scores c only
    opt.step(closure)  # scores d only, rejected
    assert closure.calls == 4
    assert p.value == "c"


def test_a_loss_closure_is_minimized_and_a_non_finite_score_is_the_worst(plugin_manager):
    p = go.param("a", name="p")
    opt = Scripted([p], ["nan", "b"], plugin_manager=plugin_manager)
    losses = {"a": 1.0, "nan": float("nan"), "b": 0.5}
    assert opt.step(lambda: torch.tensor(losses[p.value])) == {}
    assert opt.last_rejection.after == float("-inf")
    assert opt.step(lambda: torch.tensor(losses[p.value])) == {"p": "b"}
    start = go.param("x", name="p")
    recovering = Scripted([start], ["y"], plugin_manager=plugin_manager)
    assert recovering.step(lambda: {"x": float("nan"), "y": 0.0}[start.value]) == {"p": "y"}  # losses


def test_accept_always_keeps_a_worse_proposal_and_unknown_modes_are_refused(plugin_manager):
    p = go.param("start", name="p")
    opt = Scripted([p], ["worse", "x"], plugin_manager=plugin_manager)
    opt.accept = "always"
    closure = Counting(p, {"start": 0.5, "worse": 0.2})
    assert opt.step(closure) == {"p": "worse"}
    assert closure.calls == 0
    opt.accept = "sometimes"
    with pytest.raises(ValueError, match="accept expects one of 'improve', 'better', 'improve_val', 'always', got 'sometimes'"):
        opt.step(closure)


def test_a_closure_without_a_number_cannot_gate(plugin_manager):
    p = go.param("a", name="p")
    opt = Scripted([p], ["b"], plugin_manager=plugin_manager)
    with pytest.raises(go.OptimizerStepError, match="acceptance gate needs a score"):
        opt.step(lambda: go.Feedback(text="fine"))
    assert p.value == "a"


def test_without_a_closure_a_gated_optimizer_commits_as_before(plugin_manager):
    p = go.param("a", name="p")
    assert Scripted([p], ["b"], plugin_manager=plugin_manager).step() == {"p": "b"}


def test_improve_val_also_compares_on_the_evaluations_pool(plugin_manager):
    p = go.param("a", name="p")

    class Pool:
        """Minibatch score from ``batch``, per-example pool scores from ``pool``."""

        accept = "improve_val"
        size = 2

        def __init__(self):
            self.batch = {"a": 0.0, "b": 1.0}
            self.pool = {"a": [1.0, 1.0], "b": [0.0, 1.0]}

        def __call__(self):
            return go.Feedback(score=self.batch[p.value])

        def scores(self, values, indices):
            value = values.get(p, p.value)
            return [self.pool[value][i] for i in indices]

    opt = Scripted([p], ["b"], plugin_manager=plugin_manager)
    assert opt.step(Pool()) == {}
    assert "on validation" in opt.last_rejection.reason and p.value == "a"


def test_a_rejected_llm_proposal_is_not_remembered(plugin_manager):
    from graphopt.llm.scripted import scripted_client
    from graphopt.optim.llm_optimizer import LLMOptimizer, Proposal

    class Remembering(LLMOptimizer):
        name = "remembering"

        def __init__(self, params, **kwargs):
            super().__init__(params, {}, **kwargs)
            self.memory = []

        def propose(self, closure=None):
            return Proposal({self.params[0]: "worse"}, reasoning="why not", record="tried worse")

        def remember(self, record):
            self.memory.append(record)

    p = go.param("start", name="p")
    opt = Remembering([p], llm=scripted_client(lambda m, k: "unused"), plugin_manager=plugin_manager)
    assert opt.step(lambda: go.Feedback(score={"start": 1.0, "worse": 0.0}[p.value])) == {}
    assert opt.memory == [] and p.value == "start"
    assert opt.last_step["committed"] == {} and "below the current" in opt.last_step["reason"]
    assert opt.last_step["rejected"] == {"before": 1.0, "after": 0.0, "params": ["p"]}


def test_accept_better_keeps_the_current_values_on_a_tie(plugin_manager):
    p = go.param("a", name="p")
    opt = Scripted([p], ["tie", "up"], plugin_manager=plugin_manager)
    opt.accept = "better"
    closure = Counting(p, {"a": 0.5, "tie": 0.5, "up": 0.6})
    assert opt.step(closure) == {} and "no better than the current 0.5" in opt.last_rejection.reason
    assert opt.step(closure) == {"p": "up"}
    plain = Scripted([go.param("a", name="p")], ["tie"], plugin_manager=plugin_manager)
    assert plain.step(Counting(plain.params[0], {"a": 0.5, "tie": 0.5})) == {"p": "tie"}
