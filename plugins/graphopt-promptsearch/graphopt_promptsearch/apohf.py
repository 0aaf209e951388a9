"""``apohf``: prompt optimization from preference feedback alone (a person or a judge).

As in APOHF (Lin et al., 2024, "Prompt Optimization with Human Feedback"): the only feedback is
which of two outputs is better. Each step adds a candidate (the model rewrites the leader's
value), then asks ``duels`` questions: the pair is chosen dueling-bandit style, the first the
candidate with the highest learnt utility, the second the one with the highest utility plus an
exploration bonus ``exploration / sqrt(1 + comparisons)``; both run on one input and the judge
returns ``go.Feedback(preference=...)``. A Bradley–Terry model (``preference.py``) refit on every
judgement gives the utilities; the step commits the candidate with the highest one.

``step(closure)``: the closure runs the workflow with the values in use and returns its outputs
(a list, one per input, or a single output).
"""

from __future__ import annotations

import math
import random
from typing import Any, Callable, Mapping

from graphopt.errors import ParamValidationError
from graphopt.graph.node import Param
from graphopt.llm.client import Client
from graphopt.optim import rewrite
from graphopt.optim.evaluation import assigned
from graphopt.optim.objective import distinct_feedback
from graphopt.optim.optimizer import Optimizer, ParamsArg, require_ints
from graphopt.plugins import PluginManager

from graphopt_promptsearch.common import (
    Values, mutation_request, rewrite_value, rng_state, set_rng_state,
)
from graphopt_promptsearch.judge import Judge, PairJudged, compare
from graphopt_promptsearch.preference import PreferenceModel
from graphopt_promptsearch.spo import outputs_of


