"""A torch training loop through graphopt against the same loop in raw torch (target ≤ 1.10×).

Set ``GRAPHOPT_BENCH_DEVICE=cuda`` to run both on a GPU, ``GRAPHOPT_BENCH_HIDDEN`` for a wider model.
"""

from __future__ import annotations

import os

import pytest
import torch

import graphopt as go

DEVICE = os.environ.get("GRAPHOPT_BENCH_DEVICE", "cpu")
STEPS = 200
BATCH, FEATURES = 512, 64
HIDDEN = int(os.environ.get("GRAPHOPT_BENCH_HIDDEN", "256"))


def data():
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(BATCH, FEATURES, generator=generator).to(DEVICE)
    y = torch.randn(BATCH, generator=generator).to(DEVICE)
    w1 = (torch.randn(FEATURES, HIDDEN, generator=generator) * 0.1).to(DEVICE)
    w2 = (torch.randn(HIDDEN, generator=generator) * 0.1).to(DEVICE)
    return x, y, w1, w2


def raw_loop():
    x, y, w1, w2 = data()
    w1.requires_grad_(True)
    w2.requires_grad_(True)
    opt = torch.optim.Adam([w1, w2], lr=1e-3)
    for _ in range(STEPS):
        opt.zero_grad(set_to_none=True)
        loss = torch.nn.functional.mse_loss(torch.relu(x @ w1) @ w2, y)
        loss.backward()
        opt.step()
    if DEVICE == "cuda":
        torch.cuda.synchronize()
    return loss.item()


@go.op
def mlp(x, w1, w2):
    """relu(x @ w1) @ w2"""
    return torch.relu(x @ w1) @ w2


def graphopt_loop():
    x, y, w1, w2 = data()
    p1 = go.param(w1.requires_grad_(True), name="w1")
    p2 = go.param(w2.requires_grad_(True), name="w2")
    opt = go.optimizer("torch", [p1, p2], algorithm="Adam", lr=1e-3)
    for _ in range(STEPS):
        opt.zero_feedback()
        loss = go.ops.mse(mlp(x, p1, p2), y)
        go.backward(loss)
        opt.step()
    if DEVICE == "cuda":
        torch.cuda.synchronize()
    return loss.value.item()


def test_same_result():
    assert graphopt_loop() == pytest.approx(raw_loop(), rel=1e-5)


@pytest.mark.parametrize("loop", [raw_loop, graphopt_loop], ids=["raw_torch", "graphopt"])
def test_torch_loop(benchmark, loop):
    benchmark.group = f"torch-loop-{DEVICE}"
    benchmark.pedantic(loop, rounds=7, iterations=1, warmup_rounds=1)
