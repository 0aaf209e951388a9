"""``spo``: self-supervised prompt optimization, with no labels and no metric.

As in SPO (Xiang et al., 2025, "Self-Supervised Prompt Optimization"): each step the model
rewrites one parameter from its current value, the task's requirements and the outputs it
produces; the workflow runs with the current and with the proposed values on the same unlabeled
inputs, and a judge compares the two outputs of each input (in both orders, to cancel position
bias). The proposal is kept when it wins more comparisons than it loses.

``step(closure)``: the closure runs the workflow on this step's inputs with the values in use
and returns its outputs (a list, one per input, or a single output). No score is needed.
"""

from __future__ import annotations

import random
from typing import Any, Callable, Mapping

from graphopt.errors import ParamValidationError
from graphopt.graph.node import Node, Param
from graphopt.graph.render import show_block, truncate
from graphopt.llm.client import Client
from graphopt.optim import rewrite
from graphopt.optim.evaluation import assigned
from graphopt.optim.optimizer import Optimizer, ParamsArg, require_ints
from graphopt.plugins import PluginManager

from graphopt_promptsearch.common import Request, rewrite_value, rng_state, set_rng_state
from graphopt_promptsearch.judge import Judge, PairJudged, compare


def outputs_of(result: Any) -> list[Any]:
    """A closure's result as one output per input (a node's value, a list's items)."""
    if isinstance(result, Node):
        result = result.value
    if isinstance(result, (list, tuple)):
        return [item.value if isinstance(item, Node) else item for item in result]
    return [result]


class SPO(PairJudged, Optimizer):
    """Pairwise, reference-free search: proposals judged against the current values' outputs.

    ``requirements``: what a good output is, in words (the judge and the rewrite see it).
    ``judge``: ``"llm"`` (default: the optimizer's model), ``"cli"`` (a person) or a function
    ``(first, second) -> preference``. ``swap``: judge each pair in both orders.
    ``max_samples``: outputs shown to the rewrite.
    """

    name = "spo"
    kinds = frozenset({"text", "code"})
    gated = False  # the pairwise judgement is its gate: the closure returns outputs, not scores

    def __init__(self, params: ParamsArg, *, llm: str | Client | None = None,
                 judge: str | Judge = "llm", requirements: str = "", swap: bool = True,
                 max_samples: int = 3, max_value_chars: int = 600, temperature: float = 0.7,
                 max_tokens: int = 512, seed: int = 0, plugin_manager: PluginManager | None = None) -> None:
        require_ints(self.name, {"max_samples": (max_samples, 1), "max_value_chars": (max_value_chars, 40)})
        if not callable(judge) and judge not in ("llm", "cli"):
            raise ValueError(f"optimizer 'spo': judge expects 'llm', 'cli' or a function, got {judge!r}")
        super().__init__(params, {}, plugin_manager=plugin_manager)
        self.llm = llm
        self.judge_option = judge
        self.requirements = requirements
        self.swap = swap
        self.max_samples = max_samples
        self.max_value_chars = max_value_chars
        self.temperature = temperature
        self.max_tokens = max_tokens
        self.rng = random.Random(seed)
        self.steps = 0
        self.next_param = 0
        self.wins = 0
        self.losses = 0
        self.ties = 0
        self.history: list[dict[str, Any]] = []  # the last ``max_history`` steps' tallies
        self.max_history = 100

    def prompt(self, target: Param, name: str, value: str, outputs: list[Any]) -> Request:
        """SPO's optimization request: the requirements, the value, what it produces."""
        fence = "python" if target.kind.name == "code" else "text"
        shown = "\n\n".join(f"Output {i + 1}:\n{show_block(o, self.max_value_chars)}"
                            for i, o in enumerate(outputs[: self.max_samples]))
        head = (f"You improve one {rewrite.describe_value(target, name)} of an AI workflow. "
                f"There are no reference answers: judge the outputs against the requirements.")
        ask = (f"Say in one sentence what the outputs lack, then write an improved value. End "
               f"with only the new value inside one ```{fence} block.")
        text = (f"{head}\nCurrent value:\n```{fence}\n{truncate(value, self.max_value_chars * 2)}\n```\n"
                f"Requirements:\n{self.requirements or '(do the task well)'}\n\n"
                f"Outputs it produced:\n{shown}\n\n{ask}")
        return Request(text, [head, "Current value:", "Requirements:", "Outputs it produced:", ask])

    def propose(self, closure: Callable[[], Any] | None = None) -> dict[Param, Any]:
        if closure is None:
            return {}
        current = {self.param_names[p]: p.value for p in self.params}
        before = outputs_of(closure())
        target = self.params[self.next_param % len(self.params)]
        name = self.param_names[target]
        values = rewrite_value(self.client, target, name, current,
                               request=self.prompt(target, name, str(current[name]), before),
                               max_tokens=self.max_tokens, temperature=self.temperature,
                               seed=self.rng.randrange(2**31))
        self.steps += 1
        self.next_param += 1
        record: dict[str, Any] = {"step": self.steps, "param": name, "wins": 0, "losses": 0, "ties": 0,
                                  "kept": False}
        if values is None:
            record["reason"] = "no usable rewrite"
            self.history = [*self.history, record][-self.max_history:]
            return {}
        proposal = {target: values[name]}
        with assigned(proposal):
            after = outputs_of(closure())
        for old, new in zip(before, after):
            preference = compare(self.pair_judge, new, old, swap=self.swap)
            key = "wins" if preference > 0.5 else "losses" if preference < 0.5 else "ties"
            record[key] += 1
        self.wins += record["wins"]
        self.losses += record["losses"]
        self.ties += record["ties"]
        record["kept"] = record["wins"] > record["losses"]
        self.history = [*self.history, record][-self.max_history:]
        return proposal if record["kept"] else {}

    # -- state --------------------------------------------------------------------------------
    def extra_state_dict(self) -> dict[str, Any]:
        return {"rng": rng_state(self.rng), "steps": self.steps, "next_param": self.next_param,
                "wins": self.wins, "losses": self.losses, "ties": self.ties,
                "history": [dict(r) for r in self.history]}

    def check_extra_state_dict(self, data: Mapping[str, Any]) -> None:
        for key in ("steps", "next_param", "wins", "losses", "ties"):
            if not isinstance(data.get(key), int):
                raise ParamValidationError(f"optimizer 'spo': state needs an int {key!r}, got "
                                           f"{data.get(key)!r}")

    def load_extra_state_dict(self, data: Mapping[str, Any]) -> None:
        set_rng_state(self.rng, data["rng"])
        self.steps = data["steps"]
        self.next_param = data["next_param"]
        self.wins, self.losses, self.ties = data["wins"], data["losses"], data["ties"]
        self.history = [dict(r) for r in data.get("history", [])]


__all__ = ["SPO", "outputs_of"]
