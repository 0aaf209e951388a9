"""Budgets across a cluster: one ledger actor holds every active budget; workers reserve there.

When a Ray ``map`` starts under active budgets (``go.budget``, the trainer's meter), the
driver opens a session on its ``BudgetService`` actor (one per driver process, started on
first use) holding a copy of each, with what was already spent.
Each task runs under ``RemoteBudget`` proxies: reserve, settle and release are calls to the
actor, which serves them one at a time, so ``max_calls``/``max_tokens``/``max_usd`` hold
exactly however many workers spend at once (``calls``/``pending`` on a proxy are the
actor's as of its last call). When the map ends the driver replays the calls the
actor settled onto its own budgets, so they count what the workers spent.
"""

from __future__ import annotations

from typing import Any

from graphopt.errors import BudgetExceeded
from graphopt.llm.ledger import Budget
from graphopt.llm.reply import Reply, Usage


Standing = tuple[int | None, int | None, float | None, int, int, float]


def standing(limits: Budget) -> Standing:
    """A budget's limits and what it has spent, as plain data for the actor."""
    return limits.max_calls, limits.max_tokens, limits.max_usd, limits.calls, limits.tokens, limits.usd


def _copy(state: Standing) -> Budget:
    max_calls, max_tokens, max_usd, calls, tokens, usd = state
    copy = Budget(max_calls=max_calls, max_tokens=max_tokens, max_usd=max_usd)
    copy.calls, copy.tokens, copy.usd = calls, tokens, usd
    return copy


def _spent(model: str, tokens: int, usd: float) -> Reply:
    return Reply(text="", model=model, usage=Usage(prompt_tokens=tokens), cost=usd)


class BudgetService:
    """The ledger actor's body: per open map, copies of the driver's budgets and the calls
    settled on them. One actor per driver process serves every map (``open``/``close``)."""

    def __init__(self) -> None:
        self.budgets: dict[str, list[Budget]] = {}
        self.settled: dict[str, list[tuple[int, str, int, float]]] = {}

    def open(self, session: str, budgets: list[Standing]) -> None:
        self.budgets[session] = [_copy(state) for state in budgets]
        self.settled[session] = []

    def close(self, session: str) -> list[tuple[int, str, int, float]]:
        """The calls settled in ``session``, which is forgotten here."""
        self.budgets.pop(session, None)
        return self.settled.pop(session, [])

    def reserve(self, at: tuple[str, int], model: str, tokens: int, usd: float
                ) -> tuple[str | None, int, int]:
        """``(None, calls, pending)`` once reserved, else why the budget refuses."""
        limits = self.budgets[at[0]][at[1]]
        try:
            limits.reserve(model, tokens=tokens, usd=usd)
        except BudgetExceeded as err:
            return str(err), limits.calls, limits.pending
        return None, limits.calls, limits.pending

    def settle(self, at: tuple[str, int], model: str, spent: tuple[int, float], tokens: int,
               usd: float) -> tuple[int, int]:
        limits = self.budgets[at[0]][at[1]]
        limits.settle(_spent(model, *spent), tokens=tokens, usd=usd)
        self.settled[at[0]].append((at[1], model, *spent))
        return limits.calls, limits.pending

    def release(self, at: tuple[str, int], tokens: int, usd: float) -> tuple[int, int]:
        limits = self.budgets[at[0]][at[1]]
        limits.release(tokens=tokens, usd=usd)
        return limits.calls, limits.pending

    def token_room(self, at: tuple[str, int]) -> int | None:
        return self.budgets[at[0]][at[1]].token_room()


class RemoteBudget(Budget):
    """A budget on a worker whose every reservation goes to the ledger actor."""

    __slots__ = ("service", "at")

    def __init__(self, service: Any, at: tuple[str, int], max_calls: int | None, max_tokens: int | None,
                 max_usd: float | None) -> None:
        super().__init__(max_calls=max_calls, max_tokens=max_tokens, max_usd=max_usd)
        self.service = service
        self.at = at

    def __reduce__(self) -> tuple[Any, ...]:
        return RemoteBudget, (self.service, self.at, self.max_calls, self.max_tokens, self.max_usd)

    def _ask(self, method: str, *args: Any) -> Any:
        import ray  # only ever built by the Ray executor, on a process running Ray

        return ray.get(getattr(self.service, method).remote(self.at, *args))

    def reserve(self, model: str, *, tokens: int = 0, usd: float = 0.0) -> None:
        refused, self.calls, self.pending = self._ask("reserve", model, tokens, usd)
        if refused is not None:
            raise BudgetExceeded(refused, budget=self)

    def settle(self, reply: Reply, *, tokens: int = 0, usd: float = 0.0) -> None:
        self.calls, self.pending = self._ask("settle", reply.model,
                                             (reply.usage.total_tokens, reply.cost), tokens, usd)

    def release(self, *, tokens: int = 0, usd: float = 0.0) -> None:
        self.calls, self.pending = self._ask("release", tokens, usd)

    def token_room(self) -> int | None:
        return self._ask("token_room")  # type: ignore[no-any-return]


def replay(budgets: tuple[Budget, ...], settled: list[tuple[int, str, int, float]]) -> None:
    """Count on the driver's budgets the calls the actor settled (the same limits held there)."""
    for index, model, tokens, usd in settled:
        target = budgets[index]
        target.reserve(model)
        target.settle(_spent(model, tokens, usd))
