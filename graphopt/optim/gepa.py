"""``gepa``: reflective prompt evolution over a per-example Pareto frontier, with merges.

As in GEPA (Agrawal et al., 2025, "GEPA: Reflective Prompt Evolution Can Outperform Reinforcement
Learning"): a pool of candidates (values for every parameter), each scored on every validation
example. An iteration picks a parent from the per-example Pareto frontier (or the best, or
epsilon-greedily), asks the model to rewrite one parameter of it (round robin per candidate) from
the traced runs and their feedback (rendered by ``graph/render.py`` within a character budget)
and the parent's scores on a minibatch, keeps the child only if it beats the parent on that
minibatch, and then scores it on the rest of the validation set. After a new candidate is found,
a merge combines two frontier candidates that descend from a common ancestor, parameter by
parameter (the one that changed from the ancestor wins), under the same kind of gate. Each step
commits the candidate with the best mean validation score. Every example is scored once per
candidate; ``max_evaluations`` bounds the total.
"""

from __future__ import annotations

import json
import math
import random
from typing import Any, Callable, Mapping, Sequence

from graphopt.errors import OptimizerStepError, ParamValidationError
from graphopt.graph.node import Param
from graphopt.graph.render import CHARS_PER_TOKEN, show, truncate
from graphopt.llm.client import Client
from graphopt.optim import rewrite
from graphopt.optim.echoes import Scaffold
from graphopt.optim.evaluation import Evaluation, require_evaluation
from graphopt.optim.objective import distinct_feedback
from graphopt.optim.optimizer import Optimizer, ParamsArg, require_ints
from graphopt.optim.prompt import Run, aggregate_feedback, collect_runs, render_runs, section
from graphopt.optim.surrogate import Surrogate, make_surrogate
from graphopt.plugins.manager import PluginManager, hookimpl

Values = dict[str, Any]
SELECTIONS = ("pareto", "current_best", "epsilon_greedy")


class Candidate:
    """One pool member: its values, lineage, and one score per validation example."""

    __slots__ = ("id", "values", "parents", "origin", "step", "scores", "next_param")

    def __init__(self, id: int, values: Values, parents: Sequence[int], origin: str, step: int,
                 scores: list[float], next_param: int = 0) -> None:
        self.id = id
        self.values = values
        self.parents = list(parents)
        self.origin = origin
        self.step = step
        self.scores = scores
        self.next_param = next_param

    @property
    def mean(self) -> float:
        return sum(self.scores) / len(self.scores) if self.scores else -math.inf

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "values": self.values, "parents": self.parents, "origin": self.origin,
                "step": self.step, "scores": [s if math.isfinite(s) else None for s in self.scores],
                "next_param": self.next_param}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Candidate:
        return cls(int(data["id"]), dict(data["values"]), [int(p) for p in data["parents"]],
                   str(data["origin"]), int(data["step"]),
                   [-math.inf if s is None else float(s) for s in data["scores"]],
                   int(data.get("next_param", 0)))


# -- the pure parts: frontier, parent choice, merge ----------------------------------------------
def pareto_frontier(scores: Sequence[Sequence[float]]) -> dict[int, int]:
    """Candidates on the per-example Pareto frontier, each with how many examples it leads.

    A candidate is on an example's front when no other scores higher there. Candidates whose
    every front also holds another surviving candidate are dominated and removed (lowest mean
    first), as in GEPA; the count is over the fronts that remain.
    """
    fronts: list[set[int]] = []
    for example in range(len(scores[0]) if scores else 0):
        column = [row[example] for row in scores]
        best = max(column)
        if math.isfinite(best):
            fronts.append({i for i, s in enumerate(column) if s == best})
    alive = set().union(*fronts) if fronts else set()
    means = {i: sum(scores[i]) / len(scores[i]) for i in alive}
    changed = True
    while changed:
        changed = False
        for candidate in sorted(alive, key=lambda i: (means[i], -i)):
            others = alive - {candidate}
            if others and all(front & others for front in fronts if candidate in front):
                alive.discard(candidate)
                changed = True
                break
    counts = {i: sum(1 for front in fronts if i in front) for i in sorted(alive)}
    return counts


