"""``evaluate``: score a workflow's current values on a dataset, without optimizing anything.

DSPy's ``Evaluate`` for graphopt: every example goes through the same ``Runner`` and evaluation
cache the trainer uses (so a (values, example) pair already scored is not run again), on at
most ``concurrency`` threads. The result lists each example's outcome (output, score, error,
whether it came from the cache), the mean score, the failures, and the model usage and cost.
"""

from __future__ import annotations

import contextlib
import os
from typing import Any, Callable, Iterator

from pydantic import BaseModel, ConfigDict, Field

from graphopt.graph.module import Module
from graphopt.llm.ledger import Budget, budget as budget_block
from graphopt.llm.registry import usage_ledger
from graphopt.runtime.executor import Executor, executor_for
from graphopt.train.cache import EvalCache
from graphopt.train.data import Data, load_examples
from graphopt.train.evaluate import Metric, Runner
from graphopt.train.history import UsageTotals
from graphopt.train.setup import collect_params, default_namespace
from graphopt.train.values import values_hash


class ExampleResult(BaseModel):
    """One example's outcome: the prediction as JSON text (cut short), score, feedback text, error."""

    model_config = ConfigDict(frozen=True)

    id: str
    input: Any
    target: Any = None
    output: str = ""
    score: float
    text: str | None = None
    error: str | None = None
    cached: bool = False


class EvaluationResult(BaseModel):
    """What ``go.evaluate`` returns: per-example results, their mean score, failures and usage."""

    model_config = ConfigDict(frozen=True)

    examples: list[ExampleResult]
    usage: UsageTotals = Field(default_factory=UsageTotals)

    @property
    def score(self) -> float:
        """The mean score over all examples (failures count with their error score)."""
        return sum(e.score for e in self.examples) / len(self.examples) if self.examples else 0.0

    @property
    def errors(self) -> list[ExampleResult]:
        """The examples whose workflow or metric failed."""
        return [e for e in self.examples if e.error is not None]

    def summary(self) -> str:
        """One line: examples, mean score, failures, cached outcomes, model calls and cost."""
        cached = sum(e.cached for e in self.examples)
        return (f"{len(self.examples)} examples, mean score {self.score:.3f}, {len(self.errors)} "
                f"errors, {cached} from the cache; {self.usage.calls} model calls, "
                f"{self.usage.tokens} tokens, ${self.usage.cost:.4f}")


def evaluate(workflow: Callable[..., Any] | Module, data: Data, metric: Metric, *,
             concurrency: int = 4, cache: EvalCache | str | os.PathLike[str] | None = None,
             namespace: str | None = None, error_score: float = 0.0, target_key: str = "target",
             budget: Budget | None = None, executor: str | Executor | None = None,
             address: str | None = None) -> EvaluationResult:
    """Run ``workflow`` on every example of ``data`` and judge each result with ``metric``.

    ``workflow``, ``data`` and ``metric`` are what ``go.optimize`` takes; a workflow or metric
    that raises scores that example ``error_score`` and records the error. ``cache`` (a
    directory or an ``EvalCache``) keeps outcomes across calls and runs, keyed like the
    trainer's: values, example, workflow and metric code; ``namespace`` must match the one
    given to ``go.optimize`` to share its entries. ``budget`` caps model calls, tokens or USD.
    ``executor``/``address``: where the runs happen, as for ``go.optimize`` (docs/ray.md).
    """
    examples = load_examples(data, target_key=target_key)
    if not examples:
        raise ValueError("data expects at least one example, got none")
    call = workflow.forward if isinstance(workflow, Module) else workflow  # type: ignore[attr-defined]
    store = cache if isinstance(cache, EvalCache) else EvalCache(cache)
    named = f"{namespace}|" if namespace is not None else ""
    runner = Runner(call, metric, collect_params(workflow, []), cache=store,
                    namespace=named + default_namespace(call, metric), concurrency=concurrency,
                    error_score=error_score,
                    executor=executor_for(executor, concurrency=concurrency, address=address))
    current = values_hash(runner.params)
    cached = [store.get(runner.key(current, e)) is not None for e in examples]
    meter = Budget()
    cached_before = usage_ledger().cached_calls
    with _metered(meter, budget):
        outcomes = runner.outcomes(examples)
    usage = UsageTotals(calls=meter.calls, cached_calls=usage_ledger().cached_calls - cached_before,
                        tokens=meter.tokens, cost=meter.usd, evaluations=runner.evaluations,
                        distinct_points=runner.distinct_points)
    results = [ExampleResult(id=e.id, input=e.input, target=e.target, output=o.output,
                             score=o.value, text=o.text,
                             error=o.error, cached=hit)
               for e, o, hit in zip(examples, outcomes, cached)]
    return EvaluationResult(examples=results, usage=usage)


@contextlib.contextmanager
def _metered(meter: Budget, budget: Budget | None) -> Iterator[None]:
    with contextlib.ExitStack() as stack:
        stack.enter_context(budget_block(meter))
        if budget is not None:
            stack.enter_context(budget_block(budget))
        yield
