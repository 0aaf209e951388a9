"""``evolution``: a population of candidate values, LLM mutation and crossover, and racing.

Each step breeds children from the population (crossover of two parents, then a mutation of one
parameter: an LLM rewrite for text and code, a perturbation for numbers and choices), races
parents and children on growing blocks of examples (``graphopt.optim.racing``), keeps the best
``population`` and commits the leader. Fitness is the mean score minus ``length_penalty`` per 100
characters of text and code, so shorter prompts win ties, as in CAPO.
"""

from __future__ import annotations

import json
import math
import random
from typing import Any, Callable, Mapping

from graphopt.errors import OptimizerStepError, ParamValidationError
from graphopt.graph.kinds import NumberKind, SpaceKind
from graphopt.graph.node import Param
from graphopt.graph.space import Choice
from graphopt.llm.client import Client
from graphopt.optim import racing, rewrite
from graphopt.optim.evaluation import Evaluation, as_evaluation
from graphopt.optim.objective import distinct_feedback
from graphopt.optim.optimizer import Optimizer, ParamsArg, require_ints
from graphopt.plugins.manager import PluginManager, hookimpl

Values = dict[str, Any]


class Evolution(Optimizer):
    """Evolutionary search with racing over text, code and hyperparameters.

    ``llm`` (a model string or a client; default ``$GRAPHOPT_MODEL``) writes mutations and
    crossovers of text and code. ``step(closure)`` needs feedback on the params (the critiques
    guide mutations) and a closure; given a trainer's ``Evaluation`` it races example by example.
    """

    name = "evolution"
    kinds = frozenset({"text", "code", "int", "float", "choice"})

    def __init__(self, params: ParamsArg, *, llm: str | Client | None = None, population: int = 4,
                 offspring: int = 4, block_size: int = 4, max_examples: int | None = None,
                 confidence: float = 1.64, length_penalty: float = 0.0, crossover_rate: float = 0.5,
                 temperature: float = 0.7, max_tokens: int = 256, max_critiques: int = 5,
                 seed: int = 0, plugin_manager: PluginManager | None = None) -> None:
        require_ints(self.name, {"population": (population, 1), "block_size": (block_size, 1),
                                 "offspring": (offspring, 0)})
        super().__init__(params, {}, plugin_manager=plugin_manager)
        self.llm = llm
        self.population_size = population
        self.offspring = offspring
        self.block_size = block_size
        self.max_examples = max_examples
        self.confidence = confidence
        self.length_penalty = length_penalty
        self.crossover_rate = crossover_rate
        self.temperature = temperature
        self.max_tokens = max_tokens
        self.max_critiques = max_critiques
        self.rng = random.Random(seed)
        self.generation = 0
        self.population: list[dict[str, Any]] = []
        self.last_race: dict[str, Any] = {}
        self._client: Client | None = None

    @property
    def client(self) -> Client:
        """The LLM client writing edits, made on first use."""
        if self._client is None:
            self._client = rewrite.resolve_client(self.llm, tag=self.name)
        return self._client

    # -- one step -----------------------------------------------------------------------------
    def propose(self, closure: Callable[[], Any] | None = None) -> dict[Param, Any]:
        feedback = distinct_feedback(self.params)
        if not feedback:
            return {}
        evaluation = as_evaluation(closure)
        if evaluation is None:
            raise OptimizerStepError("optimizer 'evolution' needs step(closure): a function that runs "
                                     "the workflow and returns its score", optimizer=self)
        critiques = [f.describe() for f in feedback if f.text is not None or f.error is not None]
        current = self._current()
        members = [m["values"] for m in self.population] or [current]
        candidates = _unique([current, *members, *self._breed(members, critiques[: self.max_critiques])])
        survivors = self._race(candidates, evaluation)
        self.population = survivors[: self.population_size]
        self.generation += 1
        best = self.population[0]["values"]
        by_name = {n: p for p, n in self.param_names.items()}
        return {by_name[n]: v for n, v in best.items() if v != current[n]}

    def _current(self) -> Values:
        return {self.param_names[p]: p.value for p in self.params}

    def _breed(self, members: list[Values], critiques: list[str]) -> list[Values]:
        children = []
        for _ in range(self.offspring):
            seed = self.rng.randrange(2**31)
            if len(members) >= 2 and self.rng.random() < self.crossover_rate:
                first, second = self.rng.sample(members, 2)
                child = self._crossover(first, second, seed)
            else:
                child = dict(self.rng.choice(members))
            child = self._mutate(child, critiques, seed)
            if child is not None:
                children.append(child)
        return children

    def _crossover(self, first: Values, second: Values, seed: int) -> Values:
        child: Values = {}
        for target in self.params:
            name = self.param_names[target]
            a, b = first[name], second[name]
            if a == b:
                child[name] = a
            elif target.kind.name in ("text", "code"):
                prompt = rewrite.crossover_prompt(target, name, a, b)
                child[name] = rewrite.ask(self.client, prompt, max_tokens=self.max_tokens,
                                          temperature=self.temperature, seed=seed)
            else:
                child[name] = a if self.rng.random() < 0.5 else b
        return child

    def _mutate(self, child: Values, critiques: list[str], seed: int) -> Values | None:
        """``child`` with one parameter changed; ``None`` when the new value does not validate."""
        target = self.rng.choice(self.params)
        name = self.param_names[target]
        if target.kind.name in ("text", "code"):
            style = self.rng.choice(rewrite.MUTATION_STYLES)
            prompt = rewrite.mutation_prompt(target, name, child[name], critiques, style)
            value = rewrite.ask(self.client, prompt, max_tokens=self.max_tokens,
                                temperature=self.temperature, seed=seed)
        else:
            value = _perturb(target, child[name], self.rng)
        checked = dict(child)
        for candidate, param in ((value, target), *((child[self.param_names[p]], p) for p in self.params
                                                    if p is not target)):
            try:
                checked[self.param_names[param]] = param.validate(candidate)
            except ParamValidationError:
                return None
        return checked

    def _race(self, candidates: list[Values], evaluation: Evaluation) -> list[dict[str, Any]]:
        by_name = {n: p for p, n in self.param_names.items()}
        examples = evaluation.size if self.max_examples is None else min(self.max_examples, evaluation.size)

        def score_block(index: int, indices: Any) -> list[float]:
            values = {by_name[n]: v for n, v in candidates[index].items()}
            return evaluation.scores(values, indices)

        scores, alive = racing.race(len(candidates), score_block, examples=examples,
                                    block_size=self.block_size, keep=self.population_size,
                                    z=self.confidence)
        dropped = [i for i in range(len(candidates)) if i not in alive]
        ranked = sorted(alive, key=lambda i: (-self._fitness(candidates[i], scores[i]), i))
        ranked += sorted(dropped, key=lambda i: (-self._fitness(candidates[i], scores[i]), i))
        self.last_race = {"candidates": len(candidates), "survivors": len(alive),
                          "evaluations": sum(len(s) for s in scores.values())}
        return [{"values": candidates[i], "score": racing.mean(scores[i]) if scores[i] else None,
                 "fitness": self._fitness(candidates[i], scores[i])} for i in ranked]

    def _fitness(self, values: Values, scores: list[float]) -> float:
        score = racing.mean(scores)
        if self.length_penalty:
            chars = sum(len(v) for v in values.values() if isinstance(v, str))
            score -= self.length_penalty * chars / 100
        return score

    # -- state --------------------------------------------------------------------------------
    def extra_state_dict(self) -> dict[str, Any]:
        version, internal, gauss = self.rng.getstate()
        population = [{**m, "fitness": _finite(m.get("fitness")), "score": _finite(m.get("score"))}
                      for m in self.population]
        return {"rng": [version, list(internal), gauss], "generation": self.generation,
                "population": population, "last_race": self.last_race}

    def load_extra_state_dict(self, data: Mapping[str, Any]) -> None:
        version, internal, gauss = data["rng"]
        names = set(self.param_names.values())
        for member in data["population"]:
            if set(member["values"]) != names:
                raise ParamValidationError(f"optimizer 'evolution': population member has params "
                                           f"{sorted(member['values'])}, expected {sorted(names)}")
        self.rng.setstate((version, tuple(internal), gauss))
        self.generation = int(data["generation"])
        self.population = [dict(m) for m in data["population"]]
        self.last_race = dict(data.get("last_race", {}))


def _perturb(target: Param, value: Any, rng: random.Random) -> Any:
    """A nearby value of a number or choice parameter."""
    kind = target.kind
    if isinstance(kind, SpaceKind):
        space = kind.space
        if isinstance(space, Choice):
            others = [o for o in space.options if o != value]
            return rng.choice(others) if others else value
        unit = space.to_unit(value) + rng.gauss(0.0, 0.25)  # type: ignore[attr-defined]
        return space.from_unit(unit)  # type: ignore[attr-defined]
    if isinstance(kind, NumberKind) and kind.number_type is int:
        return value + rng.choice((-1, 1)) * max(1, round(abs(value) * 0.2))
    return value * math.exp(rng.gauss(0.0, 0.3)) if value else rng.gauss(0.0, 1.0)


def _unique(candidates: list[Values]) -> list[Values]:
    seen: set[str] = set()
    unique = []
    for values in candidates:
        key = json.dumps(values, sort_keys=True)
        if key not in seen:
            seen.add(key)
            unique.append(values)
    return unique


def _finite(number: float | None) -> float | None:
    return number if number is not None and math.isfinite(number) else None


@hookimpl
def graphopt_optimizers() -> list[type]:
    return [Evolution]