class APOHF(PairJudged, Optimizer):
    """Dueling-bandit search over candidates, learning a preference model from judgements.

    ``judge``: ``"cli"`` (default: a person answers at the terminal), ``"llm"`` (the optimizer's
    model) or a function ``(first, second) -> preference``. ``duels``: questions per step.
    ``max_pool``: candidates kept; once full, steps only ask. ``exploration``: the bonus weight.
    ``swap``: ask each question in both orders (doubles the questions, cancels position bias).
    """

    name = "apohf"
    kinds = frozenset({"text", "code"})
    gated = False  # preferences are its only feedback: the closure returns outputs, not scores

    def __init__(self, params: ParamsArg, *, llm: str | Client | None = None,
                 judge: str | Judge = "cli", requirements: str = "", duels: int = 1,
                 max_pool: int = 16, exploration: float = 1.0, swap: bool = False, l2: float = 0.05,
                 temperature: float = 0.7, max_tokens: int = 512, seed: int = 0,
                 plugin_manager: PluginManager | None = None) -> None:
        require_ints(self.name, {"duels": (duels, 1), "max_pool": (max_pool, 2)})
        if not callable(judge) and judge not in ("llm", "cli"):
            raise ValueError(f"optimizer 'apohf': judge expects 'llm', 'cli' or a function, got {judge!r}")
        if not exploration >= 0:
            raise ValueError(f"optimizer 'apohf': exploration expects a number >= 0, got {exploration!r}")
        super().__init__(params, {}, plugin_manager=plugin_manager)
        self.llm = llm
        self.judge_option = judge
        self.requirements = requirements
        self.duels = duels
        self.max_pool = max_pool
        self.exploration = exploration
        self.swap = swap
        self.temperature = temperature
        self.max_tokens = max_tokens
        self.rng = random.Random(seed)
        self.candidates: list[Values] = []
        self.judgements: list[tuple[int, int, float]] = []
        self.model = PreferenceModel(l2=l2)

    # -- the model ----------------------------------------------------------------------------
    def utilities(self) -> list[float]:
        """Each candidate's learnt utility, in pool order."""
        return [self.model.utility(v, i) for i, v in enumerate(self.candidates)]

    def comparisons(self) -> list[int]:
        """How many judgements each candidate took part in."""
        counts = [0] * len(self.candidates)
        for first, second, _ in self.judgements:
            counts[first] += 1
            counts[second] += 1
        return counts

    def wins(self) -> list[float]:
        """Each candidate's judgements won (a tie counts a half)."""
        won = [0.0] * len(self.candidates)
        for first, second, preference in self.judgements:
            won[first] += preference
            won[second] += 1.0 - preference
        return won

    def leader(self) -> int:
        utilities = self.utilities()
        return max(range(len(self.candidates)), key=lambda i: (utilities[i], -i))

    def choose_pair(self) -> tuple[int, int]:
        """The leader, and the other candidate with the highest optimistic utility."""
        utilities = self.utilities()
        counts = self.comparisons()
        first = self.leader()
        second = max((i for i in range(len(self.candidates)) if i != first),
                     key=lambda i: (utilities[i] + self.exploration / math.sqrt(1 + counts[i]), -i))
        return first, second

    def _refit(self) -> None:
        self.model.fit(dict(enumerate(self.candidates)), self.judgements)

    # -- one step -----------------------------------------------------------------------------
    def propose(self, closure: Callable[[], Any] | None = None) -> dict[Param, Any]:
        if closure is None:
            return {}
        by_name = {n: p for p, n in self.param_names.items()}
        current = {self.param_names[p]: p.value for p in self.params}
        if current not in self.candidates:
            self.candidates.append(current)
            self._refit()
        if len(self.candidates) < self.max_pool:
            self._add_candidate(distinct_feedback(self.params))
        outputs: dict[int, list[Any]] = {}
        for _ in range(self.duels):
            if len(self.candidates) < 2:
                break
            first, second = self.choose_pair()
            for index in (first, second):
                if index not in outputs:
                    values = {by_name[n]: v for n, v in self.candidates[index].items()}
                    with assigned(values):
                        outputs[index] = outputs_of(closure())
            count = min(len(outputs[first]), len(outputs[second]))
            if count == 0:
                break
            item = self.rng.randrange(count)
            preference = compare(self.pair_judge, outputs[first][item], outputs[second][item], swap=self.swap)
            self.judgements.append((first, second, preference))
            self._refit()
        best = self.candidates[self.leader()]
        return {by_name[n]: v for n, v in best.items() if v != current[n]}

    def _add_candidate(self, feedback: list[Any]) -> None:
        base = self.candidates[self.leader()]
        target = self.rng.choice(self.params)
        name = self.param_names[target]
        critiques = [f.describe() for f in feedback if f.text is not None][:5]
        style = self.rng.choice(rewrite.MUTATION_STYLES)
        notes = critiques + ([f"Requirements: {self.requirements}"] if self.requirements else [])
        request = mutation_request(target, name, str(base[name]), notes, style)
        values = rewrite_value(self.client, target, name, base, request=request, max_tokens=self.max_tokens,
                               temperature=self.temperature, seed=self.rng.randrange(2**31))
        if values is not None and values not in self.candidates:
            self.candidates.append(values)
            self._refit()

    # -- state --------------------------------------------------------------------------------
    def extra_state_dict(self) -> dict[str, Any]:
        return {"rng": rng_state(self.rng), "candidates": [dict(c) for c in self.candidates],
                "judgements": [list(j) for j in self.judgements],
                "utilities": self.utilities(), "wins": self.wins()}

    def check_extra_state_dict(self, data: Mapping[str, Any]) -> None:
        names = set(self.param_names.values())
        candidates = data.get("candidates", [])
        for index, values in enumerate(candidates):
            if set(values) != names:
                raise ParamValidationError(f"optimizer 'apohf': candidate {index} has params "
                                           f"{sorted(values)}, expected {sorted(names)}")
        for judgement in data.get("judgements", []):
            first, second, preference = judgement
            if not (0 <= first < len(candidates) and 0 <= second < len(candidates)
                    and 0.0 <= preference <= 1.0):
                raise ParamValidationError(f"optimizer 'apohf': judgement {judgement!r} does not fit "
                                           f"{len(candidates)} candidates")

    def load_extra_state_dict(self, data: Mapping[str, Any]) -> None:
        set_rng_state(self.rng, data["rng"])
        self.candidates = [dict(c) for c in data["candidates"]]
        self.judgements = [(int(a), int(b), float(p)) for a, b, p in data["judgements"]]
        self._refit()
