"""The optuna optimizer passes graphopt's plugin conformance checks, with several samplers."""

from __future__ import annotations

from graphopt.testing import OptimizerConformance


class TestTPEConformance(OptimizerConformance):
    optimizer = "optuna"
    config = {"seed": 0}


class TestCmaEsConformance(OptimizerConformance):
    optimizer = "optuna"
    config = {"sampler": "cmaes", "seed": 1}


class TestNSGAIIConformance(OptimizerConformance):
    optimizer = "optuna"
    config = {"sampler": "nsga2", "sampler_options": {"population_size": 4}, "seed": 2}


class TestWilcoxonConformance(OptimizerConformance):
    optimizer = "optuna"
    config = {"pruner": "wilcoxon", "seed": 3}
