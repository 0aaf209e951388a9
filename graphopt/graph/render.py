"""Rendering a traced subgraph as a compact, bounded problem statement.

A run renders as code lines (``add3 = add(left=add2, right=1)``), each op's documentation once,
the inputs, intermediate values, outputs and errors. Every value is cut to ``max_value_chars``;
when the whole does not fit ``max_chars``, the nodes nearest the parameters and the outputs (and
the errors that started a failure) are kept, and each run of dropped nodes collapses into one
line counting its ops. Building costs O(V + E) plus the kept nodes, so a 10,000-op chain renders
as fast as it is walked and as short as the budget says.

This module knows graphs only: prompt assembly and models live in ``graphopt.optim``.
"""

from __future__ import annotations

import heapq
import reprlib
from collections import Counter
from typing import Any, Iterable, Mapping

from graphopt.graph.node import Error, Message, Node, Param
from graphopt.graph.walk import Subgraph

CHARS_PER_TOKEN = 4
"""The rough characters-per-token ratio used to turn a token budget into characters."""

# Below this a value says nothing useful; budgets shrink values no further.
MIN_VALUE_CHARS = 40
# The argument name under which a trainable op's code parameter is its parent (``graph/op.py``).
CODE_ARGUMENT = "__code__"
# Room kept for the line that stands for each run of dropped nodes.
_COLLAPSE_LINE_CHARS = 80


