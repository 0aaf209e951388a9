"""A torch training loop through graphopt against the same loop in raw torch (target ≤ 1.05×).

Models: ``tiny`` (a linear 8 → 1 on batches of 32: Python overhead is the whole cost), ``wide``
(64 → 256 → 1, batch 512) and ``wider`` (64 → 4096 → 1). Each runs on the CPU and, where CUDA is
available, on the GPU (skipped otherwise). ``python benchmarks/bench_torch.py [cpu|cuda]`` prints
µs per step phase by phase (zero, forward, backward, step), graphopt against raw torch: the two
loops train separate copies of the model in lockstep, one step of each in turn (which one goes
first alternates), so load on a shared machine hits both alike. On the CPU the clock is the
thread's CPU time (time another process takes while this one waits is not counted); on a GPU it
is wall time on the CPU side (no synchronisation inside the loop).
"""

from __future__ import annotations

import statistics
import sys
import time

import pytest
import torch

import graphopt as go

MODELS = {  # name: (batch, features, hidden or None for linear, steps)
    "tiny": (32, 8, None, 2000),
    "wide": (512, 64, 256, 200),
    "wider": (512, 64, 4096, 100),
}
PHASES = ("zero", "forward", "backward", "step")
DEVICES = ["cpu", pytest.param("cuda", marks=pytest.mark.skipif(not torch.cuda.is_available(),
                                                                 reason="no CUDA device"))]


def data(model, device):
    batch, features, hidden, _ = MODELS[model]
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(batch, features, generator=generator).to(device)
    y = torch.randn(batch, generator=generator).to(device)
    if hidden is None:
        weights = [(torch.randn(features, generator=generator) * 0.1).to(device),
                   torch.zeros((), device=device)]
    else:
        weights = [(torch.randn(features, hidden, generator=generator) * 0.1).to(device),
                   (torch.randn(hidden, generator=generator) * 0.1).to(device)]
    return x, y, [w.requires_grad_(True) for w in weights]


def forward(x, a, b):
    """The model: ``x @ a + b`` (linear) or ``relu(x @ a) @ b`` (one hidden layer)."""
    return x @ a + b if b.dim() == 0 else torch.relu(x @ a) @ b


model_op = go.op(name="model")(forward)


def _sync(device):
    if device == "cuda":
        torch.cuda.synchronize()


def raw_loop(model, device, steps=None, phases=None):
    x, y, weights = data(model, device)
    opt = torch.optim.Adam(weights, lr=1e-3)
    clock = time.perf_counter_ns
    times = [0, 0, 0, 0]
    for _ in range(steps or MODELS[model][3]):
        t0 = clock()
        opt.zero_grad(set_to_none=True)
        t1 = clock()
        loss = torch.nn.functional.mse_loss(forward(x, *weights), y)
        t2 = clock()
        loss.backward()
        t3 = clock()
        opt.step()
        t4 = clock()
        times[0] += t1 - t0
        times[1] += t2 - t1
        times[2] += t3 - t2
        times[3] += t4 - t3
    _sync(device)
    if phases is not None:
        phases.append(times)
    return loss.item()


def graphopt_loop(model, device, steps=None, phases=None):
    x, y, weights = data(model, device)
    params = [go.param(w, name=f"w{i}") for i, w in enumerate(weights)]
    opt = go.optimizer("torch", params, algorithm="Adam", lr=1e-3)
    clock = time.perf_counter_ns
    times = [0, 0, 0, 0]
    for _ in range(steps or MODELS[model][3]):
        t0 = clock()
        opt.zero_feedback()
        t1 = clock()
        loss = go.ops.mse(model_op(x, *params), y)
        t2 = clock()
        go.backward(loss)
        t3 = clock()
        opt.step()
        t4 = clock()
        times[0] += t1 - t0
        times[1] += t2 - t1
        times[2] += t3 - t2
        times[3] += t4 - t3
    _sync(device)
    if phases is not None:
        phases.append(times)
    return loss.value.item()


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("model", list(MODELS))
def test_same_result(model, device):
    assert graphopt_loop(model, device, steps=20) == pytest.approx(raw_loop(model, device, steps=20),
                                                                   rel=1e-5)


