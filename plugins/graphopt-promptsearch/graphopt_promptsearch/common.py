"""What the prompt-search optimizers share: rewriting one value, scoring values, random state.

Rewrites go through ``graphopt.optim.rewrite`` (the model protocol only): a request built from
the current value and what went wrong, a reply cut to its fenced block, validated against the
parameter. A reply that is empty, unchanged, an echo of the request's own scaffolding
(``graphopt.optim.echoes``) or invalid is no candidate.
"""

from __future__ import annotations

import math
import random
from typing import Any, Iterable, Mapping, Sequence

from graphopt.errors import ParamValidationError
from graphopt.graph.node import Param
from graphopt.graph.render import truncate
from graphopt.llm.client import Client
from graphopt.optim import rewrite
from graphopt.optim.echoes import Scaffold
from graphopt.optim.evaluation import Evaluation

Values = dict[str, Any]


class Request:
    """An edit request: its text, and the sentences of it that are the optimizer's own (the
    scaffolding a reply must not merely repeat); quoted values, requirements and feedback are
    the user's words and may be reused."""

    __slots__ = ("text", "instructions")

    def __init__(self, text: str, instructions: Sequence[str]) -> None:
        self.text = text
        self.instructions = list(instructions)


def rewrite_value(client: Client, target: Param, name: str, values: Mapping[str, Any], *,
                  request: Request, max_tokens: int, temperature: float, seed: int) -> Values | None:
    """``values`` with ``name`` replaced by the model's answer to ``request``; ``None`` when the
    answer is an echo (empty, unchanged, the request's own scaffolding) or refused by the
    parameter."""
    value = rewrite.ask(client, request.text, max_tokens=max_tokens, temperature=temperature, seed=seed)
    if echo(request, value, values[name], values) is not None:
        return None
    try:
        checked = target.validate(value)
    except ParamValidationError:
        return None
    return {**values, name: checked}


def echo(request: Request, value: str, current: Any, names: Iterable[str]) -> str | None:
    """Why ``value`` only repeats ``request``'s scaffolding (its instructions, its titles, a
    parameter's name) or is empty or unchanged; ``None`` when it does not."""
    scaffold = Scaffold.of([{"role": "user", "content": request.text}], names,
                           instructions=request.instructions)
    return scaffold.echo(value, current)


def mutation_request(target: Param, name: str, value: str, critiques: Sequence[str], style: str) -> Request:
    """``graphopt.optim.rewrite``'s mutation request, with its fixed sentences."""
    fence = "python" if target.kind.name == "code" else "text"
    return Request(rewrite.mutation_prompt(target, name, value, critiques, style),
                   [f"You improve one {rewrite.describe_value(target, name)} of an AI workflow.",
                    "Current value:", "Feedback from runs:", style,
                    f"Reply with only the new value inside one ```{fence} block."])


def error_request(target: Param, name: str, value: str, failures: Sequence[str],
                  scores: Sequence[float], *, max_chars: int) -> Request:
    """PromptAgent's expansion request: the current value, the failures, then a rewrite."""
    fence = "python" if target.kind.name == "code" else "text"
    shown = "\n".join(f"- {truncate(f, max(max_chars // 8, 80))}" for f in failures) or "- (none recorded)"
    if scores:
        shown += "\nScores on a minibatch (higher is better): " + ", ".join(f"{s:.3g}" for s in scores)
    head = f"You improve one {rewrite.describe_value(target, name)} of an AI workflow."
    ask = (f"First work out, in a sentence or two, what in the current value caused these errors. "
           f"Then write an improved value that avoids them. End with only the new value inside "
           f"one ```{fence} block.")
    text = (f"{head}\nCurrent value:\n```{fence}\n{truncate(value, max_chars // 2)}\n```\n"
            f"These runs went wrong:\n{truncate(shown, max_chars // 2)}\n{ask}")
    return Request(text, [head, "Current value:", "These runs went wrong:", ask])


def score_values(evaluation: Evaluation, by_name: Mapping[str, Param], values: Mapping[str, Any],
                 indices: Sequence[int]) -> list[float]:
    """``values``' score on each example index; a non-finite score counts as ``-inf`` (a failure)."""
    if not indices:
        return []
    scores = evaluation.scores({by_name[n]: v for n, v in values.items()}, list(indices))
    return [float(s) if isinstance(s, (int, float)) and math.isfinite(s) else -math.inf for s in scores]


def finite_or_none(number: float) -> float | None:
    """``number`` for JSON: ``None`` when it is not finite."""
    return number if math.isfinite(number) else None


def from_json_score(number: float | None) -> float:
    return -math.inf if number is None else float(number)


def mean(values: Sequence[float]) -> float:
    return sum(values) / len(values) if values else -math.inf


def rng_state(rng: random.Random) -> list[Any]:
    version, internal, gauss = rng.getstate()
    return [version, list(internal), gauss]


def set_rng_state(rng: random.Random, state: Sequence[Any]) -> None:
    version, internal, gauss = state
    rng.setstate((version, tuple(internal), gauss))


def failures(feedbacks: Sequence[Any], limit: int = 5) -> list[str]:
    """Descriptions of the feedback that says something went wrong: errors, critiques, and the
    lowest scores, worst first."""
    def badness(feedback: Any) -> float:
        if feedback.error is not None:
            return -math.inf
        return feedback.score if feedback.score is not None else 0.0

    ranked = sorted(feedbacks, key=badness)
    return [f.describe() for f in ranked[:limit]]
