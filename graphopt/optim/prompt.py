"""Assembling optimizer prompts from sections within a character budget.

Feedback accumulated on parameters is grouped into runs (one per ``backward`` call: its
subgraph, output and feedback) and aggregated (identical feedback counted once with ``×n``).
Fixed sections are cut first to their share; the rest of the budget goes to rendered runs.
"""

from __future__ import annotations

from collections import Counter
from typing import Iterable, Mapping, Sequence

from graphopt.feedback.feedback import Feedback
from graphopt.feedback.propagators import ParamFeedback
from graphopt.graph.node import Node, Param
from graphopt.graph.render import render_run, truncate
from graphopt.graph.walk import Subgraph


class Run:
    """One traced run that produced feedback: the subgraph, its output and what was said."""

    __slots__ = ("subgraph", "output", "feedback")

    def __init__(self, subgraph: Subgraph, output: Node, feedback: Feedback) -> None:
        self.subgraph = subgraph
        self.output = output
        self.feedback = feedback

    def __repr__(self) -> str:
        return f"Run({self.output.label}, {self.feedback.describe()!r})"


def collect_runs(params: Iterable[Param]) -> list[Run]:
    """Each distinct (subgraph, feedback) received by ``params``, in the order received."""
    seen: set[tuple[int, int]] = set()
    runs: list[Run] = []
    for target in params:
        for item in target.feedback:
            if not isinstance(item, ParamFeedback):
                continue
            key = (id(item.subgraph), id(item.feedback))
            if key not in seen:
                seen.add(key)
                runs.append(Run(item.subgraph, item.output, item.feedback))
    return runs


def aggregate_feedback(feedbacks: Iterable[Feedback], *, max_chars: int,
                       max_item_chars: int = 600) -> str:
    """Distinct feedback lines, most frequent first, each with its count, within ``max_chars``."""
    counts = Counter(truncate(f.describe(), max_item_chars) for f in feedbacks)
    lines: list[str] = []
    used = 0
    for index, (text, count) in enumerate(counts.most_common()):
        line = f"- {text}" + (f" (×{count})" if count > 1 else "")
        if used + len(line) + 1 > max_chars - 40 and lines:
            lines.append(f"- … {len(counts) - index} more distinct feedback items")
            break
        lines.append(line)
        used += len(line) + 1
    return truncate("\n".join(lines), max_chars)


def section(title: str, body: str, heading: str = "#") -> str:
    return f"{heading} {title}\n{body}"


def render_runs(runs: Sequence[Run], names: Mapping[Param, str], *, max_chars: int,
                max_runs: int, max_value_chars: int) -> str:
    """Up to ``max_runs`` runs rendered within ``max_chars`` together (several: each with its
    own feedback).

    Documentation repeats only where a run shows an op the earlier runs did not.
    """
    shown = list(runs[:max_runs])
    while shown and max_chars // len(shown) < 400 and len(shown) > 1:
        shown.pop()
    if not shown or max_chars < 200:
        return ""
    share = max_chars // len(shown)
    documented: set[str] = set()
    blocks = []
    for number, run in enumerate(shown, 1):
        several = len(runs) > 1
        feedback = section("Feedback", truncate(run.feedback.describe(), max(share // 4, 100)),
                           "###") if several else ""
        heading = f"## Run {number}" if several else ""
        room = share - len(feedback) - len(heading) - 4
        rendered = render_run(run.subgraph, names=names, max_chars=max(room, 100),
                              max_value_chars=max_value_chars)
        rendered.documentation = [d for d in rendered.documentation if d not in documented]
        documented.update(rendered.documentation)
        body = rendered.text("###" if heading else "#")
        blocks.append("\n\n".join(part for part in (heading, body, feedback) if part))
    if len(runs) > len(shown):
        blocks.append(f"({len(runs) - len(shown)} more runs not shown; their feedback is "
                      f"aggregated below)")
    return truncate("\n\n".join(blocks), max_chars)


__all__ = ["Run", "aggregate_feedback", "collect_runs", "render_runs", "section"]
