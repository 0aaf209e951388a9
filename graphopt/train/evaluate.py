"""Running the workflow on examples: traced, in parallel (bounded), each run independent.

``Runner.forward`` runs examples for training: traced, with torch gradients, returning each output
node and its feedback so the trainer can call ``backward`` in example order. ``Runner.outcomes``
only scores (no gradients), through the evaluation cache. Both run every example in a copy of the
caller's context, so budgets apply in the worker threads and traces stay apart.
"""

from __future__ import annotations

import asyncio
import contextvars
import inspect
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable, Mapping, Sequence

import torch

from graphopt.errors import BudgetExceeded
from graphopt.feedback.feedback import ErrorInfo, Feedback
from graphopt.graph.node import Error, Node, Param
from graphopt.optim.evaluation import assigned
from graphopt.train.cache import EvalCache, Outcome, describe_json
from graphopt.train.data import Example
from graphopt.train.values import values_hash

Metric = Callable[[Example, Any], Any]


class Run:
    """One traced run: its example, output (a node when the workflow is traced) and feedback."""

    __slots__ = ("example", "output", "feedback")

    def __init__(self, example: Example, output: Any, feedback: Feedback) -> None:
        self.example = example
        self.output = output
        self.feedback = feedback


def outcome_of(feedback: Feedback, prediction: Any) -> Outcome:
    """The cacheable part of a run's feedback."""
    loss = float(feedback.loss.detach()) if feedback.loss is not None else None
    error = f"{feedback.error.type}: {feedback.error.message}" if feedback.error is not None else None
    return Outcome(score=feedback.score, loss=loss, text=feedback.text, error=error,
                   output=describe_json(prediction))


class Runner:
    """Calls ``workflow`` on examples and judges each result with ``metric``."""

    def __init__(self, workflow: Callable[..., Any], metric: Metric, params: Mapping[str, Param], *,
                 cache: EvalCache, namespace: str, concurrency: int = 4, error_score: float = 0.0) -> None:
        if concurrency < 1:
            raise ValueError(f"concurrency expects an int >= 1, got {concurrency!r}")
        self.workflow = workflow
        self.metric = metric
        self.params = params
        self.cache = cache
        self.namespace = namespace
        self.concurrency = concurrency
        self.error_score = error_score
        self.runs = 0

    # -- one example --------------------------------------------------------------------------
    def run(self, example: Example) -> Run:
        """Call the workflow on ``example`` (traced) and judge the result."""
        self.runs += 1
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
        return Run(example, output, Feedback.coerce(self.metric(example, prediction)))

    def _call(self, data: Any) -> Any:
        result = self.workflow(**data) if isinstance(data, dict) else self.workflow(data)
        if inspect.isawaitable(result):
            result = asyncio.run(_awaited(result))
        return result

    def _failure(self, exc: BaseException, traceback: str) -> Feedback:
        return Feedback(score=self.error_score, error=ErrorInfo.from_exception(exc, traceback or None))

    # -- many examples ------------------------------------------------------------------------
    def map(self, function: Callable[[Example], Any], examples: Sequence[Example]) -> list[Any]:
        """``function`` over ``examples`` on at most ``concurrency`` threads, results in order."""
        if self.concurrency == 1 or len(examples) <= 1:
            return [function(e) for e in examples]
        workers = min(self.concurrency, len(examples))
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="graphopt-eval") as pool:
            futures = [pool.submit(contextvars.copy_context().run, function, e) for e in examples]
            return [f.result() for f in futures]

    def forward(self, examples: Sequence[Example]) -> list[Run]:
        """Traced runs with gradients, for ``backward``; their outcomes fill the cache too."""
        runs = self.map(self.run, examples)
        current = values_hash(self.params)
        for run in runs:
            prediction = run.output.value if isinstance(run.output, Node) else run.output
            self.cache.set(self.cache.key(self.namespace, current, run.example.id),
                           outcome_of(run.feedback, prediction))
        return runs

    def outcomes(self, examples: Sequence[Example],
                 values: Mapping[Param, Any] | None = None) -> list[Outcome]:
        """Each example's outcome with the current values (or ``values``, assigned meanwhile)."""
        if values:
            with assigned(values):
                return self.outcomes(examples)
        current = values_hash(self.params)
        keys = [self.cache.key(self.namespace, current, e.id) for e in examples]
        found = [self.cache.get(k) for k in keys]
        missing = [i for i, o in enumerate(found) if o is None]
        if missing:
            fresh = self.map(self._score, [examples[i] for i in missing])
            for index, outcome in zip(missing, fresh):
                found[index] = outcome
                self.cache.set(keys[index], outcome)
        return found  # type: ignore[return-value]

    def _score(self, example: Example) -> Outcome:
        with torch.no_grad():  # grad mode is per thread: set it in the worker
            run = self.run(example)
        prediction = run.output.value if isinstance(run.output, Node) else run.output
        return outcome_of(run.feedback, prediction)


async def _awaited(awaitable: Any) -> Any:
    return await awaitable


class StepEvaluation:
    """The ``Evaluation`` a search optimizer gets: this step's minibatch, and a fixed pool of
    examples (the validation set, else the training set) to race candidates on."""

    def __init__(self, runner: Runner, batch: Sequence[Example], pool: Sequence[Example]) -> None:
        self.runner = runner
        self.batch = list(batch)
        self.pool = list(pool)

    def __call__(self) -> Feedback:
        outcomes = self.runner.outcomes(self.batch)
        return Feedback(score=sum(o.value for o in outcomes) / max(1, len(outcomes)))

    @property
    def size(self) -> int:
        return len(self.pool)

    def scores(self, values: Mapping[Param, Any], indices: Sequence[int]) -> list[float]:
        return [o.value for o in self.runner.outcomes([self.pool[i] for i in indices], values)]
