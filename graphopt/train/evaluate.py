"""Running the workflow on examples: traced, in parallel (bounded), each run independent.

``Runner.outcomes`` scores examples through the evaluation cache; ``Runner.forward`` gives the
traced runs ``backward`` needs. One (values, example) pair is run once: a run of an example in
``keep`` (the training set) is traced with gradients and kept (the ``max_kept`` most recent),
and ``forward`` hands that very run back instead of running again. A run whose tensors changed
in place since is dropped, and one holding tensors is handed back once (autograd frees its graph). Every real run is counted (``evaluations``,
``distinct_points``) and may be capped (``max_evaluations``, reserved before the run starts).
A metric that raises, or returns NaN or an infinite number, makes that example a failure
scored ``error_score``, with a warning naming the example. Runs happen in a copy of the
caller's context, so budgets apply in the worker threads and traces stay apart.
"""

from __future__ import annotations

import asyncio
import inspect
import threading
import warnings
from collections import OrderedDict
from typing import Any, Callable, Mapping, Sequence

import torch

from graphopt.errors import BudgetExceeded
from graphopt.feedback.feedback import ErrorInfo, Feedback
from graphopt.graph.node import Error, Node, Param
from graphopt.optim.evaluation import assigned
from graphopt.runtime.executor import Executor, ThreadExecutor, WorkerLost
from graphopt.runtime.traced import unpack
from graphopt.train.cache import EvalCache, Outcome
from graphopt.train.data import Example
from graphopt.train.remote import RemoteEvaluation, Shipped, carried, outcome_of
from graphopt.train.values import values_hash

Metric = Callable[[Example, Any], Any]


class Run:
    """One traced run: its example, output (a node when the workflow is traced) and feedback."""

    __slots__ = ("example", "output", "feedback")

    def __init__(self, example: Example, output: Any, feedback: Feedback) -> None:
        self.example = example
        self.output = output
        self.feedback = feedback


