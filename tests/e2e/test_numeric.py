"""End to end on numeric workflows: real torch training and zeroth-order search through graphopt."""

import torch

import graphopt as go


class Regressor(go.Module):
    def __init__(self, features: int, hidden: int):
        generator = torch.Generator().manual_seed(0)
        self.w1 = go.param((torch.randn(features, hidden, generator=generator) * 0.5).requires_grad_())
        self.b1 = go.param(torch.zeros(hidden, requires_grad=True))
        self.w2 = go.param((torch.randn(hidden, generator=generator) * 0.5).requires_grad_())

    @go.op
    def hidden(self, x, w1, b1):
        """tanh(x @ w1 + b1)"""
        return torch.tanh(x @ w1 + b1)

    @go.op
    def head(self, h, w2):
        """h @ w2"""
        return h @ w2

    def __call__(self, x):
        return self.head(self.hidden(x, self.w1, self.b1), self.w2)


def test_regression_through_ops_and_the_torch_optimizer_drops_loss_tenfold():
    torch.manual_seed(0)
    x = torch.randn(256, 4)
    y = torch.sin(x[:, 0]) + 0.5 * x[:, 1] * x[:, 2]
    model = Regressor(4, 16)
    opt = go.optimizer("torch", model, algorithm="Adam", lr=0.02)
    first = None
    for _ in range(300):
        opt.zero_feedback()
        loss = go.ops.mse(model(x), y)
        go.backward(loss)
        opt.step()
        first = first if first is not None else loss.value.item()
    assert loss.value.item() < first / 10
    assert set(dict(model.named_parameters())) == {"w1", "b1", "w2"}


@go.op
def rosenbrock(a, b):
    """Rosenbrock's valley: (1 - a)^2 + 100 (b - a^2)^2, minimum 0 at (1, 1)."""
    return (1 - a) ** 2 + 100 * (b - a * a) ** 2


def test_spsa_descends_rosenbrock_as_a_black_box():
    # Numerical optimization in the Trace paper's style: the optimizer sees only the output.
    a = go.param(-1.0, name="a", space=go.Float(-2.0, 2.0))
    b = go.param(1.5, name="b", space=go.Float(-1.0, 3.0))
    opt = go.optimizer("spsa", [a, b], lr=0.0005, perturbation=0.01, stability=10, seed=0)
    start = rosenbrock(a, b).value
    for _ in range(2000):
        opt.step(lambda: rosenbrock(a, b))
    assert rosenbrock(a, b).value < start / 10
