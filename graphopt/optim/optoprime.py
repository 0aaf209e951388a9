"""``optoprime``: one model call reasons over the whole traced subgraph and proposes new values.

The prompt states the problem compactly: the trainable variables (kind, constraints, value), the
runs that produced feedback (code lines, op documentation once, inputs, intermediate values,
outputs, errors, feedback), the aggregated feedback and, optionally, the last ``memory`` steps.
It never exceeds ``max_prompt_tokens`` (estimated at ``CHARS_PER_TOKEN`` characters a token):
values are cut, then distant nodes dropped, so a 10,000-op graph costs what a 100-op one does.
The default, 2,000 tokens (8,000 characters), goes first to the variables, their feedback and the
ops nearest to them.
"""

from __future__ import annotations

import contextvars
import json
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable, Mapping, Sequence

from graphopt.errors import ParamValidationError
from graphopt.graph.node import Param
from graphopt.graph.render import CHARS_PER_TOKEN, render_variables, show, truncate
from graphopt.llm.client import Client
from graphopt.llm.protocol import Message
from graphopt.llm.structured import json_instruction
from graphopt.optim.echoes import Scaffold
from graphopt.optim.llm_optimizer import LLMOptimizer, Proposal
from graphopt.optim.objective import to_loss
from graphopt.optim.optimizer import ParamsArg, require_ints
from graphopt.optim.prompt import Run, aggregate_feedback, collect_runs, render_runs, section
from graphopt.optim.suggest import Verdict, ask, reply_schema
from graphopt.plugins.manager import PluginManager, hookimpl

SYSTEM = (
    "You improve a program by changing its trainable variables. You are shown the operations "
    "that ran, one code line each, with the values they produced, the documentation of each "
    "operation, and feedback on the outputs. Work out which variables caused the feedback and "
    "suggest new values for them. A variable you leave out (or set to null) keeps its value. "
    "Code must stay a complete function with the same name and parameters; numbers must stay "
    "within their range; choices must be one of their options."
)

DEFAULT_OBJECTIVE = "Change the variables so that the feedback on the outputs improves."

Selector = Callable[[Sequence[Verdict]], int]


