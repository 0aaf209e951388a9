"""``evolution``: a population of candidate values, LLM mutation and crossover, and racing.

Each step breeds children from the population (crossover of two parents, then a mutation: an LLM
rewrite of one text or code parameter, or a Gaussian step of every number in its space's unit
coordinates with choices switched now and then), races parents and children on growing blocks of
examples (``graphopt.optim.racing``), keeps the best ``population`` and commits the leader.
Fitness is the mean score minus ``length_penalty`` per 100 characters of text and code, so
shorter prompts win ties, as in CAPO.

The numeric step size adapts by Rechenberg's one-fifth success rule: it grows when more than a
fifth of a generation's numeric children beat the best parent and shrinks otherwise. The first
generation adds random draws from the params' spaces to the starting values, to explore.
Driven by a plain closure, every candidate's score is kept in a memo across steps, so survivors
are never run again (``evaluations``, ``distinct_points``).
"""

from __future__ import annotations

import json
import math
import random
from typing import Any, Callable, Mapping

from graphopt.errors import ParamValidationError
from graphopt.graph.kinds import NumberKind, SpaceKind
from graphopt.graph.node import Param
from graphopt.graph.space import Choice
from graphopt.llm.client import Client
from graphopt.optim import racing, rewrite
from graphopt.optim.evaluation import Counted, Evaluation, EvaluationMemo, require_evaluation
from graphopt.optim.objective import distinct_feedback
from graphopt.optim.optimizer import Optimizer, ParamsArg, require_ints
from graphopt.optim.surrogate import Surrogate, make_surrogate
from graphopt.plugins.manager import PluginManager, hookimpl

Values = dict[str, Any]