def select_parent(pool: Sequence[Candidate], strategy: str, rng: random.Random,
                  epsilon: float = 0.1) -> Candidate:
    """A parent: ``pareto`` samples the frontier weighted by examples led; ``current_best``
    takes the best mean; ``epsilon_greedy`` a random member with probability ``epsilon``."""
    best = max(pool, key=lambda c: (c.mean, -c.id))
    if strategy == "current_best":
        return best
    if strategy == "epsilon_greedy":
        return rng.choice(list(pool)) if rng.random() < epsilon else best
    counts = pareto_frontier([c.scores for c in pool])
    if not counts:
        return best
    indices = list(counts)
    chosen = rng.choices(indices, weights=[counts[i] for i in indices])[0]
    return pool[chosen]


def merge_values(ancestor: Values, first: Values, second: Values, *, prefer_first: bool) -> Values:
    """Each parameter from the descendant that changed it from ``ancestor``; when both did,
    from ``first`` if ``prefer_first`` else from ``second``."""
    merged: Values = {}
    for name, base in ancestor.items():
        a, b = first[name], second[name]
        if a == b or b == base:
            merged[name] = a
        elif a == base:
            merged[name] = b
        else:
            merged[name] = a if prefer_first else b
    return merged


class GEPA(rewrite.RewriteClient, Optimizer):
    """Reflective evolution of text and code over a Pareto frontier of per-example scores.

    ``step(closure)`` needs feedback on the params (their traced runs guide the rewrite) and a
    closure; a trainer's ``Evaluation`` gives per-example scores on its validation pool (capped at
    ``max_val`` examples), a plain closure is one example. ``iterations``: proposals per step.
    ``minibatch_size``: examples the gate compares parent and child on. ``selection``:
    ``"pareto"``, ``"current_best"`` or ``"epsilon_greedy"`` (with ``epsilon``). ``merge``:
    try merges after new candidates (at most ``max_merges``). ``max_evaluations``: the total
    number of (candidate, example) scores this optimizer may spend. ``surrogate``: ``True``, a
    dict of options or a ``Surrogate``; each rewrite then samples ``proposals`` values and only the
    best-predicted one is evaluated.
    """

    name = "gepa"
    kinds = frozenset({"text", "code"})

    def __init__(self, params: ParamsArg, *, llm: str | Client | None = None,
                 selection: str = "pareto", epsilon: float = 0.1, iterations: int = 1,
                 minibatch_size: int = 3, max_val: int | None = None, merge: bool = True,
                 max_merges: int = 5, max_evaluations: int | None = None,
                 surrogate: bool | Surrogate | Mapping[str, Any] | None = None, proposals: int | None = None,
                 max_prompt_tokens: int = 3_000, max_value_chars: int = 400, max_runs: int = 3,
                 temperature: float = 0.7, max_tokens: int = 512, objective: str = "",
                 seed: int = 0, plugin_manager: PluginManager | None = None) -> None:
        if selection not in SELECTIONS:
            raise ValueError(f"optimizer 'gepa': selection expects one of {', '.join(SELECTIONS)}, "
                             f"got {selection!r}")
        if not 0.0 <= epsilon <= 1.0:
            raise ValueError(f"optimizer 'gepa': epsilon expects a number in [0, 1], got {epsilon!r}")
        surrogate_model = make_surrogate(surrogate, self.name)
        proposals = (4 if surrogate_model is not None else 1) if proposals is None else proposals
        require_ints(self.name, {"iterations": (iterations, 1), "minibatch_size": (minibatch_size, 1),
                                 "max_merges": (max_merges, 0), "proposals": (proposals, 1),
                                 "max_prompt_tokens": (max_prompt_tokens, 200),
                                 "max_value_chars": (max_value_chars, 20), "max_runs": (max_runs, 1)})
        if max_val is not None:
            require_ints(self.name, {"max_val": (max_val, 1)})
        if max_evaluations is not None:
            require_ints(self.name, {"max_evaluations": (max_evaluations, 1)})
        super().__init__(params, {}, plugin_manager=plugin_manager)
        self.llm = llm
        self.selection = selection
        self.epsilon = epsilon
        self.iterations = iterations
        self.minibatch_size = minibatch_size
        self.max_val = max_val
        self.merge = merge
        self.max_merges = max_merges
        self.max_evaluations = max_evaluations
        self.surrogate = surrogate_model
        self.proposals = proposals
        self.max_prompt_tokens = max_prompt_tokens
        self.max_value_chars = max_value_chars
        self.max_runs = max_runs
        self.temperature = temperature
        self.max_tokens = max_tokens
        self.objective = objective
        self.rng = random.Random(seed)
        self.pool: list[Candidate] = []
        self.val_size = 0
        self.evaluations = 0
        self.steps = 0
        self.merges_due = 0
        self.merges_done = 0
        self.tried_merges: list[list[int]] = []
        self.last_step: dict[str, Any] = {}

    # -- one step -----------------------------------------------------------------------------
    def propose(self, closure: Callable[[], Any] | None = None) -> dict[Param, Any]:
        if not distinct_feedback(self.params):
            return {}
        evaluation = require_evaluation(self, closure)
        runs = collect_runs(self.params)
        report: dict[str, Any] = {"iterations": 0, "accepted": [], "rejected": 0, "merges": 0,
                                  "refused": [], "reason": None}
        self.last_step = report
        spent = self.evaluations
        self._sync(evaluation)
        for _ in range(self.iterations):
            if not self._affordable(min(self.minibatch_size, self.val_size) + self.val_size):
                report["reason"] = f"evaluation budget spent ({self.evaluations}/{self.max_evaluations})"
                break
            report["iterations"] += 1
            child = self._merge(evaluation) if self._merge_due() else None
            if child is not None:
                report["merges"] += 1
            else:
                child = self._mutate(evaluation, runs)
            if child is None:
                report["rejected"] += 1
            else:
                report["accepted"].append(child.id)
        self.steps += 1
        report["evaluations"] = self.evaluations - spent
        best = self.best()
        report["best"] = best.id
        by_name = {n: p for p, n in self.param_names.items()}
        return {by_name[n]: v for n, v in best.values.items() if v != by_name[n].value}

    def _current(self) -> Values:
        return {self.param_names[p]: p.value for p in self.params}

    def _sync(self, evaluation: Evaluation) -> None:
        """Fix the validation set's size (rescoring the pool if it changed) and make sure the
        current values are a pool member."""
        size = evaluation.size if self.max_val is None else min(self.max_val, evaluation.size)
        if size != self.val_size:
            self.val_size = size
            for candidate in self.pool:
                candidate.scores = self._score(candidate.values, range(size), evaluation)
        current = self._current()
        if self._find(current) is None:
            parents = [] if not self.pool else [self.best().id]
            self._add(current, parents, "seed" if not self.pool else "current",
                      self._score(current, range(size), evaluation))

    def _find(self, values: Values) -> Candidate | None:
        key = _key(values)
        return next((c for c in self.pool if _key(c.values) == key), None)

    def _add(self, values: Values, parents: Sequence[int], origin: str, scores: list[float]) -> Candidate:
        candidate = Candidate(len(self.pool), dict(values), parents, origin, self.steps, scores)
        self.pool.append(candidate)
        if self.surrogate is not None:
            self.surrogate.observe(values, candidate.mean)
        return candidate

    def _affordable(self, count: int) -> bool:
        return self.max_evaluations is None or self.evaluations + count <= self.max_evaluations

    def _score(self, values: Values, indices: Sequence[int] | range, evaluation: Evaluation) -> list[float]:
        indices = list(indices)
        if not indices:
            return []
        by_name = {n: p for p, n in self.param_names.items()}
        scores = evaluation.scores({by_name[n]: v for n, v in values.items()}, indices)
        self.evaluations += len(indices)
        return [float(s) if isinstance(s, (int, float)) and math.isfinite(s) else -math.inf
                for s in scores]

    def _minibatch(self) -> list[int]:
        return sorted(self.rng.sample(range(self.val_size), min(self.minibatch_size, self.val_size)))

    def _complete(self, values: Values, known: Mapping[int, float], evaluation: Evaluation) -> list[float]:
        """Scores on every validation example, reusing the ``known`` ones."""
        missing = [i for i in range(self.val_size) if i not in known]
        fresh = dict(zip(missing, self._score(values, missing, evaluation)))
        return [known[i] if i in known else fresh[i] for i in range(self.val_size)]

    # -- reflective mutation ------------------------------------------------------------------
    def _mutate(self, evaluation: Evaluation, runs: Sequence[Run]) -> Candidate | None:
        parent = select_parent(self.pool, self.selection, self.rng, self.epsilon)
        target = self.params[parent.next_param % len(self.params)]
        parent.next_param += 1
        name = self.param_names[target]
        minibatch = self._minibatch()
        prompt = self.prompt(parent, target, runs, minibatch)
        children = []
        for _ in range(self.proposals):
            seed = self.rng.randrange(2**31)
            child = self._rewrite(parent.values, target, name, prompt, seed)
            if child is not None and self._find(child) is None and child not in children:
                children.append(child)
        screened = self.surrogate is not None and self.surrogate.ready and len(children) > 1
        if screened:
            children = [children[i] for i in self.surrogate.screen(children, keep=1)]  # type: ignore[union-attr]
        for child in children[:1]:
            scores = dict(zip(minibatch, self._score(child, minibatch, evaluation)))
            passed = sum(scores.values()) > sum(parent.scores[i] for i in minibatch)
            if screened:
                self.surrogate.record(passed)  # type: ignore[union-attr]
            if not passed:
                if self.surrogate is not None:
                    self.surrogate.observe(child, sum(scores.values()) / len(scores))
                return None
            self.merges_due += 1
            return self._add(child, [parent.id], f"mutation:{name}", self._complete(child, scores, evaluation))
        return None

    def _rewrite(self, values: Values, target: Param, name: str, prompt: str, seed: int) -> Values | None:
        value = rewrite.ask(self.client, prompt, max_tokens=self.max_tokens,
                            temperature=self.temperature, seed=seed)
        # The objective, values, traces and feedback are the user's words: only the request's own
        # sentences and titles are scaffolding.
        scaffold = Scaffold.of([{"role": "user", "content": prompt}], self.param_names.values(),
                               instructions=self._instructions(target, name))
        reason = scaffold.echo(value, values[name])
        if reason is not None:
            self.last_step["refused"].append(f"{name}: {reason}")
            return None
        try:
            checked = target.validate(value)
        except ParamValidationError:
            return None
        return {**values, name: checked}

    def prompt(self, parent: Candidate, target: Param, runs: Sequence[Run], minibatch: Sequence[int]) -> str:
        """The reflective request: rewrite ``target``'s value in ``parent`` from runs and scores."""
        name = self.param_names[target]
        budget = self.max_prompt_tokens * CHARS_PER_TOKEN
        fence = "python" if target.kind.name == "code" else "text"
        current = truncate(str(parent.values[name]), budget // 4)
        intro, _, ask_for = self._instructions(target, name)
        head = f"{intro}\nCurrent value:\n```{fence}\n{current}\n```"
        others = "\n".join(f"{n} = {show(v, self.max_value_chars // 2)}"
                           for n, v in parent.values.items() if n != name)
        scores = ", ".join(f"example {i}: {show(parent.scores[i], 12)}" for i in minibatch)
        parts = [head]
        if self.objective:
            parts.append(section("Objective", truncate(self.objective, budget // 10)))
        if others:
            parts.append(section("Other parameters (kept as they are)", truncate(others, budget // 8)))
        parts.append(section("Scores of this candidate on a minibatch (higher is better)",
                             truncate(scores, budget // 10)))
        feedback = section("Feedback on the runs", aggregate_feedback(
            [r.feedback for r in runs], max_chars=max(budget // 8, 100)))
        room = budget - sum(len(p) + 2 for p in (*parts, feedback, ask_for))
        traces = render_runs(runs, self.param_names, max_chars=room, max_runs=self.max_runs,
                             max_value_chars=self.max_value_chars)
        if traces:
            parts.append(section("Traced runs (with the values in use when they ran)", traces))
        return "\n\n".join([*parts, feedback, ask_for])

    def _instructions(self, target: Param, name: str) -> list[str]:
        """The request's own sentences: its opening, the label of the value, its ask."""
        fence = "python" if target.kind.name == "code" else "text"
        return [f"You improve one {rewrite.describe_value(target, name)} of an AI workflow, "
                f"learning from how the workflow ran.", "Current value:",
                f"Write an improved value that fixes the failures above while keeping what works. "
                f"Reply with only the new value inside one ```{fence} block."]

    # -- merge --------------------------------------------------------------------------------
    def _merge_due(self) -> bool:
        return self.merge and self.merges_due > 0 and self.merges_done < self.max_merges

    def _ancestors(self, candidate: Candidate) -> set[int]:
        seen: set[int] = set()
        stack = list(candidate.parents)
        while stack:
            parent = stack.pop()
            if parent not in seen:
                seen.add(parent)
                stack.extend(self.pool[parent].parents)
        return seen

    def merge_pairs(self) -> list[tuple[int, int, int]]:
        """``(first, second, ancestor)`` ids of frontier candidates a merge could combine: neither
        descends from the other, they share an ancestor that scores no better than either, and
        each changed some parameter the other did not."""
        counts = pareto_frontier([c.scores for c in self.pool])
        frontier = sorted(counts)
        tried = {tuple(t) for t in self.tried_merges}
        pairs = []
        for x, i in enumerate(frontier):
            for j in frontier[x + 1:]:
                first, second = self.pool[i], self.pool[j]
                up_i, up_j = self._ancestors(first), self._ancestors(second)
                if i in up_j or j in up_i:
                    continue
                for a in sorted(up_i & up_j, reverse=True):
                    base = self.pool[a]
                    if (i, j, a) in tried or base.mean > min(first.mean, second.mean):
                        continue
                    own_i = any(first.values[n] != base.values[n] == second.values[n] for n in base.values)
                    own_j = any(second.values[n] != base.values[n] == first.values[n] for n in base.values)
                    if own_i and own_j:
                        pairs.append((i, j, a))
                        break
        return pairs

    def _merge(self, evaluation: Evaluation) -> Candidate | None:
        pairs = self.merge_pairs()
        self.merges_due -= 1
        if not pairs:
            return None
        i, j, a = pairs[self.rng.randrange(len(pairs))]
        self.tried_merges.append([i, j, a])
        self.merges_done += 1
        first, second, base = self.pool[i], self.pool[j], self.pool[a]
        merged = merge_values(base.values, first.values, second.values,
                              prefer_first=first.mean >= second.mean)
        if self._find(merged) is not None:
            return None
        # Judge the merge where the two disagree most, as GEPA subsamples the examples the
        # parents differ on.
        differing = [k for k in range(self.val_size) if first.scores[k] != second.scores[k]]
        rest = [k for k in range(self.val_size) if k not in differing]
        self.rng.shuffle(differing)
        self.rng.shuffle(rest)
        sample = sorted((differing + rest)[:self.minibatch_size])
        scores = dict(zip(sample, self._score(merged, sample, evaluation)))
        total = sum(scores.values())
        if total < max(sum(first.scores[k] for k in sample), sum(second.scores[k] for k in sample)):
            return None
        return self._add(merged, [i, j], "merge", self._complete(merged, scores, evaluation))

    # -- results ------------------------------------------------------------------------------
    def best(self) -> Candidate:
        """The pool member with the best mean validation score (the earliest among equals)."""
        if not self.pool:
            raise OptimizerStepError("optimizer 'gepa' has no candidates yet: call step(closure) first",
                                     optimizer=self)
        return max(self.pool, key=lambda c: (c.mean, -c.id))

    def frontier(self) -> dict[int, int]:
        """Pareto frontier: candidate id -> number of validation examples it leads."""
        return pareto_frontier([c.scores for c in self.pool]) if self.pool else {}

    def lineage(self) -> list[dict[str, Any]]:
        """Every candidate with its parents, origin, step, mean score and frontier share, for
        reports: a tree from the seed to the best."""
        frontier = self.frontier()
        best = self.best().id if self.pool else None
        return [{"id": c.id, "parents": list(c.parents), "origin": c.origin, "step": c.step,
                 "score": c.mean if math.isfinite(c.mean) else None,
                 "leads": frontier.get(c.id, 0), "best": c.id == best,
                 "values": dict(c.values)} for c in self.pool]

    # -- state --------------------------------------------------------------------------------
    def extra_state_dict(self) -> dict[str, Any]:
        version, internal, gauss = self.rng.getstate()
        return {"rng": [version, list(internal), gauss], "val_size": self.val_size,
                "evaluations": self.evaluations, "steps": self.steps, "merges_due": self.merges_due,
                "merges_done": self.merges_done, "tried_merges": [list(t) for t in self.tried_merges],
                "pool": [c.to_json() for c in self.pool],
                "frontier": {str(k): v for k, v in self.frontier().items()},
                "surrogate": self.surrogate.state_dict() if self.surrogate is not None else None}

    def check_extra_state_dict(self, data: Mapping[str, Any]) -> None:
        names = set(self.param_names.values())
        for member in data.get("pool", []):
            if set(member.get("values", {})) != names:
                raise ParamValidationError(f"optimizer 'gepa': pool member {member.get('id')!r} has "
                                           f"params {sorted(member.get('values', {}))}, expected "
                                           f"{sorted(names)}")
            if len(member.get("scores", [])) != data.get("val_size"):
                raise ParamValidationError(f"optimizer 'gepa': pool member {member.get('id')!r} has "
                                           f"{len(member.get('scores', []))} scores, expected "
                                           f"{data.get('val_size')}")
        if data.get("surrogate") is not None and self.surrogate is None:
            raise ParamValidationError("optimizer 'gepa': state dict holds a surrogate, this optimizer "
                                       "has none (pass surrogate=True)")

    def load_extra_state_dict(self, data: Mapping[str, Any]) -> None:
        version, internal, gauss = data["rng"]
        self.rng.setstate((version, tuple(internal), gauss))
        self.val_size = int(data["val_size"])
        self.evaluations = int(data["evaluations"])
        self.steps = int(data["steps"])
        self.merges_due = int(data["merges_due"])
        self.merges_done = int(data["merges_done"])
        self.tried_merges = [list(t) for t in data["tried_merges"]]
        self.pool = [Candidate.from_json(c) for c in data["pool"]]
        if self.surrogate is not None and data.get("surrogate") is not None:
            self.surrogate.load_state_dict(data["surrogate"])


def _key(values: Values) -> str:
    return json.dumps(values, sort_keys=True, default=str)


@hookimpl
def graphopt_optimizers() -> list[type]:
    return [GEPA]
