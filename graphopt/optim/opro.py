"""``opro``: optimization by prompting with a scored history of solutions.

Each step scores the current values by the mean feedback score (losses count as negated
scores), adds them to the history, and shows the model the best ``top_k`` solutions sorted by
score, best last, asking for new values that score higher. Only scores are used, so text, code
and hyperparameters are all searched the same way.
"""

from __future__ import annotations

import math
from typing import Any, Callable, Mapping

from graphopt.graph.render import CHARS_PER_TOKEN, render_variables, show, show_block, truncate
from graphopt.llm.client import Client
from graphopt.llm.protocol import Message
from graphopt.llm.structured import json_instruction
from graphopt.graph.node import Param
from graphopt.optim.echoes import Scaffold
from graphopt.optim.llm_optimizer import LLMOptimizer, Proposal
from graphopt.optim.objective import distinct_feedback, mean_score
from graphopt.optim.optimizer import ParamsArg, Rejection, require_ints
from graphopt.optim.prompt import section
from graphopt.optim.suggest import ask, reply_schema
from graphopt.plugins.manager import PluginManager, hookimpl

SYSTEM = (
    "You search for the values of a program's variables that earn the highest score. You see "
    "earlier solutions with their scores, sorted from lower to higher. Propose new values that "
    "differ from every solution shown and should score higher than all of them. Code must stay "
    "a complete function with the same name and parameters; numbers must stay within their "
    "range; choices must be one of their options."
)


ASK_FOR = "Propose new values that differ from every solution above and score higher."
DEFAULT_OBJECTIVE = "Maximize the score."


