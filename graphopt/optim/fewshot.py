"""``fewshot``: bootstrap demonstrations from successful traced runs, keep the best subset.

As DSPy's BootstrapFewShot does, a run whose feedback scores at least ``min_score`` lends its
trace: the call of the op that consumed the ``demos`` parameter (its other inputs and its output)
becomes a demonstration in a pool. Each step that grows the pool scores the current value and
``candidates`` subsets of at most ``max_demos`` (the first successful ones, then random draws) on
the evaluation's examples, and commits the best, as BootstrapFewShotWithRandomSearch selects.
"""

from __future__ import annotations

import json
import random
from typing import Any, Callable, Mapping

from graphopt.errors import ParamValidationError
from graphopt.feedback.propagators import ParamFeedback, received
from graphopt.graph.node import Error, Message, Param
from graphopt.graph.op import NESTED
from graphopt.optim import racing
from graphopt.optim.evaluation import require_evaluation
from graphopt.optim.optimizer import Optimizer, ParamsArg, require_ints
from graphopt.plugins.manager import PluginManager, hookimpl

Demo = dict[str, Any]


class FewShot(Optimizer):
    """Fills ``demos`` parameters with demonstrations bootstrapped from successful runs."""

    name = "fewshot"
    kinds = frozenset({"demos"})

    def __init__(self, params: ParamsArg, *, max_demos: int = 4, min_score: float = 1.0,
                 candidates: int = 4, max_pool: int = 32, max_examples: int | None = None,
                 value_chars: int = 500, seed: int = 0,
                 plugin_manager: PluginManager | None = None) -> None:
        require_ints(self.name, {"max_demos": (max_demos, 1)})
        super().__init__(params, {}, plugin_manager=plugin_manager)
        self.max_demos = max_demos
        self.min_score = min_score
        self.candidates = candidates
        self.max_pool = max_pool
        self.max_examples = max_examples
        self.value_chars = value_chars
        self.rng = random.Random(seed)
        self.pool: dict[str, list[Demo]] = {n: [] for n in self.param_names.values()}
        self.last_scores: dict[str, float] = {}

    def check_param(self, name: str, target: Param) -> None:
        limit = getattr(target.kind, "max_demos", None)
        if limit is not None and limit < 1:
            raise ParamValidationError(f"optimizer 'fewshot': param {name!r} holds at most {limit} "
                                       f"demonstrations; nothing to fill", param=target)

    def propose(self, closure: Callable[[], Any] | None = None) -> dict[Param, Any]:
        if not self._bootstrap():
            return {}
        evaluation = require_evaluation(self, closure)
        options = self._options()
        count = evaluation.size if self.max_examples is None else min(self.max_examples, evaluation.size)
        indices = list(range(count))
        means = [racing.mean(evaluation.scores(values, indices)) for values in options]
        best = max(range(len(options)), key=lambda i: (means[i], -i))
        self.last_scores = {"current": means[0], "best": means[best]}
        return {p: v for p, v in options[best].items() if v != p.value}

    def _bootstrap(self) -> bool:
        """Add demonstrations from this step's successful runs; True when the pool grew."""
        grew = False
        for target in self.params:
            name = self.param_names[target]
            for item in received(target):
                score = item.feedback.score
                if score is None or score < self.min_score or len(self.pool[name]) >= self.max_pool:
                    continue
                demo = self._demo(target, item)
                if demo is not None and demo not in self.pool[name]:
                    self.pool[name].append(demo)
                    grew = True
        return grew

    def _demo(self, target: Param, item: ParamFeedback) -> Demo | None:
        """The call of the op consuming ``target`` in this run, as a demonstration."""
        for node in item.subgraph.nodes:
            if isinstance(node, Message) and any(p is target for p in node.parents):
                if isinstance(node, Error):
                    return None
                inputs = {n: self._plain(v.value) for n, v in node.inputs.items()
                          if n not in (NESTED, "__code__") and not isinstance(v, Param)}
                inputs.update({n: self._plain(v) for n, v in (node.constants or {}).items()})
                return {"inputs": inputs, "output": self._plain(node.value)}
        return None

    def _plain(self, value: Any) -> Any:
        try:
            text = json.dumps(value)
        except (TypeError, ValueError):
            return str(value)[: self.value_chars]
        return value if len(text) <= self.value_chars else str(value)[: self.value_chars]

    def _options(self) -> list[dict[Param, Any]]:
        """The current values first, then the first successful demos, then random subsets."""
        options = [{p: p.value for p in self.params}]
        first = {p: self._fit(p, self.pool[self.param_names[p]][: self.max_demos]) for p in self.params}
        options.append(first)
        for _ in range(max(0, self.candidates - 1)):
            draw = {}
            for target in self.params:
                pool = self.pool[self.param_names[target]]
                draw[target] = self._fit(target, self.rng.sample(pool, min(self.max_demos, len(pool))))
            options.append(draw)
        unique, seen = [], set()
        for option in options:
            key = json.dumps([option[p] for p in self.params], sort_keys=True)
            if key not in seen:
                seen.add(key)
                unique.append(option)
        return unique

    def _fit(self, target: Param, demos: list[Demo]) -> list[Demo]:
        limit = getattr(target.kind, "max_demos", None)
        return target.validate(demos if limit is None else demos[:limit])

    def extra_state_dict(self) -> dict[str, Any]:
        version, internal, gauss = self.rng.getstate()
        return {"rng": [version, list(internal), gauss], "pool": self.pool,
                "last_scores": {k: v for k, v in self.last_scores.items() if v == v and abs(v) != float("inf")}}

    def load_extra_state_dict(self, data: Mapping[str, Any]) -> None:
        unknown = sorted(set(data["pool"]) - set(self.param_names.values()))
        if unknown:
            raise ParamValidationError(f"optimizer 'fewshot': demonstration pool for unknown params {unknown}")
        version, internal, gauss = data["rng"]
        self.rng.setstate((version, tuple(internal), gauss))
        self.pool = {n: list(data["pool"].get(n, [])) for n in self.param_names.values()}
        self.last_scores = dict(data.get("last_scores", {}))


@hookimpl
def graphopt_optimizers() -> list[type]:
    return [FewShot]
