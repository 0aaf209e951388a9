"""The Ray executor (``pip install graphopt[ray]``): evaluations as Ray tasks on a cluster.

``RayExecutor`` connects to the running Ray instance, the cluster at ``address``, or starts a
local one (``ray.init()``). ``map`` puts the function in the object store once and submits the
items in chunks, about four per CPU of the cluster (``chunk`` items each when given), so Ray's
per-task cost is paid per chunk; Ray re-runs a chunk whose worker process died, up to
``max_retries`` times, and the items of a chunk lost every time each become a ``WorkerLost``
in their slot so the run goes on. Budgets
active on the driver are enforced across the workers by a ledger actor (``runtime.budgets``);
the model calls a chunk recorded on its worker (reply-cache hits included) come back with its
results and are added to the driver's usage ledger (``runtime.usage``).
Ray is imported only when an executor is first used.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import uuid
from typing import Any, Callable, Sequence

from graphopt.llm.ledger import UsageRecord, active_budgets, budget
from graphopt.llm.local.runtime import engines_from
from graphopt.runtime import usage
from graphopt.runtime.budgets import BudgetService, RemoteBudget, replay, standing
from graphopt.runtime.engines import node_engine
from graphopt.runtime.executor import WorkerLost


def _ray() -> Any:
    try:
        return importlib.import_module("ray")
    except ImportError as err:
        raise ImportError("executor='ray' needs Ray: pip install 'graphopt[ray]'") from err


def _call(function: Callable[..., Any], budgets: tuple[RemoteBudget, ...],
          items: Sequence[tuple[Any, ...]]) -> tuple[list[Any], list[UsageRecord]]:
    """A chunk's results, and the model calls (reply-cache hits included) it recorded here."""
    start = usage.mark()
    with contextlib.ExitStack() as stack:
        stack.enter_context(engines_from(node_engine))  # the embedded model once per node
        for limits in budgets:
            stack.enter_context(budget(limits))
        results = [function(*item) for item in items]
    return results, usage.since(start)


class RayExecutor:
    """Runs calls as Ray tasks; ``concurrency`` is left to the cluster's CPUs (one per task)."""

    ships = True

    def __init__(self, *, address: str | None = None, concurrency: int = 4, max_retries: int = 2,
                 init_options: dict[str, Any] | None = None, chunk: int | None = None) -> None:
        if max_retries < 0:
            raise ValueError(f"max_retries expects an int >= 0, got {max_retries!r}")
        if chunk is not None and chunk < 1:
            raise ValueError(f"chunk expects an int >= 1 or None, got {chunk!r}")
        self.chunk = chunk
        self.address = address
        self.concurrency = concurrency
        self.max_retries = max_retries
        self.init_options = dict(init_options or {})
        self._remote: Any = None
        self._service: Any = None

    def _task(self) -> Any:
        if self._remote is None:
            ray = _ray()
            if not ray.is_initialized():
                os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
                options = {"include_dashboard": False, "log_to_driver": False, **self.init_options}
                ray.init(address=self.address, **options)
            self._remote = ray.remote(max_retries=self.max_retries, num_cpus=1)(_call)
            self._service = ray.remote(num_cpus=0)(BudgetService)
        return self._remote

    def map(self, function: Callable[..., Any], items: Sequence[tuple[Any, ...]]) -> list[Any]:
        if not items:
            return []
        task = self._task()
        ray = _ray()
        shipped = ray.put(function)
        size = self.chunk or max(1, len(items) // (4 * max(1, int(ray.cluster_resources().get("CPU", 1)))))
        chunks = [list(items[i:i + size]) for i in range(0, len(items), size)]
        budgets = active_budgets()
        if not budgets:
            return self._gather(ray, [task.remote(shipped, (), c) for c in chunks], chunks)
        service = self._ledger(ray)
        session = uuid.uuid4().hex
        ray.get(service.open.remote(session, [standing(b) for b in budgets]))
        proxies = tuple(RemoteBudget(service, (session, i), b.max_calls, b.max_tokens, b.max_usd)
                        for i, b in enumerate(budgets))
        try:
            return self._gather(ray, [task.remote(shipped, proxies, c) for c in chunks], chunks)
        finally:
            replay(budgets, ray.get(service.close.remote(session)))

    def _ledger(self, ray: Any) -> Any:
        """This driver's ledger actor, started on first use and found again afterwards."""
        name = f"graphopt-ledger-{ray.get_runtime_context().get_job_id()}"
        return self._service.options(name=name, get_if_exists=True).remote()

    def _gather(self, ray: Any, futures: list[Any], chunks: list[list[Any]]) -> list[Any]:
        lost = (ray.exceptions.WorkerCrashedError, ray.exceptions.NodeDiedError,
                ray.exceptions.LocalRayletDiedError)
        results: list[Any] = []
        for future, chunk in zip(futures, chunks):
            try:
                done, spent = ray.get(future)
            except lost as err:
                results.extend(WorkerLost(f"worker died {self.max_retries + 1} times running this "
                                          f"evaluation: {type(err).__name__}") for _ in chunk)
            except ray.exceptions.RayTaskError as err:
                ray.wait(futures, num_returns=len(futures))  # the others end (and settle) first
                raise err.as_instanceof_cause() from None
            else:
                results.extend(done)
                usage.add(spent)  # the workers' calls count in this process's usage, as on threads
        return results

    def close(self) -> None:
        """Leaves Ray running: the cluster (or local instance) outlives one run."""

    def __enter__(self) -> RayExecutor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
