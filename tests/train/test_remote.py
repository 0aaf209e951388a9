"""Evaluations through an executor that ships them (pickled, as Ray does), without Ray."""

from __future__ import annotations

import json
import pickle
from typing import Any, Callable, Sequence

import torch

import graphopt as go
from graphopt.llm.scripted import follow_schema, scripted_client
from graphopt.runtime.executor import WorkerLost
from graphopt.train import Trainer

DATA = [{"id": name, "input": {"text": name}, "target": name.upper()} for name in ("a", "b", "c", "d")]


class Shouter(go.Module):
    def __init__(self) -> None:
        self.style = go.param("quiet", name="style")

    @go.op
    def speak(self, style: str, text: str) -> str:
        return text.upper() if "loud" in style.lower() or "specific" in style.lower() else text

    def forward(self, text: str) -> go.Node:
        return self.speak(self.style, text)


def exact(example: Any, prediction: Any) -> go.Feedback:
    if prediction == example.target:
        return go.Feedback(score=1.0)
    return go.Feedback(score=0.0, text=f"expected {example.target!r}, got {prediction!r}")


def specific(messages: Any, params: Any) -> str:
    """Every string the optimizer asks for says to be specific."""
    def fill(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: fill(v) for k, v in value.items()}
        return "Be specific." if isinstance(value, str) else value

    return json.dumps(fill(json.loads(follow_schema(messages, params))))


class PickledExecutor:
    """Each batch pickled and unpickled before it runs; examples in ``lose`` lose their worker."""

    ships = True

    def __init__(self, lose: Sequence[str] = ()) -> None:
        self.lose = set(lose)
        self.batches = 0

    def map(self, function: Callable[..., Any], items: Sequence[tuple[Any, ...]]) -> list[Any]:
        self.batches += 1
        shipped = pickle.loads(pickle.dumps(function))
        return [WorkerLost("worker died 3 times") if item[0].id in self.lose else shipped(*item)
                for item in items]

    def close(self) -> None:
        pass


def test_an_example_whose_worker_is_lost_is_a_failure_and_the_others_are_scored():
    result = go.evaluate(Shouter(), DATA, exact, executor=PickledExecutor(lose=["b"]), error_score=-1.0)
    by_id = {e.id: e for e in result.examples}
    assert by_id["b"].score == -1.0 and "WorkerLost: worker died 3 times" in by_id["b"].error
    assert [by_id[i].error for i in "acd"] == [None, None, None]


def test_a_run_through_a_shipping_executor_equals_the_run_on_threads():
    def run(executor: Any) -> Any:
        flow = Shouter()
        opt = go.optimizer("optoprime", [flow.style], llm=scripted_client(specific))
        trainer = Trainer(flow, DATA, metric=exact, optimizers=opt, batch_size=2, epochs=2, quiet=True,
                          executor=executor)
        result = trainer.fit()
        data = result.model_dump(mode="json")
        for record in data["history"]:
            record.pop("time"), record.pop("seconds")
        return data, trainer.runner.evaluations

    shipping = PickledExecutor()
    shipped = run(shipping)
    assert shipped == run("threads")
    assert shipping.batches > 0
    assert shipped[0]["best_values"] == {"style": "Be specific."}  # backward reached the driver's param


class Hybrid(go.Module):
    """A tensor param (trained by torch) and a text param (trained from text feedback)."""

    def __init__(self) -> None:
        self.w = go.param(torch.zeros(2, requires_grad=True), name="w")
        self.style = go.param("quiet", name="style")

    @go.op
    def answer(self, w: Any, style: str, x: list[float], text: str) -> tuple[Any, str]:
        word = text.upper() if "specific" in style.lower() else text
        return (w * torch.tensor(x)).sum(), word

    def forward(self, x: list[float], text: str) -> go.Node:
        return self.answer(self.w, self.style, x, text)


HYBRID = [{"id": f"h{i}", "input": {"x": x, "text": t}, "target": [y, t.upper()]}
          for i, (x, y, t) in enumerate([([1.0, 2.0], 3.0, "a"), ([2.0, 1.0], 3.0, "b"),
                                         ([1.0, 1.0], 2.0, "c"), ([3.0, 1.0], 4.0, "d")])]


def fitted(example: Any, prediction: Any) -> go.Feedback:
    value, word = prediction
    loss = (value - example.target[0]) ** 2
    if word == example.target[1]:
        return go.Feedback(loss=loss)
    return go.Feedback(loss=loss, text=f"expected {example.target[1]!r}, got {word!r}")


def hybrid_run(executor: Any) -> tuple[Any, Any]:
    """A torch Adam on ``w`` and optoprime on ``style``; the trained ``w`` and the history."""
    flow = Hybrid()
    opts = [go.optimizer("torch", [flow.w], algorithm="Adam", lr=0.1),
            go.optimizer("optoprime", [flow.style], llm=scripted_client(specific))]
    trainer = Trainer(flow, HYBRID, metric=fitted, optimizers=opts, batch_size=2, epochs=3, seed=0,
                      quiet=True, restore_best=False, executor=executor)
    result = trainer.fit()
    data = result.model_dump(mode="json")
    for record in data["history"]:
        record.pop("time"), record.pop("seconds")
    return flow, data


def test_torch_gradients_of_runs_shipped_to_workers_reach_the_drivers_tensor_params():
    local, on_threads = hybrid_run("threads")
    shipping = PickledExecutor()
    remote, shipped = hybrid_run(shipping)
    assert shipping.batches > 0
    assert not torch.equal(remote.w.value, torch.zeros(2))  # Adam moved w from grads sent back
    assert torch.allclose(remote.w.value, local.w.value, rtol=0, atol=1e-6)
    assert remote.style.value == local.style.value == "Be specific."  # text feedback still flows
    assert shipped == on_threads


def test_a_workflow_whose_output_is_its_loss_trains_its_tensor_param_through_a_shipping_executor():
    def run(executor: Any) -> torch.Tensor:
        w = go.param(torch.zeros(2, requires_grad=True), name="w")

        @go.op
        def squared_error(w: Any, x: list[float], y: float) -> Any:
            return ((w * torch.tensor(x)).sum() - y) ** 2

        data = [{"id": f"s{i}", "input": {"x": x, "y": y}, "target": None}
                for i, (x, y) in enumerate([([1.0, 2.0], 3.0), ([2.0, 1.0], 3.0), ([1.0, 1.0], 2.0)])]
        Trainer(lambda x, y: squared_error(w, x, y), data, metric=lambda e, p: go.Feedback(score=-float(p.detach())),
                optimizers=[go.optimizer("torch", [w], algorithm="SGD", lr=0.05)], batch_size=3,
                epochs=2, quiet=True, restore_best=False, executor=executor).fit()
        return w.value.detach()

    on_threads = run("threads")
    assert not torch.equal(on_threads, torch.zeros(2))
    assert torch.allclose(run(PickledExecutor()), on_threads, rtol=0, atol=1e-6)
