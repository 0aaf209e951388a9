"""The lean backward of a torch step: the same feedback as the validated path, one shared
``ParamFeedback``, and no tensor value read (which would synchronise with a GPU)."""

import copy
import pickle

import pytest
import torch

import graphopt as go
from graphopt.feedback import ParamFeedback, received


def test_of_loss_builds_what_validation_builds():
    loss = torch.tensor(2.0, requires_grad=True)
    lean, checked = go.Feedback.of_loss(loss), go.Feedback(loss=loss)
    assert lean == checked and lean.loss is loss
    assert lean.model_fields_set == checked.model_fields_set == {"loss"}
    assert lean.model_dump() == checked.model_dump()
    assert lean.describe() == "loss=2" and lean.non_finite() is None
    assert pickle.loads(pickle.dumps(go.Feedback.of_loss(torch.tensor(3.0)))).loss == 3.0
    assert copy.copy(lean) == lean and lean.model_copy(update={"text": "t"}).text == "t"
    with pytest.raises(ValueError, match="frozen"):
        lean.text = "changed"


def test_of_loss_refuses_what_validation_refuses():
    with pytest.raises(ValueError, match="scalar tensor"):
        go.Feedback.of_loss(torch.ones(3))
    with pytest.raises(ValueError, match="torch.Tensor"):
        go.Feedback.of_loss(1.0)


def test_of_loss_on_a_subclass_runs_its_validators():
    class Strict(go.Feedback):
        tag: str

    with pytest.raises(ValueError, match="tag"):
        Strict.of_loss(torch.tensor(1.0))


def test_own_loss_reaches_every_param_as_one_shared_feedback():
    w = go.param(torch.ones(3, requires_grad=True), name="w")
    b = go.param(torch.zeros((), requires_grad=True), name="b")
    frozen = go.param(torch.ones(3), name="frozen", trainable=False)
    loss = go.ops.mse(go.op(name="model")(lambda x, w, b, f: x @ (w * f) + b)(
        torch.ones(4, 3), w, b, frozen), torch.zeros(4))
    go.backward(loss)
    (fw,), (fb,) = received(w), received(b)
    assert fw is fb and isinstance(fw, ParamFeedback)
    assert fw.feedback == go.Feedback(loss=loss.value) and fw.output is loss
    assert fw.subgraph.params == [w, b] and frozen.feedback == []
    assert w.value.grad is not None and b.value.grad is not None


def test_a_loss_given_as_feedback_keeps_its_text_and_runs_autograd():
    w = go.param(torch.ones(2, requires_grad=True), name="w")
    out = go.op(name="total")(lambda w: (w * 3).sum())(w)
    go.backward(out, {"loss": out.value, "text": "too high"})
    (received_,) = received(w)
    assert received_.feedback.text == "too high" and received_.feedback.loss is out.value
    assert torch.equal(w.value.grad, torch.full((2,), 3.0))


class _Watched(torch.Tensor):
    """A tensor that records every read of its value back to Python."""

    reads: list[str] = []

    @classmethod
    def __torch_function__(cls, func, types, args=(), kwargs=None):
        name = getattr(func, "__name__", "")
        if name in ("item", "tolist", "numpy", "__bool__", "__float__", "__int__", "__index__",
                    "__format__", "__repr__", "is_nonzero", "equal", "allclose"):
            cls.reads.append(name)
        return super().__torch_function__(func, types, args, kwargs)


def test_backward_and_zero_feedback_read_no_tensor_value(plugin_manager):
    w = go.param(torch.ones(3, requires_grad=True), name="w")
    opt = go.optimizer("torch", [w], algorithm="SGD", lr=0.1, plugin_manager=plugin_manager)
    x = torch.ones(5, 3).as_subclass(_Watched)
    loss = go.ops.mse(go.op(name="model")(lambda x, w: x @ w)(x, w), torch.zeros(5))
    _Watched.reads.clear()
    assert loss.value.item() > 0 and _Watched.reads == ["item"]  # a read is seen
    _Watched.reads.clear()
    go.backward(loss, plugin_manager=plugin_manager)
    opt.zero_feedback()
    assert _Watched.reads == [] and w.feedback == []
