"""``mapelites``: a quality-diversity archive of the best candidate per descriptor cell.

As in MAP-Elites (Mouret and Clune, 2015, "Illuminating search spaces by mapping elites"): the
user names descriptors of a candidate (``length_bins`` and ``keyword_labels`` build common
ones: prompt length bin, tone); their labels span a grid. Each iteration mutates a randomly
chosen elite with the model, places the child in its cell and keeps it if the cell is empty or
the child scores higher than the elite there. The step commits the best elite; ``archive()``
returns every cell and ``coverage()`` the share of cells filled.
"""

from __future__ import annotations

import json
import math
import random
from dataclasses import dataclass
from typing import Any, Callable, Mapping, Sequence

from graphopt.errors import ParamValidationError
from graphopt.graph.node import Param
from graphopt.llm.client import Client
from graphopt.optim import rewrite
from graphopt.optim.evaluation import Evaluation, require_evaluation
from graphopt.optim.objective import distinct_feedback
from graphopt.optim.optimizer import Optimizer, ParamsArg, require_ints
from graphopt.plugins import PluginManager

from graphopt_promptsearch.common import (
    Values, finite_or_none, from_json_score, mean, mutation_request, rewrite_value, rng_state, score_values, set_rng_state,
)


@dataclass(frozen=True)
class Descriptor:
    """One axis of the archive: ``measure(values)`` returns one of ``labels``."""

    name: str
    measure: Callable[[Mapping[str, Any]], Any]
    labels: tuple[Any, ...]


def length_bins(edges: Sequence[int] = (80, 200), *, param: str | None = None) -> Descriptor:
    """Characters of ``param`` (default: of every text value together) binned at ``edges``."""
    edges = tuple(sorted(edges))
    labels = tuple([f"<{edges[0]}"] + [f"{a}-{b}" for a, b in zip(edges, edges[1:])] + [f">={edges[-1]}"])

    def measure(values: Mapping[str, Any]) -> str:
        text = values[param] if param is not None else "".join(
            v for v in values.values() if isinstance(v, str))
        size = len(str(text))
        for index, edge in enumerate(edges):
            if size < edge:
                return labels[index]
        return labels[-1]

    return Descriptor(f"length({param})" if param else "length", measure, labels)


def keyword_labels(groups: Mapping[str, Sequence[str]], *, default: str = "other",
                   param: str | None = None, name: str = "tone") -> Descriptor:
    """The first group whose keywords appear in ``param`` (default: every text value), else
    ``default``: e.g. ``{"formal": ["please", "kindly"], "casual": ["hey", "!"]}``."""
    def measure(values: Mapping[str, Any]) -> str:
        text = str(values[param]) if param is not None else " ".join(
            v for v in values.values() if isinstance(v, str))
        lowered = text.lower()
        return next((label for label, words in groups.items()
                     if any(w.lower() in lowered for w in words)), default)

    return Descriptor(name, measure, (*groups, default))


