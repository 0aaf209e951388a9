"""The trainer's acceptance gate and all-or-nothing steps of several optimizers."""

from __future__ import annotations

import pytest

import graphopt as go
from graphopt.optim import Optimizer
from graphopt.train import Checkpoint, Trainer, optimize

TABLE = {"start": 0.5, "worse": 0.1, "better": 0.9, "best": 1.0}


class Scripted(Optimizer):
    """Proposes the next text of a script; a text optimizer, hence gated."""

    name = "scripted-text"
    kinds = frozenset({"text"})

    def __init__(self, params, script, *, fail_at=None):
        super().__init__(params, {})
        self.script = list(script)
        self.proposed = 0  # optimizer state: rolled back with a failed step
        self.calls = 0  # not state: counts every call
        self.fail_at = fail_at

    def propose(self, closure=None):
        self.proposed += 1
        self.calls += 1
        if self.calls == self.fail_at:
            raise RuntimeError("propose broke")
        return {self.params[0]: self.script.pop(0)} if self.script else {}

    def extra_state_dict(self):
        return {"script": self.script, "proposed": self.proposed}

    def load_extra_state_dict(self, data):
        self.script, self.proposed = list(data["script"]), data["proposed"]


def prompt_flow():
    prompt = go.param("start", name="prompt")
    calls = []

    @go.op
    def answer(prompt: str, x: int) -> str:
        calls.append((prompt, x))
        return prompt

    return prompt, calls, (lambda x: answer(prompt, x))


def score(example, prediction):
    return TABLE[prediction]


DATA = [(1, None), (2, None)]


def test_a_worse_proposal_is_rejected_and_recorded():
    prompt, calls, flow = prompt_flow()
    opt = Scripted([prompt], ["worse", "better"])
    result = optimize(flow, DATA, metric=score, optimizers=[opt], epochs=2, batch_size=2,
                      eval_every=1, quiet=True)
    first, second = result.history[1].optimizers[0], result.history[2].optimizers[0]
    assert first.committed == [] and first.rejected is not None
    assert (first.rejected.score_before, first.rejected.score_after) == (0.5, 0.1)
    assert first.rejected.params == ["prompt"] and "below the current" in first.rejected.reason
    assert second.committed == ["prompt"] and second.rejected is None
    assert (second.score_before, second.score_after) == (0.5, 0.9)
    assert [r.val_score for r in result.history] == [0.5, 0.5, 0.9]
    assert prompt.value == "better"
    assert len(calls) == len(set(calls)) == result.evaluations


def test_accept_always_keeps_the_worse_proposal_and_restores_the_best_at_the_end():
    prompt, _, flow = prompt_flow()
    result = optimize(flow, DATA, metric=score, optimizers=[Scripted([prompt], ["worse"])], epochs=1,
                      batch_size=2, eval_every=1, quiet=True, accept="always")
    assert result.history[1].optimizers[0].committed == ["prompt"]
    assert result.history[1].val_score == 0.1
    assert prompt.value == "start" == result.best_values["prompt"]


def test_improve_val_also_requires_no_loss_on_validation():
    prompt, _, flow = prompt_flow()

    def split(example, prediction):  # better on training examples, worse on validation
        if prediction == "start":
            return 0.5
        return 1.0 if example.input < 10 else 0.0

    opt = Scripted([prompt], ["better"])
    result = optimize(flow, DATA, val=[(10, None)], metric=split, optimizers=[opt], epochs=1,
                      batch_size=2, quiet=True, accept="improve_val")
    assert "on validation" in result.history[1].optimizers[0].rejected.reason
    assert prompt.value == "start"


def test_an_unknown_accept_mode_is_refused_naming_the_option():
    prompt, _, flow = prompt_flow()
    with pytest.raises(ValueError, match="accept expects one of 'improve', 'better', 'improve_val', 'always', got 'yes'"):
        Trainer(flow, DATA, metric=score, optimizers=[Scripted([prompt], [])], accept="yes")


