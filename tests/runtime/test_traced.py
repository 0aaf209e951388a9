"""Traced runs packed on a worker and rebuilt on the driver; the executor option."""

from __future__ import annotations

import pickle
import threading

import pytest
import torch

import graphopt as go
from graphopt.runtime.executor import ThreadExecutor, executor_for
from graphopt.runtime.traced import CannotShip, pack, unpack


@go.op
def shout(prompt: str, text: str) -> str:
    return f"{prompt} {text}".upper()


@go.op
def lock(text: str) -> threading.Lock:
    return threading.Lock()


@go.op
def scale(weight: torch.Tensor, x: float) -> torch.Tensor:
    return weight * x


def test_a_packed_run_is_rebuilt_on_the_drivers_params_and_backward_reaches_them():
    worker = go.param("hi", name="prompt")  # the worker's copy of the param
    output = shout(worker, "there")
    driver = go.param("hi", name="prompt")
    rebuilt = unpack(pickle.loads(pickle.dumps(pack(output, {"prompt": worker}))), {"prompt": driver})
    assert rebuilt.value == "HI THERE" and rebuilt.op.name == output.op.name
    assert rebuilt.parents[0] is driver and rebuilt.id != output.id
    go.backward(rebuilt, "shorter")
    assert driver.feedback and not worker.feedback


def test_tensors_travel_as_tensors_detached():
    weight = go.param(torch.ones(2, requires_grad=True), name="w")
    rebuilt = unpack(pack(scale(weight, 3.0), {"w": weight}), {"w": weight})
    assert isinstance(rebuilt.value, torch.Tensor) and rebuilt.value.tolist() == [3.0, 3.0]
    assert rebuilt.value.grad_fn is None


def test_a_value_that_cannot_be_shipped_names_its_op():
    prompt = go.param("x", name="prompt")
    with pytest.raises(CannotShip, match="op 'lock'"):
        pack(lock(prompt), {"prompt": prompt})


def test_executor_option_names_the_choices():
    assert isinstance(executor_for(None, concurrency=3), ThreadExecutor)
    with pytest.raises(ValueError, match="executor expects one of threads, ray"):
        executor_for("dask")
    with pytest.raises(ValueError, match="needs executor='ray'"):
        executor_for("threads", address="ray://head:10001")
