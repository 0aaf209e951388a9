"""Refusing scaffolding echoes: suggested text that only repeats the optimizer's own prompt.

A small model asked for a better system prompt may answer with a section title of the prompt it
was shown ("System Prompt"), a line standing for omitted ops ("label ×1, parse ×1"), a variable's
name or a sentence of the instructions. Such a value is refused before anything evaluates it, as
is an empty value or one equal to the current value; the reason is recorded with the step.
"""

from __future__ import annotations

import re
from typing import Any, Iterable, Sequence

from graphopt.graph.node import Param
from graphopt.llm.protocol import Message

# A line standing for dropped ops (``graph/render.py``), or the op counts inside it.
_OMITTED = re.compile(r"…\s*\d+\s+ops?\s+omitted|\b\d+\s+ops?\s+omitted\b", re.I)
_OP_COUNTS = re.compile(r"^[\w.<>]+\s*×\s*\d+(\s*,\s*[\w.<>]+\s*×\s*\d+)*(\s+and\s+\d+\s+other\s+ops)?$")
# One "op ×count" entry of that line anywhere in a value: no prompt of a person's reads so.
_OP_COUNT = re.compile(r"[A-Za-z_][\w.<>]*\.[\w<>]+\s*×\s*\d+")
_WORD = re.compile(r"[^\W_]+")
# A name as code spells it (``ReviewTriage.score``, ``parse_reply``, ``label()``): a prompt's op
# and variable names, never a prompt of its own when it is the whole value.
_CODE_NAME = re.compile(r"[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)+(?:\(\))?|[A-Za-z_]\w*_\w*(?:\(\))?|[A-Za-z_]\w*\(\)")


def normalized(text: str) -> str:
    """Lower-case words only: ``"# System_Prompt:"`` and ``"system prompt"`` read the same."""
    return " ".join(_WORD.findall(text.lower()))


class Scaffold:
    """What an optimizer's prompt says on its own account: its instructions, section titles,
    marker lines and the names it uses. Built from the messages sent, plus extra fixed text."""

    __slots__ = ("template", "titles", "names", "code_names")

    def __init__(self, template: Iterable[str] = (), titles: Iterable[str] = (),
                 names: Iterable[str] = (), code_names: Iterable[str] = ()) -> None:
        # Padded with spaces so a value matches whole words only.
        self.template = " " + " | ".join(normalized(t) for t in template if t) + " "
        self.titles = {normalized(t) for t in titles if normalized(t)}
        self.names = {normalized(n) for n in names if normalized(n)}
        self.code_names = {n.removesuffix("()") for n in code_names}

    @classmethod
    def of(cls, messages: Sequence[Message], names: Iterable[str], *,
           instructions: Iterable[str] = ()) -> Scaffold:
        """The scaffold of ``messages``: the system message whole, every ``#`` line of the
        others (titles and omitted-op markers), ``instructions``, the variables' ``names`` and
        every name spelt as code (op and variable names of the rendered graph)."""
        template = [str(m.get("content", "")) for m in messages if m.get("role") == "system"]
        template += list(instructions)
        titles = []
        code_names: set[str] = set()
        for message in messages:
            if message.get("role") == "system":
                continue
            content = str(message.get("content", ""))
            code_names.update(_CODE_NAME.findall(content))
            for line in content.splitlines():
                if line.lstrip().startswith("#"):
                    titles.append(line.strip().lstrip("#"))
        return cls(template, titles, names, code_names)

    def echo(self, value: Any, current: Any) -> str | None:
        """Why ``value`` (a text or code suggestion) is an echo, or ``None`` when it is not."""
        if not isinstance(value, str):
            return None
        if not value.strip():
            return "empty value"
        if isinstance(current, str) and value.strip() == current.strip():
            return "same as the current value"
        if _OMITTED.search(value) or _OP_COUNTS.match(value.strip()) or _OP_COUNT.search(value):
            return "copies the prompt's omitted-ops marker"
        if value.strip().removesuffix("()") in self.code_names:
            return "copies an op or variable name of the prompt"
        words = normalized(value)
        if not words:
            return "no words, only punctuation"
        if words in self.names:
            return "copies a variable's name"
        if words in self.titles:
            return "copies a section title of the prompt"
        if f" {words} " in self.template and not (
                isinstance(current, str) and f" {words} " in f" {normalized(current)} "):
            return "copies the optimizer's instructions"
        return None


def refuse_echoes(values: dict[Param, Any], names: dict[Param, str] | Any, scaffold: Scaffold | None
                  ) -> dict[str, str]:
    """Remove echoed values from ``values`` (in place); their refusals by parameter name."""
    refused: dict[str, str] = {}
    if scaffold is None:
        return refused
    for target in list(values):
        reason = scaffold.echo(values[target], target.value)
        if reason is not None:
            refused[names[target]] = f"refused before evaluation: {reason} ({_quote(values[target])})"
            del values[target]
    return refused


def _quote(value: str) -> str:
    text = value.strip().replace("\n", " ")
    return repr(text if len(text) <= 60 else text[:57] + "...")


__all__ = ["Scaffold", "normalized", "refuse_echoes"]
