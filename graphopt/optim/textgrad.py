"""``textgrad``: textual gradients, one model call per edge of the minimal subgraph.

Backward: starting from each output's feedback, every edge (op → one of its inputs on a path to
a parameter) gets one call asking how that input should change; the edges of one wave (nodes
whose every consumer has answered) are sent together, concurrently. Gradients reaching a node
are aggregated as a list. Update: each parameter, with its accumulated gradient (and, with
``momentum=k``, the gradients of its last k steps), gets one call proposing its new value.
"""

from __future__ import annotations

import contextvars
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable, Mapping, Sequence

from graphopt.graph.node import Message, Node, Param
from graphopt.graph.render import CODE_ARGUMENT, render_variables, show, truncate
from graphopt.graph.walk import Subgraph
from graphopt.llm.client import Client
from graphopt.llm.protocol import Message as ChatMessage
from graphopt.optim.echoes import Scaffold
from graphopt.optim.llm_optimizer import LLMOptimizer, Proposal
from graphopt.optim.optimizer import ParamsArg, require_ints
from graphopt.optim.prompt import Run, collect_runs, section
from graphopt.optim.suggest import Verdict, ask
from graphopt.plugins.manager import PluginManager, hookimpl

EDGE_SYSTEM = (
    "You give feedback on one input of one step of a program. You see what the step does, its "
    "inputs, its output and feedback on that output. Say briefly and concretely how the named "
    "input should change so the output earns better feedback. Reply with that feedback only."
)
UPDATE_SYSTEM = (
    "You revise one trainable variable of a program using the feedback gathered about it. "
    "Keep what works, fix what the feedback points at. Code must stay a complete function with "
    "the same name and parameters; numbers must stay within their range; choices must be one "
    "of their options."
)

UPDATE_ASK = "Suggest an improved value for the variable."


class TextGrad(LLMOptimizer):
    """Textual gradients per edge, aggregated per node; one update call per parameter.

    ``momentum``: how many past steps' gradients each update recalls. ``concurrency``: calls in
    flight at once (default: the client's setting). ``max_gradient_chars`` bounds each gradient
    and each aggregate, so every prompt stays bounded whatever the graph's size. All or none by
    default (``partial=True`` commits the valid updates); echoes of the prompt are refused.
    """

    name = "textgrad"

    def __init__(self, params: ParamsArg, *, llm: str | Client | None = None, momentum: int = 0,
                 max_value_chars: int = 400, max_gradient_chars: int = 800,
                 concurrency: int | None = None, max_tokens: int = 512, partial: bool = False,
                 plugin_manager: PluginManager | None = None) -> None:
        require_ints(self.name, {"momentum": (momentum, 0), "max_value_chars": (max_value_chars, 20),
                                 "max_gradient_chars": (max_gradient_chars, 40)})
        super().__init__(params, {}, llm=llm, plugin_manager=plugin_manager)
        self.momentum = momentum
        self.max_value_chars = max_value_chars
        self.max_gradient_chars = max_gradient_chars
        self.concurrency = concurrency or self.client.settings.concurrency
        self.max_tokens = max_tokens
        self.partial = partial

    # -- backward -----------------------------------------------------------------------------
    def backward(self, runs: Sequence[Run]) -> dict[Param, list[str]]:
        """Textual gradients reaching each optimized parameter over ``runs`` (one call per edge)."""
        passes = [_Pass(run, self.param_names) for run in runs]
        while True:
            edges = [(p, child, parent) for p in passes for child, parent in p.ready_edges()]
            if not edges:
                break
            prompts = [self.edge_prompt(p, child, parent) for p, child, parent in edges]
            replies = self.client.batch(prompts, concurrency=self.concurrency,
                                        max_tokens=self.max_tokens)
            for (p, child, parent), reply in zip(edges, replies):
                p.deliver(child, parent, truncate(reply.text.strip(), self.max_gradient_chars))
        gradients: dict[Param, list[str]] = {}
        for p in passes:
            for target in self.params:
                gradients.setdefault(target, []).extend(p.gradients.get(target, []))
        return {t: g for t, g in gradients.items() if g}

    def edge_prompt(self, backward_pass: _Pass, child: Message, parent: Node) -> list[ChatMessage]:
        """The messages asking how ``parent`` should change, given feedback on ``child``."""
        limit = self.max_value_chars
        names = backward_pass.names
        lines = [f"Operation: {child.op.name}"]
        if child.op.doc:
            lines.append(f"Documentation: {truncate(child.op.doc, 300)}")
        lines.append("Inputs:")
        asked = []
        for argument, node in zip(child.arg_names, child.parents):
            label = "source code of the operation" if argument == CODE_ARGUMENT else argument
            value = show(node.value, limit)
            if node is parent:
                asked.append(label)
                if node in names:
                    value += f"  (the trainable variable {names[node]!r}, {node.kind.describe()})"  # type: ignore[attr-defined]
            lines.append(f"  {label} = {value}")
        for argument, constant in (child.constants or {}).items():
            lines.append(f"  {argument} = {show(constant, limit)}")
        lines.append(f"Output: {show(child.value, limit)}")
        lines.append("Feedback on the output:\n" + backward_pass.feedback_of(child, self.max_gradient_chars))
        lines.append(f"How should the input {' and '.join(asked)} change?")
        return [{"role": "system", "content": EDGE_SYSTEM}, {"role": "user", "content": "\n".join(lines)}]

    # -- update -------------------------------------------------------------------------------
    def update_prompt(self, target: Param, gradients: Sequence[str]) -> list[ChatMessage]:
        """The messages asking for ``target``'s new value from its accumulated gradient."""
        variable = render_variables([target], self.param_names, max_value_chars=4 * self.max_value_chars)
        parts = [section("Variable", variable),
                 section("Feedback about it", _aggregate(gradients, 2 * self.max_gradient_chars))]
        past = self.state.get(target, {}).get("gradients", [])
        if past:
            parts.append(section("Feedback from earlier steps, oldest first",
                                 _aggregate(past, self.max_gradient_chars)))
        parts.append(UPDATE_ASK)
        return [{"role": "system", "content": UPDATE_SYSTEM}, {"role": "user", "content": "\n\n".join(parts)}]

    def propose(self, closure: Callable[[], Any] | None = None) -> Proposal:
        runs = collect_runs(self.params)
        if not runs:
            return Proposal(reason="no feedback received since the last zero_feedback()")
        gradients = self.backward(runs)
        targets = [t for t in self.params if t in gradients]
        verdicts = self._updates(targets, gradients)
        values: dict[Param, Any] = {}
        errors: dict[str, str] = {}
        reasons = []
        for target, verdict in zip(targets, verdicts):
            values.update(verdict.values)
            errors.update(verdict.errors)
            if verdict.reason:
                reasons.append(f"{self.param_names[target]}: {verdict.reason}")
        if errors and not self.partial:
            values = {}
        reason = None if values else ("; ".join(reasons) or "no gradient reached any parameter")
        reasoning = "\n".join(f"{self.param_names[t]}: {v.reasoning}" for t, v in zip(targets, verdicts))
        record = {self.param_names[t]: _aggregate(g, self.max_gradient_chars) for t, g in gradients.items()}
        return Proposal(values, reasoning=reasoning, errors=errors, reason=reason, record=record)

    def _updates(self, targets: list[Param], gradients: Mapping[Param, list[str]]) -> list[Verdict]:
        def one(target: Param) -> Verdict:
            messages = self.update_prompt(target, gradients[target])
            scaffold = Scaffold.of(messages, self.param_names.values(), instructions=(UPDATE_ASK,))
            return ask(self.client, messages, [target], self.param_names, partial=self.partial,
                       scaffold=scaffold, max_tokens=self.max_tokens)

        if len(targets) <= 1:
            return [one(t) for t in targets]
        with ThreadPoolExecutor(max_workers=min(self.concurrency, len(targets)),
                                thread_name_prefix="graphopt-textgrad") as pool:
            futures = [pool.submit(contextvars.copy_context().run, one, t) for t in targets]
            return [future.result() for future in futures]

    def remember(self, record: Any) -> None:
        if not self.momentum:
            return
        by_name = {n: p for p, n in self.param_names.items()}
        for name, gradient in record.items():
            state = self.state.setdefault(by_name[name], {})
            state["gradients"] = [*state.get("gradients", []), gradient][-self.momentum:]


