"""``optuna`` (TPE) against the built-in ``random`` and ``spsa`` on a hyperparameter-tuning workflow.

The workflow trains a small MLP on a noisy two-spiral task and scores it by validation
accuracy; the tuned params are the learning rate, weight decay (both log-scale floats) and hidden
width (a log-scale int). Every method gets the same budget of workflow evaluations; the figure
is the best validation accuracy reached after 10, 20 and 40 evaluations (spsa spends two per step).

    python benchmarks/bench_optuna.py            # the table, mean over seeds
    make bench                                   # pytest-benchmark timings, figures in extra_info
"""

from __future__ import annotations

import math
import statistics
import sys
from typing import Callable

import optuna
import pytest
import torch

import graphopt as go

BUDGET = 40
CHECKPOINTS = (10, 20, 40)
METHODS = ("optuna-tpe", "random", "spsa")
TRAIN_STEPS = 60


def spirals(seed: int, count: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Two interleaved spirals with noise: points and 0/1 labels."""
    generator = torch.Generator().manual_seed(seed)
    t = torch.rand(count, generator=generator) * 3 * math.pi
    label = torch.randint(0, 2, (count,), generator=generator)
    angle = t + label * math.pi
    points = torch.stack([t * torch.cos(angle), t * torch.sin(angle)], dim=1) / (3 * math.pi)
    return points + 0.04 * torch.randn(count, 2, generator=generator), label


class Workflow:
    """Train with the params' values, score on held-out points; counts and records evaluations."""

    def __init__(self) -> None:
        self.train = spirals(0, 300)
        self.valid = spirals(1, 300)
        self.scores: list[float] = []

    def accuracy(self, lr: float, weight_decay: float, hidden: int) -> float:
        torch.manual_seed(0)
        model = torch.nn.Sequential(torch.nn.Linear(2, hidden), torch.nn.Tanh(),
                                    torch.nn.Linear(hidden, hidden), torch.nn.Tanh(),
                                    torch.nn.Linear(hidden, 2))
        optimizer = torch.optim.Adam(model.parameters(), lr=lr, weight_decay=weight_decay)
        points, labels = self.train
        for _ in range(TRAIN_STEPS):
            optimizer.zero_grad()
            torch.nn.functional.cross_entropy(model(points), labels).backward()
            optimizer.step()
        with torch.no_grad():
            points, labels = self.valid
            score = float((model(points).argmax(dim=1) == labels).float().mean())
        self.scores.append(score)
        return score

    def best_at(self, count: int) -> float:
        return max(self.scores[:count])


def make_params() -> list[go.Param]:
    return [go.param(1e-3, name="lr", space=go.Float(1e-4, 1.0, log=True)),
            go.param(1e-4, name="weight_decay", space=go.Float(1e-6, 1e-1, log=True)),
            go.param(4, name="hidden", space=go.Int(2, 64, log=True))]


def tune(method: str, seed: int) -> Workflow:
    """Spend the evaluation budget with ``method``; the workflow holds every score."""
    workflow = Workflow()
    params = make_params()

    @go.op
    def train_and_score(lr: float, weight_decay: float, hidden: int) -> float:
        return workflow.accuracy(lr, weight_decay, hidden)

    if method == "spsa":
        opt = go.optimizer("spsa", params, seed=seed)
        while len(workflow.scores) < BUDGET:
            opt.step(lambda: go.Feedback(score=train_and_score(*params).value))
        return workflow
    name, config = ("optuna", {"sampler": "tpe"}) if method == "optuna-tpe" else ("random", {})
    opt = go.optimizer(name, params, seed=seed, **config)
    while len(workflow.scores) < BUDGET:
        out = train_and_score(*params)
        go.backward(out, go.Feedback(score=out.value))
        opt.step()
        opt.zero_feedback()
    return workflow


def run_and_record(benchmark: Callable, method: str) -> Workflow:
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    workflow = benchmark.pedantic(tune, args=(method, 0), rounds=1, iterations=1)
    for count in CHECKPOINTS:
        benchmark.extra_info[f"best_accuracy_at_{count}"] = workflow.best_at(count)
    return workflow


@pytest.mark.parametrize("method", METHODS)
def test_tuning_budget(benchmark, method):
    workflow = run_and_record(benchmark, method)
    assert len(workflow.scores) == BUDGET
    assert workflow.best_at(BUDGET) > 0.5  # better than guessing a label


def main(seeds: range = range(5)) -> None:
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    print(f"best validation accuracy reached, mean ± sd over {len(seeds)} seeds")
    print(f"{'method':<12}" + "".join(f"{f'@{n} evals':>16}" for n in CHECKPOINTS))
    for method in METHODS:
        runs = [tune(method, seed) for seed in seeds]
        cells = []
        for count in CHECKPOINTS:
            best = [run.best_at(count) for run in runs]
            cells.append(f"{statistics.mean(best):.3f} ± {statistics.stdev(best):.3f}")
        print(f"{method:<12}" + "".join(f"{cell:>16}" for cell in cells))


if __name__ == "__main__":
    main(range(int(sys.argv[1])) if len(sys.argv) > 1 else range(5))
