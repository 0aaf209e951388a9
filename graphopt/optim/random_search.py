"""``random``: random search over hyperparameter spaces, driven by score feedback or a closure."""

from __future__ import annotations

import random
from typing import Any, Callable, Mapping

from graphopt.errors import OptimizerStepError
from graphopt.graph.node import Param
from graphopt.optim.evaluation import (Counted, EvaluationMemo, current_values, is_evaluation,
                                       point_key)
from graphopt.optim.objective import distinct_feedback, mean_score, to_loss
from graphopt.optim.optimizer import Optimizer, ParamsArg
from graphopt.plugins.manager import PluginManager, hookimpl


class RandomSearch(Counted, Optimizer):
    """Scores the current values by the mean feedback score, remembers the best, samples anew.

    Losses count as negated scores. ``best`` holds the best values seen and their score; a step
    without score feedback changes nothing. Without score feedback, ``step(closure)`` scores the
    current values with the closure, once per values (a memo across steps: ``evaluations``,
    ``distinct_points``; ``memo_size=0`` runs the closure every time).
    """

    name = "random"
    kinds = frozenset({"int", "float", "choice"})

    def __init__(self, params: ParamsArg, *, seed: int = 0, memo_size: int = 10_000,
                 plugin_manager: PluginManager | None = None) -> None:
        super().__init__(params, {}, plugin_manager=plugin_manager)
        self.rng = random.Random(seed)
        self.memo = EvaluationMemo(memo_size)
        self.history: list[dict[str, Any]] = []
        self.best: dict[str, Any] | None = None

    def check_param(self, name: str, target: Param) -> None:
        self.require_space(name, target)

    def propose(self, closure: Callable[[], Any] | None = None) -> dict[Param, Any]:
        score = mean_score(distinct_feedback(self.params))
        if score is None and is_evaluation(closure):
            score = self._score(closure)  # a trainer's: its examples change, its cache keeps runs
        elif score is None and closure is not None:
            score = self.memo.run(point_key(current_values(self.params), self.param_names),
                                  lambda: self._score(closure))
        if score is None:
            return {}
        values = {self.param_names[p]: p.to_json() for p in self.params}
        self.history.append({"values": values, "score": score})
        if self.best is None or score > self.best["score"]:
            self.best = {"values": values, "score": score}
        return {p: p.kind.space.sample(self.rng) for p in self.params}  # type: ignore[attr-defined]

    def _score(self, closure: Callable[[], Any]) -> float:
        try:
            return -to_loss(closure())
        except ValueError as err:
            raise OptimizerStepError(f"optimizer 'random': closure result: {err}", optimizer=self) from err

    def extra_state_dict(self) -> dict[str, Any]:
        version, internal, gauss = self.rng.getstate()
        return {"rng": [version, list(internal), gauss], "history": self.history, "best": self.best,
                "memo": self.memo.state_dict()}

    def load_extra_state_dict(self, data: Mapping[str, Any]) -> None:
        version, internal, gauss = data["rng"]
        self.rng.setstate((version, tuple(internal), gauss))
        self.history = list(data["history"])
        self.best = data["best"]
        if "memo" in data:
            self.memo.load_state_dict(data["memo"])


@hookimpl
def graphopt_optimizers() -> list[type]:
    return [RandomSearch]