class MAPElites(rewrite.RewriteClient, Optimizer):
    """Quality-diversity search: an archive keeping the best candidate of every descriptor cell.

    ``descriptors``: the archive's axes (default: ``length_bins()``). ``iterations``: children
    per step. ``max_examples``: examples each candidate is scored on (the first ones of the
    step's evaluation, so every candidate is judged on the same ones).
    """

    name = "mapelites"
    kinds = frozenset({"text", "code"})

    def __init__(self, params: ParamsArg, *, llm: str | Client | None = None,
                 descriptors: Sequence[Descriptor] | None = None, iterations: int = 2,
                 max_examples: int = 8, temperature: float = 0.9, max_tokens: int = 512,
                 seed: int = 0, plugin_manager: PluginManager | None = None) -> None:
        require_ints(self.name, {"iterations": (iterations, 1), "max_examples": (max_examples, 1)})
        descriptors = list(descriptors) if descriptors is not None else [length_bins()]
        if not descriptors or not all(isinstance(d, Descriptor) and d.labels for d in descriptors):
            raise ValueError(f"optimizer 'mapelites': descriptors expects Descriptor objects with "
                             f"labels, got {descriptors!r}")
        super().__init__(params, {}, plugin_manager=plugin_manager)
        self.llm = llm
        self.descriptors = descriptors
        self.iterations = iterations
        self.max_examples = max_examples
        self.temperature = temperature
        self.max_tokens = max_tokens
        self.rng = random.Random(seed)
        self.elites: dict[str, dict[str, Any]] = {}  # cell key -> {"cell", "values", "score"}
        self.children = 0
        self.inserted = 0

    # -- the archive --------------------------------------------------------------------------
    def cell(self, values: Mapping[str, Any]) -> list[Any] | None:
        """The labels of ``values`` on every descriptor; ``None`` if one is not a known label."""
        labels = []
        for descriptor in self.descriptors:
            label = descriptor.measure(values)
            if label not in descriptor.labels:
                return None
            labels.append(label)
        return labels

    def archive(self) -> dict[tuple[Any, ...], dict[str, Any]]:
        """Filled cells (a tuple of labels) -> ``{"values": ..., "score": ...}``."""
        return {tuple(e["cell"]): {"values": dict(e["values"]), "score": e["score"]}
                for e in self.elites.values()}

    def coverage(self) -> float:
        """The share of the grid's cells that hold an elite."""
        return len(self.elites) / math.prod(len(d.labels) for d in self.descriptors)

    def best(self) -> dict[str, Any]:
        return max(self.elites.values(), key=lambda e: (e["score"], -len(json.dumps(e["values"]))))

    def _offer(self, values: Values, score: float) -> bool:
        cell = self.cell(values)
        if cell is None:
            return False
        key = json.dumps(cell, default=str)
        elite = self.elites.get(key)
        if elite is not None and not score > elite["score"]:
            return False
        self.elites[key] = {"cell": cell, "values": dict(values), "score": score}
        return True

    # -- one step -----------------------------------------------------------------------------
    def propose(self, closure: Callable[[], Any] | None = None) -> dict[Param, Any]:
        feedback = distinct_feedback(self.params)
        if not feedback:
            return {}
        evaluation = require_evaluation(self, closure)
        by_name = {n: p for p, n in self.param_names.items()}
        current = {self.param_names[p]: p.value for p in self.params}
        critiques = [f.describe() for f in feedback if f.text is not None or f.error is not None][:5]
        if all(e["values"] != current for e in self.elites.values()):
            self._offer(current, self._score(evaluation, by_name, current))
        for _ in range(self.iterations):
            if not self.elites:
                break
            parent = self.elites[self.rng.choice(sorted(self.elites))]["values"]
            target = self.rng.choice(self.params)
            name = self.param_names[target]
            style = self.rng.choice(rewrite.MUTATION_STYLES)
            request = mutation_request(target, name, str(parent[name]), critiques, style)
            child = rewrite_value(self.client, target, name, parent, request=request,
                                  max_tokens=self.max_tokens, temperature=self.temperature,
                                  seed=self.rng.randrange(2**31))
            if child is None or self.cell(child) is None:
                continue
            self.children += 1
            self.inserted += self._offer(child, self._score(evaluation, by_name, child))
        if not self.elites:
            return {}
        best = self.best()["values"]
        return {by_name[n]: v for n, v in best.items() if v != current[n]}

    def _score(self, evaluation: Evaluation, by_name: Mapping[str, Param], values: Values) -> float:
        indices = range(min(self.max_examples, evaluation.size))
        return mean(score_values(evaluation, by_name, values, indices))

    # -- state --------------------------------------------------------------------------------
    def extra_state_dict(self) -> dict[str, Any]:
        return {"rng": rng_state(self.rng), "children": self.children, "inserted": self.inserted,
                "coverage": self.coverage(),
                "elites": [{"cell": e["cell"], "values": e["values"], "score": finite_or_none(e["score"])}
                           for _, e in sorted(self.elites.items())]}

    def check_extra_state_dict(self, data: Mapping[str, Any]) -> None:
        names = set(self.param_names.values())
        for elite in data.get("elites", []):
            if set(elite.get("values", {})) != names:
                raise ParamValidationError(f"optimizer 'mapelites': elite in cell {elite.get('cell')!r} "
                                           f"has params {sorted(elite.get('values', {}))}, expected "
                                           f"{sorted(names)}")

    def load_extra_state_dict(self, data: Mapping[str, Any]) -> None:
        set_rng_state(self.rng, data["rng"])
        self.children = int(data["children"])
        self.inserted = int(data["inserted"])
        self.elites = {json.dumps(e["cell"], default=str): {"cell": list(e["cell"]), "values": dict(e["values"]),
                                                            "score": from_json_score(e["score"])}
                       for e in data["elites"]}