class _Pass:
    """The textual backward pass over one run: gradients per node, edges still to answer."""

    __slots__ = ("run", "names", "gradients", "waiting", "frontier", "members")

    def __init__(self, run: Run, names: Mapping[Param, str]) -> None:
        subgraph: Subgraph = run.subgraph
        self.run = run
        self.names = names
        self.members = set(subgraph.nodes)
        self.gradients: dict[Node, list[str]] = {run.output: [run.feedback.describe()]}
        self.waiting: dict[Node, int] = {}
        for node in subgraph.nodes:
            for parent in self._inputs(node):
                self.waiting[parent] = self.waiting.get(parent, 0) + 1
        self.frontier: list[Node] = [run.output]

    def _inputs(self, node: Node) -> list[Node]:
        """``node``'s distinct parents on a path to a parameter (each edge asked once)."""
        if not isinstance(node, Message):
            return []
        seen: list[Node] = []
        for parent in node.parents:
            if parent in self.members and all(parent is not s for s in seen):
                seen.append(parent)
        return seen

    def ready_edges(self) -> list[tuple[Message, Node]]:
        """Edges out of the nodes that got every gradient they will get since the last call."""
        ready, self.frontier = self.frontier, []
        return [(node, parent) for node in ready if isinstance(node, Message)
                for parent in self._inputs(node)]

    def deliver(self, child: Message, parent: Node, gradient: str) -> None:
        self.gradients.setdefault(parent, []).append(gradient)
        self.waiting[parent] -= 1
        if not self.waiting[parent]:
            self.frontier.append(parent)

    def feedback_of(self, node: Node, max_chars: int) -> str:
        return _aggregate(self.gradients.get(node, []), max_chars)


def _aggregate(gradients: Sequence[str], max_chars: int) -> str:
    """Several gradients as one bounded list (a single one as it is)."""
    if len(gradients) == 1:
        return truncate(gradients[0], max_chars)
    share = max(max_chars // max(len(gradients), 1) - 2, 40)
    return truncate("\n".join(f"- {truncate(g, share)}" for g in gradients), max_chars)


@hookimpl
def graphopt_optimizers() -> list[type]:
    return [TextGrad]