@pytest.mark.parametrize("loop", [raw_loop, graphopt_loop], ids=["raw_torch", "graphopt"])
@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("model", list(MODELS))
def test_torch_loop(benchmark, model, device, loop):
    benchmark.group = f"torch-loop-{model}-{device}"
    benchmark.pedantic(loop, args=(model, device), rounds=7, iterations=1, warmup_rounds=1)


def _raw_stepper(model, device):
    x, y, weights = data(model, device)
    opt = torch.optim.Adam(weights, lr=1e-3)
    mse = torch.nn.functional.mse_loss
    return (lambda: opt.zero_grad(set_to_none=True), lambda: mse(forward(x, *weights), y),
            lambda loss: loss.backward(), opt.step)


def _graphopt_stepper(model, device):
    x, y, weights = data(model, device)
    params = [go.param(w, name=f"w{i}") for i, w in enumerate(weights)]
    opt = go.optimizer("torch", params, algorithm="Adam", lr=1e-3)
    mse = go.ops.mse
    return opt.zero_feedback, lambda: mse(model_op(x, *params), y), go.backward, opt.step


def _step(stepper, times, clock):
    zero, forward_, backward, step = stepper
    t0 = clock()
    zero()
    t1 = clock()
    loss = forward_()
    t2 = clock()
    backward(loss)
    t3 = clock()
    step()
    t4 = clock()
    times[0] += t1 - t0
    times[1] += t2 - t1
    times[2] += t3 - t2
    times[3] += t4 - t3


def compare(model, device, rounds=5):
    """Median over ``rounds`` of µs per step, phase by phase: raw and graphopt in lockstep."""
    steps = MODELS[model][3]
    clock = time.thread_time_ns if device == "cpu" else time.perf_counter_ns
    raw: list[list[int]] = []
    ours: list[list[int]] = []
    for _ in range(rounds):
        raw_stepper, our_stepper = _raw_stepper(model, device), _graphopt_stepper(model, device)
        for _ in range(10):  # warm-up
            _step(raw_stepper, [0, 0, 0, 0], clock)
            _step(our_stepper, [0, 0, 0, 0], clock)
        raw_times, our_times = [0, 0, 0, 0], [0, 0, 0, 0]
        for index in range(steps):
            if index % 2:
                _step(raw_stepper, raw_times, clock)
                _step(our_stepper, our_times, clock)
            else:
                _step(our_stepper, our_times, clock)
                _step(raw_stepper, raw_times, clock)
        _sync(device)
        raw.append(raw_times)
        ours.append(our_times)

    def per_step(runs):
        return [statistics.median(r[i] for r in runs) / steps / 1e3 for i in range(4)]

    def total(runs):
        return statistics.median(sum(r) for r in runs) / steps / 1e3

    return per_step(raw), per_step(ours), total(raw), total(ours)


def main(devices) -> None:
    print(f"{'model':7}{'device':7}" + "".join(f"{p:>18}" for p in (*PHASES, "total")) + "   ratio")
    print(" " * 14 + "   (µs/step: graphopt / raw)")
    for device in devices:
        if device == "cuda" and not torch.cuda.is_available():
            print("cuda: no CUDA device, skipped")
            continue
        for model in MODELS:
            raw, ours, raw_total, ours_total = compare(model, device)
            cells = "".join(f"{o:9.1f} /{r:7.1f}" for o, r in zip(ours, raw))
            print(f"{model:7}{device:7}{cells}{ours_total:9.1f} /{raw_total:7.1f}   "
                  f"{ours_total / raw_total:.3f}×", flush=True)


if __name__ == "__main__":
    main(sys.argv[1:] or ["cpu", "cuda"])