class Runner:
    """Calls ``workflow`` on examples and judges each result with ``metric``."""

    def __init__(self, workflow: Callable[..., Any], metric: Metric, params: Mapping[str, Param], *,
                 cache: EvalCache, namespace: str, concurrency: int = 4, error_score: float = 0.0,
                 max_evaluations: int | None = None, executor: Executor | None = None) -> None:
        if concurrency < 1:
            raise ValueError(f"concurrency expects an int >= 1, got {concurrency!r}")
        self.workflow = workflow
        self.metric = metric
        self.params = params
        self.cache = cache
        self.namespace = namespace
        self.concurrency = concurrency
        self.error_score = error_score
        self.max_evaluations = max_evaluations
        self.executor = executor if executor is not None else ThreadExecutor(concurrency)
        self.evaluations = 0
        self.points: set[str] = set()
        self.keep: frozenset[str] = frozenset()
        self.max_kept = 256
        self._traced: OrderedDict[str, tuple[Run, tuple[int, ...]]] = OrderedDict()
        self._lock = threading.Lock()

    @property
    def runs(self) -> int:
        """Real runs of the workflow so far (``evaluations``)."""
        return self.evaluations

    @property
    def distinct_points(self) -> int:
        """Distinct (values hash, example key) pairs run so far."""
        return len(self.points)

    def key(self, values: str, example: Example) -> str:
        """The evaluation cache key of ``example`` under the values hashed as ``values``."""
        return self.cache.key(self.namespace, values, example.key)

    # -- one example --------------------------------------------------------------------------
    def run(self, example: Example, key: str | None = None) -> Run:
        """Call the workflow on ``example`` (traced) and judge the result; one evaluation."""
        self._reserve(key if key is not None else self.key(values_hash(self.params), example))
        try:
            output = self._call(example.input)
        except BudgetExceeded:
            raise
        except Exception as exc:  # the workflow's own code failed outside any op
            return Run(example, None, self._failure(exc, ""))
        if isinstance(output, Error):
            if isinstance(output.value, BudgetExceeded):
                raise output.value
            return Run(example, output, self._failure(output.value, output.traceback))
        prediction = output.value if isinstance(output, Node) else output
        return Run(example, output, self._judge(example, prediction))

    def _reserve(self, key: str) -> None:
        """Count one evaluation before it runs; ``BudgetExceeded`` once ``max_evaluations`` are spent."""
        with self._lock:
            if self.max_evaluations is not None and self.evaluations >= self.max_evaluations:
                raise BudgetExceeded(f"max_evaluations={self.max_evaluations} reached: "
                                     f"{self.evaluations} runs of the workflow")
            self.evaluations += 1
            self.points.add(key)

    def _call(self, data: Any) -> Any:
        result = self.workflow(**data) if isinstance(data, dict) else self.workflow(data)
        if inspect.isawaitable(result):
            result = asyncio.run(_awaited(result))
        return result

    def _judge(self, example: Example, prediction: Any) -> Feedback:
        """The metric's feedback; a metric that raises or gives a non-finite number is a failure."""
        try:
            feedback = Feedback.coerce(self.metric(example, prediction))
        except BudgetExceeded:
            raise
        except Exception as exc:
            return Feedback(score=self.error_score, error=ErrorInfo(
                type=type(exc).__name__, message=f"metric raised on example {example.id!r}: {exc}",
                traceback=ErrorInfo.from_exception(exc).traceback))
        problem = feedback.non_finite()
        if problem is None:
            return feedback
        message = (f"metric gave {problem} on example {example.id!r}; counted as a failure "
                   f"(score {self.error_score:g})")
        warnings.warn(message, RuntimeWarning, stacklevel=2)
        return Feedback(score=self.error_score, text=feedback.text,
                        error=ErrorInfo(type="NonFiniteScore", message=message))

    def _failure(self, exc: BaseException, traceback: str) -> Feedback:
        return Feedback(score=self.error_score, error=ErrorInfo.from_exception(exc, traceback or None))

    # -- many examples ------------------------------------------------------------------------
    def map(self, function: Callable[..., Any], items: Sequence[Any]) -> list[Any]:
        """``function`` over ``items`` on at most ``concurrency`` threads, results in order."""
        threads = self.executor if isinstance(self.executor, ThreadExecutor) else ThreadExecutor(self.concurrency)
        return threads.map(function, [_args(i) for i in items])

    def _shipped(self, examples: Sequence[Example], keys: Sequence[str], traced: Sequence[bool]
                 ) -> list[tuple[Outcome, Run | None]]:
        """Run examples on the executor's workers (evaluations reserved here, before shipping);
        a traced run comes back packed and is rebuilt on this process's params. A run whose
        worker died on every try is that example's failure."""
        for key in keys:
            self._reserve(key)
        task = RemoteEvaluation(self)
        results = self.executor.map(task, list(zip(examples, traced)))
        return [self._received(*item) for item in zip(examples, results, traced)]

    def _received(self, example: Example, result: Shipped | WorkerLost, traced: bool
                  ) -> tuple[Outcome, Run | None]:
        if isinstance(result, WorkerLost):
            feedback = self._failure(result, "")
            return outcome_of(feedback, None), Run(example, None, feedback) if traced else None
        outcome, feedback, packed, grads = result
        if feedback is None:
            return outcome, None
        output = unpack(packed, self.params) if packed is not None else None
        if grads and output is not None:  # torch autograd ran on the worker: its grads flow here
            output, feedback = carried(output, feedback, grads, self.params)
        return outcome, Run(example, output, feedback)

    def forward(self, examples: Sequence[Example]) -> list[Run]:
        """Traced runs with gradients, for ``backward``.

        A run kept when these values were scored on the example is handed back as it is; only
        the others are run (their outcomes cached, and kept in turn).
        """
        current = values_hash(self.params)
        keys = [self.key(current, e) for e in examples]
        versions = self._versions()
        with self._lock:
            for key in [k for k, (_, seen) in self._traced.items() if seen != versions]:
                del self._traced[key]  # tensor versions only grow: these never fit again
            kept = [self._traced.pop(k, None) if versions else self._traced.get(k) for k in keys]
        runs: list[Run | None] = [entry[0] if entry is not None else None for entry in kept]
        missing = [i for i, r in enumerate(runs) if r is None]
        if self.executor.ships:
            shipped = self._shipped([examples[i] for i in missing], [keys[i] for i in missing],
                                    [True] * len(missing))
            fresh = [run for _, run in shipped]
        else:
            fresh = self.map(self.run, [(examples[i], keys[i]) for i in missing])
        for index, run in zip(missing, fresh):
            runs[index] = run
            prediction = run.output.value if isinstance(run.output, Node) else run.output
            self.cache.set(keys[index], outcome_of(run.feedback, prediction))
            if not versions:
                self._keep(keys[index], run, versions)
        return runs  # type: ignore[return-value]

    def _keep(self, key: str, run: Run, versions: tuple[int, ...]) -> None:
        with self._lock:
            self._traced[key] = (run, versions)
            self._traced.move_to_end(key)
            while len(self._traced) > self.max_kept:
                self._traced.popitem(last=False)

    def outcomes(self, examples: Sequence[Example],
                 values: Mapping[Param, Any] | None = None) -> list[Outcome]:
        """Each example's outcome with the current values (or ``values``, assigned meanwhile)."""
        if values:
            with assigned(values):
                return self.outcomes(examples)
        current = values_hash(self.params)
        keys = [self.key(current, e) for e in examples]
        found = [self.cache.get(k) for k in keys]
        missing = [i for i, o in enumerate(found) if o is None]
        if missing:
            fresh = (self._shipped_outcomes([examples[i] for i in missing], [keys[i] for i in missing])
                     if self.executor.ships
                     else self.map(self._score, [(examples[i], keys[i]) for i in missing]))
            for index, outcome in zip(missing, fresh):
                found[index] = outcome
                self.cache.set(keys[index], outcome)
        return found  # type: ignore[return-value]

    def _shipped_outcomes(self, examples: Sequence[Example], keys: Sequence[str]) -> list[Outcome]:
        """Outcomes from the executor's workers; training examples' traced runs kept."""
        shipped = self._shipped(examples, keys, [e.id in self.keep for e in examples])
        for key, (_, run) in zip(keys, shipped):
            if run is not None:
                self._keep(key, run, self._versions())
        return [outcome for outcome, _ in shipped]

    def _score(self, example: Example, key: str) -> Outcome:
        if example.id in self.keep:  # a training example: keep the traced run for backward
            with torch.enable_grad():  # grad mode is per thread: set it in the worker
                run = self.run(example, key)
            self._keep(key, run, self._versions())
        else:
            with torch.no_grad():
                run = self.run(example, key)
        prediction = run.output.value if isinstance(run.output, Node) else run.output
        return outcome_of(run.feedback, prediction)

    def _versions(self) -> tuple[int, ...]:
        """In-place versions of tensor values: a kept run is stale once one of them changed."""
        return tuple(p.value._version for p in self.params.values() if isinstance(p.value, torch.Tensor))


def _args(item: Any) -> tuple[Any, ...]:
    return item if isinstance(item, tuple) else (item,)


async def _awaited(awaitable: Any) -> Any:
    return await awaitable


class StepEvaluation:
    """The ``Evaluation`` every optimizer's step gets: this step's minibatch, a fixed pool of
    examples (the validation set, else the training set) to race candidates on, and the run's
    ``accept`` mode for gated optimizers. Every score goes through the runner's cache."""

    def __init__(self, runner: Runner, batch: Sequence[Example], pool: Sequence[Example], *,
                 accept: str | None = None) -> None:
        self.runner = runner
        self.batch = list(batch)
        self.pool = list(pool)
        self.accept = accept

    def __call__(self) -> Feedback:
        outcomes = self.runner.outcomes(self.batch)
        return Feedback(score=sum(o.value for o in outcomes) / max(1, len(outcomes)))

    @property
    def size(self) -> int:
        return len(self.pool)

    def scores(self, values: Mapping[Param, Any], indices: Sequence[int]) -> list[float]:
        return [o.value for o in self.runner.outcomes([self.pool[i] for i in indices], values)]