class Evolution(rewrite.RewriteClient, Counted, Optimizer):
    """Evolutionary search with racing over text, code and hyperparameters.

    ``llm`` (a model string or a client; default ``$GRAPHOPT_MODEL``) writes mutations and
    crossovers of text and code. ``step(closure)`` needs a closure (feedback critiques on the
    params, when there are any, guide text mutations); given a trainer's ``Evaluation`` it races
    example by example. ``step_size`` is the first numeric mutation's standard deviation in unit
    coordinates (a space's whole range is 1); ``memo_size`` bounds the memo of scores (0: none,
    for a closure whose result changes from step to step). ``surrogate`` (``True``, a dict of
    options or a ``Surrogate``): once it knows enough scored candidates, each step breeds twice the
    ``offspring`` and races only the best-predicted half; ``surrogate.stats()`` gives its hit
    rate (children it chose that survived the race).
    """

    name = "evolution"
    kinds = frozenset({"text", "code", "int", "float", "choice"})
    # The race already scores the current values and every candidate with the closure and keeps
    # the best: the base class's acceptance gate would only run the winner again.
    gated = False

    def __init__(self, params: ParamsArg, *, llm: str | Client | None = None, population: int = 4,
                 offspring: int = 4, block_size: int = 4, max_examples: int | None = None,
                 confidence: float = 1.64, length_penalty: float = 0.0, crossover_rate: float = 0.5,
                 temperature: float = 0.7, max_tokens: int = 256, max_critiques: int = 5,
                 step_size: float = 0.2, memo_size: int = 10_000, seed: int = 0,
                 surrogate: bool | Surrogate | Mapping[str, Any] | None = None,
                 plugin_manager: PluginManager | None = None) -> None:
        require_ints(self.name, {"population": (population, 1), "block_size": (block_size, 1),
                                 "offspring": (offspring, 0), "memo_size": (memo_size, 0)})
        if isinstance(step_size, bool) or not isinstance(step_size, (int, float)) \
                or not 0 < step_size <= MAX_STEP:
            raise ValueError(f"optimizer 'evolution': step_size expects a number in (0, {MAX_STEP}], "
                             f"got {step_size!r}")
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
        self.step_size = float(step_size)
        self.memo = EvaluationMemo(memo_size)
        self.generation = 0
        self.population: list[dict[str, Any]] = []
        self.last_race: dict[str, Any] = {}
        self.surrogate = make_surrogate(surrogate, self.name)

    # -- one step -----------------------------------------------------------------------------
    def propose(self, closure: Callable[[], Any] | None = None) -> dict[Param, Any]:
        feedback = distinct_feedback(self.params)
        if not feedback and closure is None:
            return {}
        evaluation = require_evaluation(self, closure, memo=self.memo, names=self.param_names)
        critiques = [f.describe() for f in feedback if f.text is not None or f.error is not None]
        current = self._current()
        members = [m["values"] for m in self.population] or [current, *self._explorers(current)]
        children = self._breed(members, critiques[: self.max_critiques])
        screened = self._screen(children, members, critiques[: self.max_critiques])
        candidates = _unique([current, *members, *(child for child, _ in screened)])
        survivors = self._race(candidates, evaluation)
        self._learn(survivors, screened if screened is not children else [])
        self._adapt_step_size(members, children, survivors)
        self.population = survivors[: self.population_size]
        self.generation += 1
        best = self.population[0]["values"]
        by_name = {n: p for p, n in self.param_names.items()}
        return {by_name[n]: v for n, v in best.items() if v != current[n]}

    def _current(self) -> Values:
        return {self.param_names[p]: p.value for p in self.params}

    def _explorers(self, current: Values) -> list[Values]:
        """``population - 1`` random draws of the spaced params (the rest as they are now)."""
        spaced = [p for p in self.params if isinstance(p.kind, SpaceKind)]
        if not spaced:
            return []
        draws = []
        for _ in range(self.population_size - 1):
            draw = dict(current)
            for target in spaced:
                space = target.kind.space  # type: ignore[attr-defined]
                draw[self.param_names[target]] = space.sample(self.rng)
            draws.append(draw)
        return draws

    def _breed(self, members: list[Values], critiques: list[str]) -> list[tuple[Values, bool]]:
        """Children, each with whether its mutation was a numeric step (for the success rule)."""
        children = []
        for _ in range(self.offspring):
            seed = self.rng.randrange(2**31)
            if len(members) >= 2 and self.rng.random() < self.crossover_rate:
                first, second = self.rng.sample(members, 2)
                child = self._crossover(first, second, seed)
            else:
                child = dict(self.rng.choice(members))
            mutated = self._mutate(child, critiques, seed)
            if mutated is not None:
                children.append(mutated)
        return children

    def _screen(self, children: list[tuple[Values, bool]], members: list[Values],
                critiques: list[str]) -> list[tuple[Values, bool]]:
        """With a surrogate that knows enough, a second brood and the best-predicted
        ``offspring`` of both; else ``children`` as they are."""
        if self.surrogate is None or not self.surrogate.ready or not children:
            return children
        brood = children + self._breed(members, critiques)
        kept = self.surrogate.screen([child for child, _ in brood], keep=self.offspring)
        return [brood[i] for i in sorted(kept)]

    def _learn(self, survivors: list[dict[str, Any]], screened: list[tuple[Values, bool]]) -> None:
        """Teach the surrogate every raced score; count the screened children that survived."""
        if self.surrogate is None:
            return
        for member in survivors:
            if member["score"] is not None:
                self.surrogate.observe(member["values"], member["score"])
        kept = [m["values"] for m in survivors[: self.population_size]]
        for child, _ in screened:
            self.surrogate.record(child in kept)

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

    def _mutate(self, child: Values, critiques: list[str], seed: int) -> tuple[Values, bool] | None:
        """``child`` mutated, and whether numerically; ``None`` when a value does not validate.

        Text and code take turns with the numbers in proportion to their count: one text or
        code param is rewritten, or every number steps and each choice switches with
        probability 1/(numbers and choices).
        """
        texts = [p for p in self.params if p.kind.name in ("text", "code")]
        values = [p for p in self.params if p.kind.name not in ("text", "code")]
        mutated = dict(child)
        numeric = bool(values) and (not texts or self.rng.random() >= len(texts) / len(self.params))
        if numeric:
            for _ in range(_TRIES):
                for target in values:
                    name = self.param_names[target]
                    mutated[name] = _perturb(target, child[name], self.rng, self.step_size, len(values))
                if any(mutated[self.param_names[p]] != child[self.param_names[p]] for p in values):
                    break
        else:
            target = self.rng.choice(texts)
            name = self.param_names[target]
            style = self.rng.choice(rewrite.MUTATION_STYLES)
            prompt = rewrite.mutation_prompt(target, name, child[name], critiques, style)
            mutated[name] = rewrite.ask(self.client, prompt, max_tokens=self.max_tokens,
                                        temperature=self.temperature, seed=seed)
        checked = {}
        for param in self.params:
            name = self.param_names[param]
            try:
                checked[name] = param.validate(mutated[name])
            except ParamValidationError:
                return None
        return checked, numeric

    def _adapt_step_size(self, members: list[Values], children: list[tuple[Values, bool]],
                         ranked: list[dict[str, Any]]) -> None:
        """One-fifth rule over this generation's numeric children against the best parent."""
        scored = {json.dumps(m["values"], sort_keys=True): m["fitness"] for m in ranked}
        parents = [scored[k] for k in (json.dumps(m, sort_keys=True) for m in members) if k in scored]
        trials = [scored.get(json.dumps(child, sort_keys=True)) for child, numeric in children if numeric]
        trials = [t for t in trials if t is not None]
        if not parents or not trials:
            return
        best = max(parents)
        rate = sum(t > best for t in trials) / len(trials)
        self.step_size = min(MAX_STEP, max(MIN_STEP, self.step_size * math.exp((rate - 0.2) / _DAMPING)))

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
                "population": population, "last_race": self.last_race, "step_size": self.step_size,
                "memo": self.memo.state_dict(),
                "surrogate": self.surrogate.state_dict() if self.surrogate is not None else None}

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
        self.step_size = float(data.get("step_size", self.step_size))
        if "memo" in data:
            self.memo.load_state_dict(data["memo"])
        if self.surrogate is not None and data.get("surrogate") is not None:
            self.surrogate.load_state_dict(data["surrogate"])


MIN_STEP = 1e-4
MAX_STEP = 0.5
_DAMPING = 1.0  # one-fifth rule: at a success rate r the step size changes by exp(r - 0.2)
_TRIES = 4  # redraws when a numeric mutation rounds back to the parent


def _perturb(target: Param, value: Any, rng: random.Random, step: float, count: int) -> Any:
    """A nearby value: numbers move by a Gaussian of ``step`` in unit coordinates (unbounded
    ones relatively); a choice switches to another option with probability ``1 / count``."""
    kind = target.kind
    if isinstance(kind, SpaceKind):
        space = kind.space
        if isinstance(space, Choice):
            others = [o for o in space.options if o != value]
            return rng.choice(others) if others and rng.random() < 1 / count else value
        unit = _reflect(space.to_unit(value) + rng.gauss(0.0, step))  # type: ignore[attr-defined]
        return space.from_unit(unit)  # type: ignore[attr-defined]
    if isinstance(kind, NumberKind) and kind.number_type is int:
        return value + round(rng.gauss(0.0, max(1.0, abs(value) * step)))
    return value * math.exp(rng.gauss(0.0, step)) if value else rng.gauss(0.0, 1.0)


def _reflect(unit: float) -> float:
    """``unit`` folded back into [0, 1], so steps past a bound do not pile up on it."""
    unit = abs(unit) % 2.0
    return 2.0 - unit if unit > 1.0 else unit


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