class OptoPrime(LLMOptimizer):
    """Reasons over the traced subgraph with one call per step (``n_candidates`` calls if asked).

    ``memory``: how many past steps (values and the feedback they got) the prompt recalls.
    ``n_candidates``: replies sampled in parallel (at ``temperature``, default 0.8); the
    ``selector`` picks one: ``"closure"`` runs ``step(closure)``'s closure on each and keeps the
    lowest loss, ``"most_valid"`` the one with the most valid values, ``"auto"`` the first when a
    closure is given, else the second; or a function of the verdicts returning an index.
    All or none by default: nothing is committed unless every suggested value is valid
    (``partial=True`` commits the valid ones). A suggestion that only echoes the prompt (a
    section title, an omitted-ops line, a variable's name, the instructions) or is empty or
    unchanged is refused before anything evaluates it; ``last_step["errors"]`` says why.
    """

    name = "optoprime"

    def __init__(self, params: ParamsArg, *, llm: str | Client | None = None,
                 max_prompt_tokens: int = 2_000, max_value_chars: int = 400, max_runs: int = 3,
                 memory: int = 0, n_candidates: int = 1, selector: str | Selector = "auto",
                 temperature: float | None = None, max_tokens: int = 1_024, partial: bool = False,
                 objective: str = "", plugin_manager: PluginManager | None = None) -> None:
        require_ints(self.name, {"max_prompt_tokens": (max_prompt_tokens, 200),
                                 "max_value_chars": (max_value_chars, 20), "max_runs": (max_runs, 1),
                                 "memory": (memory, 0), "n_candidates": (n_candidates, 1)})
        if not callable(selector) and selector not in ("auto", "closure", "most_valid"):
            raise ValueError(f"optimizer 'optoprime': selector expects 'auto', 'closure', "
                             f"'most_valid' or a function, got {selector!r}")
        super().__init__(params, {}, llm=llm, plugin_manager=plugin_manager)
        self.max_prompt_tokens = max_prompt_tokens
        self.max_value_chars = max_value_chars
        self.max_runs = max_runs
        self.memory = memory
        self.n_candidates = n_candidates
        self.selector = selector
        self.temperature = temperature if temperature is not None else (
            0.8 if n_candidates > 1 else None)
        self.max_tokens = max_tokens
        self.partial = partial
        self.objective = objective
        self.steps = 0
        self.history: list[dict[str, Any]] = []  # the last ``memory`` (values, feedback) records

    # -- the prompt ---------------------------------------------------------------------------
    def prompt(self, runs: Sequence[Run] | None = None) -> list[Message]:
        """The messages one step sends, built from ``runs`` (default: the feedback received)."""
        runs = collect_runs(self.params) if runs is None else runs
        budget = self.max_prompt_tokens * CHARS_PER_TOKEN
        schema = reply_schema(self.params, self.param_names)
        fixed = len(SYSTEM) + len(json_instruction(schema)) + 200
        objective = section("Objective", truncate(self.objective or DEFAULT_OBJECTIVE, budget // 10))
        variables = section("Variables", self._variables(max(budget // 3, 200)))
        feedback = section("Feedback", aggregate_feedback(
            [run.feedback for run in runs], max_chars=max(budget // 8, 100)))
        past = section("Memory (earlier steps, oldest first)",
                       self._recall(max(budget // 8, 100))) if self.history else ""
        room = budget - fixed - sum(len(p) + 2 for p in (objective, variables, feedback, past))
        graph = render_runs(runs, self.param_names, max_chars=room, max_runs=self.max_runs,
                            max_value_chars=self.max_value_chars)
        body = "\n\n".join(p for p in (objective, variables, graph, feedback, past) if p)
        return [{"role": "system", "content": SYSTEM}, {"role": "user", "content": body}]

    def _variables(self, max_chars: int) -> str:
        limit = max(max_chars // max(len(self.params), 1), 40)
        return truncate(render_variables(self.params, self.param_names, max_value_chars=limit),
                        max_chars)

    def _recall(self, max_chars: int) -> str:
        limit = max(max_chars // max(len(self.history), 1), 80)
        lines = []
        for number, record in enumerate(self.history, 1):
            values = ", ".join(f"{n}={show(v, max(limit // 3, 30))}" for n, v in record["values"].items())
            lines.append(truncate(f"{number}. {values} -> feedback: {record['feedback']}", limit))
        return truncate("\n".join(lines), max_chars)

    # -- a step -------------------------------------------------------------------------------
    def propose(self, closure: Callable[[], Any] | None = None) -> Proposal:
        runs = collect_runs(self.params)
        if not runs:
            return Proposal(reason="no feedback received since the last zero_feedback()")
        messages = self.prompt(runs)
        request: dict[str, Any] = {"max_tokens": self.max_tokens}
        if self.temperature is not None:
            request["temperature"] = self.temperature
        request["scaffold"] = self._scaffold(messages)
        if self.n_candidates == 1:
            verdict = ask(self.client, messages, self.params, self.param_names,
                          partial=self.partial, **request)
        else:
            verdict = self._select(self._sample(messages, request), closure)
        record = {"values": {self.param_names[p]: p.to_json() for p in self.params},
                  "feedback": aggregate_feedback([r.feedback for r in runs], max_chars=600)}
        return Proposal(verdict.values, reasoning=verdict.reasoning, errors=verdict.errors,
                        reason=verdict.reason, record=record)

    def _scaffold(self, messages: list[Message]) -> Scaffold:
        """The prompt's own words: a suggestion made of them only is refused as an echo."""
        return Scaffold.of(messages, self.param_names.values(),
                           instructions=() if self.objective else (DEFAULT_OBJECTIVE,))

    def _sample(self, messages: list[Message], request: dict[str, Any]) -> list[Verdict]:
        def one(index: int) -> Verdict:
            return ask(self.client, messages, self.params, self.param_names, partial=self.partial,
                       rollout_id=f"{self.steps}:{index}", **request)

        with ThreadPoolExecutor(max_workers=self.n_candidates,
                                thread_name_prefix="graphopt-optoprime") as pool:
            futures = [pool.submit(contextvars.copy_context().run, one, i)
                       for i in range(self.n_candidates)]
            return [future.result() for future in futures]

    def _select(self, verdicts: list[Verdict], closure: Callable[[], Any] | None) -> Verdict:
        selector = self.selector
        if callable(selector):
            index = selector(verdicts)
            if not isinstance(index, int) or not 0 <= index < len(verdicts):
                raise ValueError(f"optimizer 'optoprime': selector expects an index in "
                                 f"[0, {len(verdicts)}), got {index!r}")
            return verdicts[index]
        if selector == "auto":
            selector = "closure" if closure is not None else "most_valid"
        useful = [v for v in verdicts if v.values]
        if not useful:
            return verdicts[0]
        if selector == "closure":
            if closure is None:
                raise ValueError("optimizer 'optoprime': selector 'closure' needs step(closure)")
            return min(useful, key=lambda v: _loss_with(v.values, closure))
        return max(useful, key=lambda v: len(v.values))

    def remember(self, record: Any) -> None:
        self.steps += 1
        if self.memory:
            self.history = [*self.history, record][-self.memory:]

    # -- state --------------------------------------------------------------------------------
    def extra_state_dict(self) -> dict[str, Any]:
        return {"steps": self.steps, "history": json.loads(json.dumps(self.history))}

    def load_extra_state_dict(self, data: Mapping[str, Any]) -> None:
        self.steps = int(data.get("steps", 0))
        self.history = [dict(record) for record in data.get("history", [])]


def _loss_with(values: Mapping[Param, Any], closure: Callable[[], Any]) -> float:
    """The closure's loss with ``values`` assigned, every value restored afterwards."""
    previous = {target: target.value for target in values}
    try:
        for target, value in values.items():
            target.value = value
        return to_loss(closure())
    except (ValueError, ParamValidationError):
        return float("inf")
    finally:
        for target, value in previous.items():
            target.value = value


@hookimpl
def graphopt_optimizers() -> list[type]:
    return [OptoPrime]
