"""``LLMOptimizer``: the base of optimizers that ask a model for new parameter values.

It resolves the model to a client tagged with the optimizer's name (so the usage ledger tells
optimizers apart), accepts text, code and number/choice parameters, and keeps a report of the
last step: what was committed, what was refused and why nothing changed when nothing did.
Budgets apply as to any call: ``BudgetExceeded`` leaves every parameter unchanged.
"""

from __future__ import annotations

from typing import Any, Mapping

from graphopt.graph.node import Param
from graphopt.llm.client import Client
from graphopt.llm.registry import get
from graphopt.optim.optimizer import Optimizer, ParamsArg, Rejection
from graphopt.plugins.manager import PluginManager

LLM_KINDS = frozenset({"text", "code", "int", "float", "choice"})


class Proposal(dict):  # type: ignore[type-arg]
    """New values by parameter, plus what the step learnt: reasoning, refusals, the reason for
    changing nothing, and the record the optimizer keeps once the step commits."""

    __slots__ = ("reasoning", "errors", "reason", "record")

    def __init__(self, values: Mapping[Param, Any] | None = None, *, reasoning: str = "",
                 errors: Mapping[str, str] | None = None, reason: str | None = None,
                 record: Any = None) -> None:
        super().__init__(values or {})
        self.reasoning = reasoning
        self.errors = dict(errors or {})
        self.reason = reason
        self.record = record


class LLMOptimizer(Optimizer):
    """Base class: a tagged client, the LLM-editable kinds, and ``last_step``.

    ``llm`` is a model string for ``go.llm.get`` (``None``: ``$GRAPHOPT_MODEL`` or the embedded
    model) or a ``Client``. Subclasses implement ``propose()`` returning a ``Proposal`` and
    ``remember(record)`` to fold a committed step's record into their state. LLM optimizers are
    gated (``Optimizer``'s acceptance gate): with a closure, a proposal scoring worse than the
    current values is rejected, never remembered; ``on_rejected`` may record it as a scored
    candidate instead.
    """

    gated = True

    kinds = LLM_KINDS

    def __init__(self, params: ParamsArg, defaults: Mapping[str, Any], *,
                 llm: str | Client | None = None, plugin_manager: PluginManager | None = None) -> None:
        super().__init__(params, defaults, plugin_manager=plugin_manager)
        client = llm if isinstance(llm, Client) else get(llm, plugin_manager=self.plugin_manager)
        self.client = client.with_tag(self.name)
        self.last_step: dict[str, Any] | None = None

    def commit(self, proposal: Mapping[Param, Any]) -> dict[str, Any]:
        """Validate and assign as ``Optimizer.commit``; then keep the step's report and record."""
        committed = super().commit(proposal)
        if isinstance(proposal, Proposal):
            self.last_step = {"committed": committed, "errors": dict(proposal.errors),
                              "reasoning": proposal.reasoning, "reason": proposal.reason}
            if proposal.record is not None:
                self.remember(proposal.record)
        return committed

    def on_rejected(self, proposal: Mapping[Param, Any], rejection: Rejection) -> None:
        """Report the rejected step in ``last_step``; its record is not remembered as committed."""
        self.last_step = {"committed": {}, "errors": dict(getattr(proposal, "errors", {})),
                          "reasoning": getattr(proposal, "reasoning", ""), "reason": rejection.reason,
                          "rejected": {"before": rejection.before, "after": rejection.after,
                                       "params": list(rejection.params)}}

    def remember(self, record: Any) -> None:
        """Fold a committed step's record into the optimizer's state (memory, history)."""


__all__ = ["LLMOptimizer", "LLM_KINDS", "Proposal"]
