"""``lion``, ``mezo`` and ``greater`` pass graphopt's plugin conformance checks."""

from __future__ import annotations

from typing import Any, Mapping

from graphopt.testing import OptimizerConformance
from graphopt_gradients.testing import tiny_model


class TestLionConformance(OptimizerConformance):
    optimizer = "lion"
    config = {"lr": 0.01, "betas": (0.9, 0.99), "weight_decay": 0.1}


class TestMeZOConformance(OptimizerConformance):
    optimizer = "mezo"
    config = {"lr": 0.01, "eps": 0.001, "seed": 3}


class TestGreaterConformance(OptimizerConformance):
    optimizer = "greater"

    @property
    def config(self) -> Mapping[str, Any]:  # type: ignore[override]
        # Built per test, not at import: the model is a fresh tiny Llama with random weights.
        return {"model": tiny_model(), "examples": [("2+2", "4"), ("3+3", "6")],
                "template": "{prompt}\n{input}=", "chat": None, "topk": 2, "positions_per_step": 2,
                "candidates": 3, "lm_topk": 16}