class OPRO(LLMOptimizer):
    """Scored history in, new values out; one call per step.

    ``top_k``: how many of the best solutions the meta-prompt shows. ``max_history``: how many
    solutions are kept (the best ones, when over). ``max_prompt_tokens`` bounds the meta-prompt:
    the lowest-scored solutions shown are dropped first. The history keeps one entry per
    solution, and a suggestion repeating one already tried (or echoing the prompt) is refused
    before evaluation. All or none by default; ``partial=True`` commits the valid values.
    """

    name = "opro"

    def __init__(self, params: ParamsArg, *, llm: str | Client | None = None, top_k: int = 10,
                 max_history: int = 200, max_prompt_tokens: int = 4_000, max_value_chars: int = 400,
                 temperature: float | None = None, max_tokens: int = 1_024, partial: bool = False,
                 objective: str = "", plugin_manager: PluginManager | None = None) -> None:
        require_ints(self.name, {"top_k": (top_k, 1), "max_history": (max_history, 1),
                                 "max_prompt_tokens": (max_prompt_tokens, 200),
                                 "max_value_chars": (max_value_chars, 20)})
        super().__init__(params, {}, llm=llm, plugin_manager=plugin_manager)
        self.top_k = top_k
        self.max_history = max_history
        self.max_prompt_tokens = max_prompt_tokens
        self.max_value_chars = max_value_chars
        self.temperature = temperature
        self.max_tokens = max_tokens
        self.partial = partial
        self.objective = objective
        self.history: list[dict[str, Any]] = []  # {"values": {name: json}, "score": float}

    def current(self) -> dict[str, Any]:
        """The current values by parameter name, as JSON data."""
        return {self.param_names[p]: p.to_json() for p in self.params}

    def prompt(self, history: list[dict[str, Any]] | None = None) -> list[Message]:
        """The meta-prompt for ``history`` (default: the kept history)."""
        history = self.history if history is None else history
        budget = self.max_prompt_tokens * CHARS_PER_TOKEN
        schema = reply_schema(self.params, self.param_names)
        objective = section("Objective", truncate(self.objective or DEFAULT_OBJECTIVE, budget // 10))
        variables = section("Variables", truncate(render_variables(
            self.params, self.param_names, max_value_chars=self.max_value_chars), budget // 3))
        room = (budget - len(SYSTEM) - len(json_instruction(schema)) - len(objective)
                - len(variables) - 300)
        best = sorted(history, key=lambda r: r["score"])[-self.top_k:]
        shown = [self._solution(r) for r in best]
        while shown and sum(len(s) + 2 for s in shown) > room:
            shown.pop(0)  # the lowest score shown goes first
        solutions = section("Solutions so far, lower score first", "\n\n".join(shown) or "(none yet)")
        body = "\n\n".join((objective, variables, solutions, ASK_FOR))
        return [{"role": "system", "content": SYSTEM}, {"role": "user", "content": body}]

    def _solution(self, record: Mapping[str, Any]) -> str:
        lines = []
        for name, value in record["values"].items():
            shown = show_block(value, self.max_value_chars)
            lines.append(f"{name}:\n{shown}" if "\n" in shown else f"{name} = {shown}")
        return "\n".join(lines) + f"\nscore: {show(record['score'], 24)}"

    def propose(self, closure: Callable[[], Any] | None = None) -> Proposal:
        score = mean_score(distinct_feedback(self.params))
        if score is None:
            return Proposal(reason="no score (or loss) in the feedback received; opro needs scores")
        record = {"values": self.current(), "score": score}
        request: dict[str, Any] = {"max_tokens": self.max_tokens}
        if self.temperature is not None:
            request["temperature"] = self.temperature
        messages = self.prompt([*self.history, record])
        scaffold = Scaffold.of(messages, self.param_names.values(),
                               instructions=(ASK_FOR, DEFAULT_OBJECTIVE, "score"))
        verdict = ask(self.client, messages, self.params, self.param_names, partial=self.partial,
                      scaffold=scaffold, **request)
        values, reason = verdict.values, verdict.reason
        tried = self._tried(values, record)
        if tried is not None:
            values, reason = {}, (f"the suggested values were already tried (score "
                                  f"{show(tried['score'], 24)}); nothing new to commit")
        return Proposal(values, reasoning=verdict.reasoning, errors=verdict.errors,
                        reason=reason, record=record)

    def _tried(self, values: Mapping[Param, Any], record: Mapping[str, Any]) -> dict[str, Any] | None:
        """The history entry (or the current values) that ``values`` would repeat, if any."""
        if not values:
            return None
        proposed = {**record["values"],
                    **{self.param_names[t]: t.kind.to_json(v) for t, v in values.items()}}
        return next((r for r in [*self.history, record] if r["values"] == proposed), None)

    def on_rejected(self, proposal: Mapping[Param, Any], rejection: Rejection) -> None:
        """A rejected proposal is still a scored solution: the current values' score and the
        candidate's go into the history (never the parameters), so the next meta-prompt shows
        what did not work."""
        super().on_rejected(proposal, rejection)
        record = getattr(proposal, "record", None)
        if record is None:
            return
        self.remember(record)
        if math.isfinite(rejection.after):
            values = {**record["values"], **{self.param_names[t]: t.kind.to_json(v)
                                             for t, v in proposal.items() if t in self.param_names}}
            self.remember({"values": values, "score": rejection.after})

    def remember(self, record: Any) -> None:
        same = next((r for r in self.history if r["values"] == record["values"]), None)
        if same is not None:
            # Values scored again keep one entry with their latest score: repeated solutions
            # in the meta-prompt only teach the model to repeat them.
            self.history = [r for r in self.history if r is not same]
        history = [*self.history, record]
        if len(history) > self.max_history:
            # Keep the best, in the order they were found.
            keep = set(sorted(range(len(history)), key=lambda i: history[i]["score"])[-self.max_history:])
            history = [r for i, r in enumerate(history) if i in keep]
        self.history = history

    def best(self) -> dict[str, Any] | None:
        """The best solution seen: ``{"values": {...}, "score": ...}``."""
        return max(self.history, key=lambda r: r["score"], default=None)

    def extra_state_dict(self) -> dict[str, Any]:
        return {"history": [dict(r) for r in self.history]}

    def load_extra_state_dict(self, data: Mapping[str, Any]) -> None:
        self.history = [dict(r) for r in data.get("history", [])]


@hookimpl
def graphopt_optimizers() -> list[type]:
    return [OPRO]