def test_a_failing_optimizer_rolls_back_every_commit_of_the_step(tmp_path):
    prompt, _, flow = prompt_flow()
    k = go.param(0, name="k", space=go.Int(0, 9))
    first = go.optimizer("random", [k], seed=3)
    second = Scripted([prompt], ["better", "best"], fail_at=1)
    checkpoint = tmp_path / "run.ckpt"
    trainer = Trainer(flow, DATA, metric=score, optimizers=[first, second], epochs=2, batch_size=2,
                      eval_every=1, quiet=True, checkpoint=checkpoint, restore_best=False)
    with pytest.warns(RuntimeWarning, match="'scripted-text' failed .*propose broke.*rolled back"):
        result = trainer.fit()
    failed = result.history[1]
    assert [o.refused is not None for o in failed.optimizers] == [True, True]
    assert failed.optimizers[0].refused.startswith("rolled back: optimizer 'scripted-text' failed")
    assert failed.values_hash == result.history[0].values_hash  # random's commit was undone
    assert result.history[2].optimizers[1].committed == ["prompt"]  # the run went on
    saved = Checkpoint.load(checkpoint)
    assert saved.params == {"prompt": prompt.value, "k": k.value}
    assert saved.optimizers[1]["extra"]["proposed"] == second.proposed == 1  # the failed try undone


def test_on_step_error_raise_stops_with_the_checkpoint_at_the_last_step(tmp_path):
    prompt, _, flow = prompt_flow()
    checkpoint = tmp_path / "run.ckpt"
    opt = Scripted([prompt], ["better", "best"], fail_at=2)
    trainer = Trainer(flow, DATA, metric=score, optimizers=[opt], epochs=3, batch_size=2, eval_every=1,
                      quiet=True, checkpoint=checkpoint, on_step_error="raise")
    with pytest.raises(go.OptimizerStepError, match="step 2: optimizer 'scripted-text' failed .* holds step 1"):
        trainer.fit()
    saved = Checkpoint.load(checkpoint)
    assert saved.position.step == 1 and saved.params == {"prompt": "better"} and prompt.value == "better"
    with pytest.raises(ValueError, match="on_step_error expects one of 'skip', 'raise', got 'ignore'"):
        Trainer(flow, DATA, metric=score, optimizers=[opt], on_step_error="ignore")


def test_a_refused_step_of_invalid_values_rolls_back_the_other_optimizers():
    prompt, _, flow = prompt_flow()
    k = go.param(0, name="k", space=go.Int(0, 9))

    class Invalid(Scripted):
        name = "invalid-int"
        kinds = frozenset({"int"})

        def propose(self, closure=None):
            return {self.params[0]: 99}

    result = optimize(flow, DATA, metric=score, epochs=1, batch_size=2, quiet=True, eval_every=1,
                      optimizers=[Scripted([prompt], ["better"]), Invalid([k], [])],
                      restore_best=False)
    assert "Int(0, 9), got 99" in result.history[1].optimizers[1].refused
    assert result.history[1].optimizers[0].refused.startswith("rolled back")
    assert prompt.value == "start" and k.value == 0


def test_an_optimizers_own_accept_holds_unless_the_run_sets_one():
    prompt, _, flow = prompt_flow()
    opt = Scripted([prompt], ["worse"])
    opt.accept = "always"
    optimize(flow, DATA, metric=score, optimizers=[opt], epochs=1, batch_size=2, quiet=True,
             restore_best=False)
    assert prompt.value == "worse"
    prompt2, _, flow2 = prompt_flow()
    opt2 = Scripted([prompt2], ["worse"])
    opt2.accept = "always"
    optimize(flow2, DATA, metric=score, optimizers=[opt2], epochs=1, batch_size=2, quiet=True,
             restore_best=False, accept="improve")
    assert prompt2.value == "start"


def test_a_failing_step_also_rolls_back_a_torch_update_and_its_state():
    import torch

    w = go.param(torch.zeros(2, requires_grad=True), name="w")
    prompt = go.param("start", name="prompt")

    @go.op
    def predict(w, prompt, x):
        return (w * x).sum()

    torch_opt = go.optimizer("torch", [w], algorithm="Adam", lr=0.1)
    failing = Scripted([prompt], ["better"], fail_at=1)
    with pytest.warns(RuntimeWarning, match="propose broke"):
        result = optimize(lambda x: predict(w, prompt, torch.tensor(x)), [([1.0, 2.0], 3.0)],
                          metric=lambda e, p: (p - e.target) ** 2, epochs=2, batch_size=1, quiet=True,
                          restore_best=False, optimizers=[torch_opt, failing])
    assert result.history[1].optimizers[0].refused.startswith("rolled back")
    assert result.history[1].values_hash == result.history[0].values_hash
    assert result.history[2].optimizers[0].committed == ["w"]
    assert torch_opt.torch_optimizer.state_dict()["state"][0]["step"] == 1  # one Adam step, not two
