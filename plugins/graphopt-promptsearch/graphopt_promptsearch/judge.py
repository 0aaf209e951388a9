"""Pairwise judges: which of two outputs is better, as ``go.Feedback(preference=...)``.

A judge is any function ``judge(first, second) -> Feedback | float | str``: a ``Feedback`` with a
``preference`` (1: the first is better, 0: the second, 0.5: a tie), that number alone, or the
letter ``"a"``/``"b"``/``"tie"``. ``llm_judge`` asks a model, ``cli_judge`` asks a person at the
terminal; ``as_judge`` turns an optimizer's ``judge=`` option into one of them.
"""

from __future__ import annotations

import re
from typing import Any, Callable

from graphopt.feedback.feedback import Feedback
from graphopt.graph.render import show_block, truncate
from graphopt.llm.client import Client
from graphopt.optim.rewrite import RewriteClient

Judge = Callable[[Any, Any], Any]

JUDGE_SYSTEM = (
    "You compare two outputs of the same program for the same input and say which one better "
    "meets the requirements. Judge only the outputs, not their order or length."
)

_VERDICT = re.compile(r"\b(A|B|TIE)\b")


def preference_of(result: Any) -> float:
    """A judge's answer as the preference for the first output, in [0, 1]."""
    if isinstance(result, Feedback):
        if result.preference is None:
            raise ValueError(f"judge returned feedback without a preference: {result.describe()!r}")
        return result.preference
    if isinstance(result, str):
        letter = result.strip().lower()
        table = {"a": 1.0, "first": 1.0, "b": 0.0, "second": 0.0, "tie": 0.5, "t": 0.5}
        if letter not in table:
            raise ValueError(f"judge answered {result!r}; expected 'a', 'b' or 'tie'")
        return table[letter]
    if isinstance(result, bool) or not isinstance(result, (int, float)):
        raise ValueError(f"judge returned {type(result).__name__}; expected a Feedback with a "
                         f"preference, a number in [0, 1] or 'a'/'b'/'tie'")
    return Feedback(preference=float(result)).preference  # type: ignore[return-value]


def parse_verdict(text: str) -> float:
    """The last ``A``/``B``/``TIE`` in a model's reply as a preference; a tie when there is none."""
    found = _VERDICT.findall(text.upper())
    return {"A": 1.0, "B": 0.0, "TIE": 0.5}[found[-1]] if found else 0.5


def llm_judge(client: Client, *, requirements: str = "", max_chars: int = 2_000,
              max_tokens: int = 256) -> Judge:
    """A judge asking ``client`` which output better meets ``requirements``."""
    def judge(first: Any, second: Any) -> Feedback:
        body = (f"Requirements:\n{truncate(requirements, max_chars) or '(do the task well)'}\n\n"
                f"Output A:\n{show_block(first, max_chars)}\n\nOutput B:\n{show_block(second, max_chars)}"
                f"\n\nWhich output is better? Give one sentence of reason, then a last line with "
                f"only A, B or TIE.")
        reply = client.complete([{"role": "system", "content": JUDGE_SYSTEM},
                                 {"role": "user", "content": body}], max_tokens=max_tokens,
                                temperature=0.0)
        return Feedback(preference=parse_verdict(reply.text), text=truncate(reply.text, 400))
    return judge


def cli_judge(*, ask: Callable[[str], str] = input, tell: Callable[[str], None] = print,
              max_chars: int = 2_000) -> Judge:
    """A judge that shows both outputs to a person and reads ``a``, ``b`` or ``t`` (tie)."""
    def judge(first: Any, second: Any) -> Feedback:
        tell(f"Output A:\n{show_block(first, max_chars)}\n\nOutput B:\n{show_block(second, max_chars)}")
        while True:
            answer = ask("Which is better? [a/b/t] ").strip().lower()
            if answer in ("a", "b", "t"):
                return Feedback(preference={"a": 1.0, "b": 0.0, "t": 0.5}[answer])
            tell("Please answer a, b or t.")
    return judge


def as_judge(option: str | Judge, client: Callable[[], Client], requirements: str = "") -> Judge:
    """``"llm"`` (the optimizer's model), ``"cli"`` (a person) or a judge function as a judge."""
    if callable(option):
        return option
    if option == "llm":
        return llm_judge(client(), requirements=requirements)
    if option == "cli":
        return cli_judge()
    raise ValueError(f"judge expects 'llm', 'cli' or a function (first, second) -> preference, "
                     f"got {option!r}")


def compare(judge: Judge, first: Any, second: Any, *, swap: bool = True) -> float:
    """The preference for ``first`` over ``second``; with ``swap``, judged in both orders and
    averaged, which cancels a judge's bias towards a position."""
    forward = preference_of(judge(first, second))
    if not swap:
        return forward
    return (forward + 1.0 - preference_of(judge(second, first))) / 2


class PairJudged(RewriteClient):
    """Mixin for optimizers with ``judge_option`` and ``requirements``: ``pair_judge``, the
    pairwise judge (``as_judge``), made on first use over the optimizer's own ``client``."""

    judge_option: str | Judge
    requirements: str
    _judge: Judge | None = None

    @property
    def pair_judge(self) -> Judge:
        """The pairwise judge, made on first use."""
        if self._judge is None:
            self._judge = as_judge(self.judge_option, lambda: self.client, self.requirements)
        return self._judge