def estimate_tokens(text: str) -> int:
    """Tokens ``text`` is likely to take (characters over ``CHARS_PER_TOKEN``, rounded up)."""
    return -(-len(text) // CHARS_PER_TOKEN)


def truncate(text: str, limit: int, *, keep: str = "middle") -> str:
    """``text`` cut to at most ``limit`` characters, marking the cut.

    ``keep="middle"`` keeps the head and the tail, ``"head"`` the start, ``"tail"`` the end
    (tracebacks end with what matters).
    """
    if len(text) <= limit:
        return text
    marker = f" …[{len(text)} chars, cut]… "
    room = limit - len(marker)
    if room <= 0:
        return text[:limit]
    if keep == "head":
        return text[:room] + marker.rstrip()
    if keep == "tail":
        return marker.lstrip() + text[len(text) - room:]
    head = room - room // 2
    return text[:head] + marker + text[len(text) - room // 2:]


class _Shortener(reprlib.Repr):
    """``reprlib`` with tensors shown without autograd state (``grad_fn``, ``requires_grad``):
    not part of the value, and absent once a run is shipped back from another process."""

    def repr_Tensor(self, value: Any, level: int) -> str:  # noqa: N802 (reprlib's dispatch name)
        return repr(value.detach())


def show(value: Any, limit: int) -> str:
    """``value`` as a bounded one-line text: strings quoted, containers abbreviated."""
    if isinstance(value, str):
        return repr(truncate(value, max(limit - 2, 1)))
    shortener = _Shortener()
    shortener.maxstring = shortener.maxother = shortener.maxlong = max(limit, 12)
    shortener.maxlist = shortener.maxtuple = shortener.maxdict = shortener.maxset = 12
    try:
        text = shortener.repr(value)
    except Exception as err:  # a value whose repr raises still renders
        text = f"<{type(value).__name__}: repr failed: {type(err).__name__}>"
    return truncate(text.replace("\n", " "), limit)


def show_block(value: Any, limit: int) -> str:
    """``value`` for a block of its own: multi-line text verbatim (cut), anything else as ``show``."""
    if isinstance(value, str) and "\n" in value:
        return truncate(value.rstrip("\n"), limit)
    return show(value, limit)


class RenderedRun:
    """One run's sections as text, with how many op nodes were kept and dropped."""

    __slots__ = ("code", "documentation", "inputs", "intermediate", "outputs", "errors",
                 "kept", "omitted")

    def __init__(self, code: list[str], documentation: list[str], inputs: list[str],
                 intermediate: list[str], outputs: list[str], errors: list[str],
                 kept: int, omitted: int) -> None:
        self.code = code
        self.documentation = documentation
        self.inputs = inputs
        self.intermediate = intermediate
        self.outputs = outputs
        self.errors = errors
        self.kept = kept
        self.omitted = omitted

    def sections(self) -> list[tuple[str, str]]:
        """``(title, body)`` of each non-empty section, in reading order."""
        parts = [("Code", self.code), ("Documentation", self.documentation),
                 ("Inputs", self.inputs), ("Intermediate values", self.intermediate),
                 ("Outputs", self.outputs), ("Errors", self.errors)]
        return [(title, "\n".join(lines)) for title, lines in parts if lines]

    def text(self, heading: str = "#") -> str:
        """The sections under ``heading``-level titles."""
        return "\n\n".join(f"{heading} {title}\n{body}" for title, body in self.sections())

    def __repr__(self) -> str:
        return f"RenderedRun(kept={self.kept}, omitted={self.omitted}, chars={len(self.text())})"


def render_variables(params: Iterable[Param], names: Mapping[Param, str], *,
                     max_value_chars: int = 2_000) -> str:
    """The trainable variables: name, kind with its constraints, description, current value."""
    blocks = []
    for target in params:
        header = f"{names.get(target, target.label)} ({target.kind.describe()})"
        if target.description:
            header += f": {truncate(target.description, 200)}"
        value = show_block(target.value, max_value_chars)
        if "\n" in value:
            blocks.append(f"{header}, value:\n{value}")
        else:
            blocks.append(f"{header} = {value}")
    return "\n".join(blocks)


def render_run(subgraph: Subgraph, *, names: Mapping[Param, str], max_chars: int,
               max_value_chars: int = 400, max_doc_chars: int = 300) -> RenderedRun:
    """``subgraph`` as code and values within ``max_chars`` characters.

    ``names`` maps the parameters being optimized to the names the prompt uses; other nodes are
    named by op and position (``add3``), so a rendering repeats run to run. Values shrink (not
    below ``MIN_VALUE_CHARS``) before nodes are dropped; the text never exceeds ``max_chars``.
    """
    plan = _Plan(subgraph, names)
    limit = max_value_chars
    while True:
        room = max_chars
        for _ in range(3):  # the lines standing for dropped nodes are counted after the fact
            run = plan.render(room, limit, max_doc_chars)
            overflow = len(run.text()) - max_chars
            if overflow <= 0:
                return run
            room -= overflow + _COLLAPSE_LINE_CHARS
        if limit <= MIN_VALUE_CHARS:
            return _clip(run, max_chars)
        limit = max(MIN_VALUE_CHARS, limit // 2)
        max_doc_chars = max(MIN_VALUE_CHARS, max_doc_chars // 2)


class _Plan:
    """What one subgraph renders from: identifiers, distances, and each node's lines on demand."""

    __slots__ = ("subgraph", "messages", "position", "identifiers", "inputs_of", "closeness",
                 "input_names")

    def __init__(self, subgraph: Subgraph, names: Mapping[Param, str]) -> None:
        self.subgraph = subgraph
        members = {node: index for index, node in enumerate(subgraph.nodes)}
        self.position = members
        self.identifiers: dict[Node, str] = {}
        self.input_names: dict[Node, str] = {}
        self.inputs_of: dict[Node, list[Node]] = {}
        self.messages: list[Message] = []
        counters: Counter[str] = Counter()
        cleaned: dict[str, str] = {}
        for node in subgraph.nodes:
            if isinstance(node, Message):
                op_name = cleaned.get(node.op.name)
                if op_name is None:
                    op_name = cleaned[node.op.name] = _identifier(node.op.name)
                self.identifiers[node] = f"{op_name}{counters[op_name]}"
                counters[op_name] += 1
                self.messages.append(node)
                self.inputs_of[node] = [p for p in node.parents if p not in members
                                        or (isinstance(p, Param) and p not in names)]
            elif isinstance(node, Param) and node in names:
                self.identifiers[node] = names[node]
        for node in self.messages:
            for parent in self.inputs_of[node]:
                if parent not in self.input_names:
                    self.input_names[parent] = parent.name or f"input{len(self.input_names)}"
        self.closeness = self._closeness(members)

    def _closeness(self, members: dict[Node, int]) -> dict[Node, int]:
        """Hops to the nearest optimized parameter or output; 0 for outputs and first errors."""
        far = len(members) + 1
        to_params: dict[Node, int] = {}
        for node in self.subgraph.nodes:
            if node in self.identifiers and not isinstance(node, Message):
                to_params[node] = 0
            else:
                to_params[node] = 1 + min((to_params[p] for p in node.parents if p in to_params),
                                          default=far)
        to_outputs: dict[Node, int] = {node: 0 for node in self.subgraph.outputs if node in members}
        for node in reversed(self.subgraph.nodes):
            hops = to_outputs.get(node)
            if hops is None:
                continue
            for parent in node.parents:
                if parent in members and to_outputs.get(parent, far) > hops + 1:
                    to_outputs[parent] = hops + 1
        closeness = {}
        for node in self.messages:
            first_error = type(node) is Error and not any(type(p) is Error for p in node.parents)
            closeness[node] = 0 if first_error else min(to_params[node], to_outputs.get(node, far))
        return closeness

    def _call(self, node: Message) -> str:
        arguments = []
        source = ""
        for name, parent in zip(node.arg_names, node.parents):
            # Identity, never ``in`` on a list: ``==`` on nodes is a traced op comparing values.
            if parent in self.identifiers and all(parent is not q for q in self.inputs_of[node]):
                shown = self.identifiers[parent]
            else:
                shown = self.input_names[parent]
            if name == CODE_ARGUMENT:
                source = f"  # runs the code of {shown}"
            else:
                arguments.append(shown if name.startswith("<") else f"{name}={shown}")
        for name, constant in (node.constants or {}).items():
            arguments.append(f"{name}={show(constant, 60)}")
        return f"{self.identifiers[node]} = {node.op.name}({', '.join(arguments)}){source}"

    def render(self, max_chars: int, max_value_chars: int, max_doc_chars: int) -> RenderedRun:
        outputs = set(self.subgraph.outputs)
        kept = self._select(max_chars, max_value_chars, max_doc_chars, outputs)
        code: list[str] = []
        documentation: list[str] = []
        inputs: list[str] = []
        intermediate: list[str] = []
        shown_outputs: list[str] = []
        errors: list[str] = []
        documented: set[str] = set()
        listed: set[Node] = set()
        dropped: list[Message] = []
        for node in self.messages:
            if node not in kept:
                dropped.append(node)
                continue
            if dropped:
                code.append(_collapse(dropped))
                dropped = []
            code.append(self._call(node))
            if node.op.name not in documented and node.op.doc:
                documented.add(node.op.name)
                documentation.append(f"[{node.op.name}] {truncate(node.op.doc, max_doc_chars)}")
            for parent in self.inputs_of[node]:
                if parent not in listed:
                    listed.add(parent)
                    inputs.append(f"{self.input_names[parent]} = {show(parent.value, max_value_chars)}")
            identifier = self.identifiers[node]
            if type(node) is Error:
                errors.append(self._error(node, max_value_chars))
            elif node in outputs:
                shown_outputs.append(f"{identifier} = {show(node.value, max_value_chars)}")
            else:
                intermediate.append(f"{identifier} = {show(node.value, max_value_chars)}")
        if dropped:
            code.append(_collapse(dropped))
        omitted = len(self.messages) - len(kept)
        return RenderedRun(code, documentation, inputs, intermediate, shown_outputs, errors,
                           len(kept), omitted)

    def _error(self, node: Error, limit: int) -> str:
        exception = node.value
        summary = f"{self.identifiers[node]}: {type(exception).__name__}: {exception}"
        if any(type(p) is Error for p in node.parents):
            return truncate(f"{summary} (passed on from an input)", limit)
        return f"{truncate(summary, limit)}\n{truncate(node.traceback, limit, keep='tail')}"

    def _cost(self, node: Message, max_value_chars: int, max_doc_chars: int,
              documented: set[str], listed: set[Node]) -> int:
        cost = len(self._call(node)) + len(self.identifiers[node]) + 6
        cost += len(self._error(node, max_value_chars)) if type(node) is Error else \
            len(show(node.value, max_value_chars))
        if node.op.name not in documented and node.op.doc:
            cost += min(len(node.op.doc), max_doc_chars) + len(node.op.name) + 4
        for parent in self.inputs_of[node]:
            if parent not in listed:
                cost += len(self.input_names[parent]) + len(show(parent.value, max_value_chars)) + 4
        return cost

    def _select(self, max_chars: int, max_value_chars: int, max_doc_chars: int,
                outputs: set[Node]) -> set[Message]:
        """The nodes to show: nearest first (outputs and first errors before all), while they fit."""
        queue = [(self.closeness[n], self.position[n], n) for n in self.messages]
        heapq.heapify(queue)
        budget = max_chars - 120 - 2 * _COLLAPSE_LINE_CHARS  # section titles, two gaps
        kept: set[Message] = set()
        documented: set[str] = set()
        listed: set[Node] = set()
        while queue:
            _, _, node = heapq.heappop(queue)
            cost = self._cost(node, max_value_chars, max_doc_chars, documented, listed)
            if kept and cost > budget:
                break
            kept.add(node)
            budget -= cost
            documented.add(node.op.name)
            listed.update(self.inputs_of[node])
        return kept


def _collapse(dropped: list[Message]) -> str:
    counts = Counter(node.op.name for node in dropped)
    common = ", ".join(f"{name} ×{count}" for name, count in counts.most_common(3))
    others = len(counts) - 3
    if others > 0:
        common += f" and {others} other ops"
    noun = "op" if len(dropped) == 1 else "ops"
    return f"# … {len(dropped)} {noun} omitted ({common})"


def _clip(run: RenderedRun, max_chars: int) -> RenderedRun:
    """Drop lines from the longest sections until the text fits; the last resort of a budget."""
    sections = [run.code, run.documentation, run.inputs, run.intermediate, run.outputs, run.errors]
    while len(run.text()) > max_chars and any(len(lines) > 1 for lines in sections):
        longest = max(sections, key=lambda lines: sum(map(len, lines)) if len(lines) > 1 else -1)
        del longest[len(longest) // 2]
    if len(run.text()) > max_chars:
        for lines in sections:
            lines[:] = [truncate(line, max(MIN_VALUE_CHARS, max_chars // 8)) for line in lines]
    while len(run.text()) > max_chars and any(sections):
        longest = max(sections, key=lambda lines: sum(map(len, lines)))
        longest.pop()
    return run


def _identifier(name: str) -> str:
    cleaned = "".join(c if c.isalnum() or c == "_" else "_" for c in name.rsplit(".", 1)[-1])
    return cleaned if cleaned and not cleaned[0].isdigit() else f"op_{cleaned}"


__all__ = ["CHARS_PER_TOKEN", "MIN_VALUE_CHARS", "RenderedRun", "estimate_tokens", "render_run",
           "render_variables", "show", "show_block", "truncate"]
