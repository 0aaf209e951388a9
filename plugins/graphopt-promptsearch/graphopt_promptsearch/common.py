"""What the prompt-search optimizers share: rewriting one value, scoring values, random state.

Rewrites go through ``graphopt.optim.rewrite`` (the model protocol only): a request built from
the current value and what went wrong, a reply cut to its fenced block, validated against the
parameter. A reply that is empty, unchanged, an echo of the request's own scaffolding
(``graphopt.optim.echoes``) or invalid is no candidate.
"""

from __future__ import annotations

import math
import random
import re
from typing import Any, Mapping, Sequence

from graphopt.errors import ParamValidationError
from graphopt.graph.node import Param
from graphopt.graph.render import truncate
from graphopt.llm.client import Client
from graphopt.optim import rewrite
from graphopt.optim.echoes import Scaffold
from graphopt.optim.evaluation import Evaluation

Values = dict[str, Any]

_FENCED = re.compile(r"```.*?```", re.S)


def rewrite_value(client: Client, target: Param, name: str, values: Mapping[str, Any], *,
                  prompt: str, max_tokens: int, temperature: float, seed: int) -> Values | None:
    """``values`` with ``name`` replaced by the model's answer to ``prompt``; ``None`` when the
    answer is empty, unchanged or refused by the parameter."""
    value = rewrite.ask(client, prompt, max_tokens=max_tokens, temperature=temperature, seed=seed)
    if echo(prompt, value, values[name], values) is not None:
        return None
    try:
        checked = target.validate(value)
    except ParamValidationError:
        return None
    return {**values, name: checked}


def echo(prompt: str, value: str, current: Any, values: Mapping[str, Any]) -> str | None:
    """Why ``value`` only repeats the request's own scaffolding (its words outside the quoted
    values, its titles, a parameter's name) or is empty or unchanged; ``None`` when it does not."""
    scaffold = Scaffold.of([{"role": "user", "content": prompt}], values,
                           instructions=[_FENCED.sub(" ", prompt)])
    return scaffold.echo(value, current)


def error_prompt(target: Param, name: str, value: str, failures: Sequence[str],
                 scores: Sequence[float], *, max_chars: int) -> str:
    """PromptAgent's expansion request: the current value, the failures, then a rewrite."""
    fence = "python" if target.kind.name == "code" else "text"
    shown = "\n".join(f"- {truncate(f, max(max_chars // 8, 80))}" for f in failures) or "- (none recorded)"
    if scores:
        shown += "\nScores on a minibatch (higher is better): " + ", ".join(f"{s:.3g}" for s in scores)
    return (f"You improve one {rewrite.describe_value(target, name)} of an AI workflow.\n"
            f"Current value:\n```{fence}\n{truncate(value, max_chars // 2)}\n```\n"
            f"These runs went wrong:\n{truncate(shown, max_chars // 2)}\n"
            f"First work out, in a sentence or two, what in the current value caused these errors. "
            f"Then write an improved value that avoids them. End with only the new value inside "
            f"one ```{fence} block.")


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
