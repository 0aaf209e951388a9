import pytest
import torch

import graphopt as go
from graphopt.feedback import received


@go.op
def linear(weight, x):
    """x @ weight."""
    return x @ weight


def test_gradients_match_plain_autograd():
    torch.manual_seed(0)
    x, y = torch.randn(8, 3), torch.randn(8)
    start = torch.randn(3)
    w = go.param(start.clone().requires_grad_(True), name="w")
    loss = go.ops.mse(linear(w, x), y)
    go.backward(loss)
    oracle = start.clone().requires_grad_(True)
    torch.nn.functional.mse_loss(x @ oracle, y).backward()
    assert torch.allclose(w.value.grad, oracle.grad)


def test_mixed_graph_gets_gradients_and_text_from_one_backward():
    w = go.param(torch.tensor([1.0, 2.0], requires_grad=True), name="w")
    prompt = go.param("Rate:", name="prompt")

    @go.op
    def score_text(prompt_text, weights):
        return weights.sum() * len(prompt_text)

    loss = score_text(prompt, w)
    go.backward(loss, go.Feedback(text="prompt too long"))
    assert torch.equal(w.value.grad, torch.tensor([5.0, 5.0]))
    assert received(prompt)[0].feedback.text == "prompt too long"


def test_explicit_loss_feedback_runs_autograd():
    w = go.param(torch.tensor(3.0, requires_grad=True), name="w")
    out = w * 2
    go.backward(out, go.Feedback(loss=out.value ** 2, text="smaller"))
    assert w.value.grad.item() == pytest.approx(24.0)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.gpu
def test_ops_run_on_the_tensors_device():
    w = go.param(torch.zeros(3, device="cuda", requires_grad=True), name="w")
    x = torch.randn(4, 3, device="cuda")
    loss = go.ops.mse(linear(w, x), torch.ones(4, device="cuda"))
    assert loss.value.device.type == "cuda"
    go.backward(loss)
    assert w.value.grad.device.type == "cuda"
