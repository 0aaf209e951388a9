"""``Trainer`` and ``optimize``: minibatches, optimizers, validation, checkpoints, history.

One step: zero feedback, run the minibatch (traced, in parallel), send each run's feedback
backward in example order, step every optimizer (search optimizers get a ``StepEvaluation``),
validate when due, then append the history line and write the checkpoint. A kill loses at most the
step in flight; ``resume=path`` restores values, optimizer states, position and random states.
"""

from __future__ import annotations

import contextlib
import math
import os
import random
import time
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence

import torch

from graphopt.errors import BudgetExceeded, CheckpointError, OptimizerStepError, ParamValidationError
from graphopt.feedback.backward import backward
from graphopt.graph.module import Module
from graphopt.graph.node import Node, Param
from graphopt.llm.ledger import Budget, budget as budget_block
from graphopt.llm.registry import usage_ledger
from graphopt.optim.optimizer import Optimizer
from graphopt.plugins.manager import PluginManager
from graphopt.train.cache import EvalCache
from graphopt.train.checkpoint import Best, Checkpoint, Position, rng_state, set_rng_state
from graphopt.train.data import Example, load_examples
from graphopt.train.evaluate import Metric, Runner, StepEvaluation, outcome_of
from graphopt.train.history import OptimizerRecord, StepRecord, UsageTotals, append_history, write_history
from graphopt.train.progress import Bar, Quiet, Reporter
from graphopt.train.result import TrainResult
from graphopt.train.values import restore, snapshot, values_hash

Data = Iterable[Any] | str | os.PathLike[str]


class Trainer:
    """Optimizes ``workflow``'s parameters over a dataset with one or more optimizers.

    ``workflow`` is a callable built from ``@go.op``s (called with an example's input: keyword
    arguments for a dict, else one argument) or a ``go.Module`` (its ``forward``). ``metric(example,
    prediction)`` returns a ``Feedback`` or anything ``Feedback.coerce`` takes; higher scores are
    better, a loss alone counts as its negation. Each optimizer owns its own parameters.
    """

    def __init__(self, workflow: Callable[..., Any] | Module, train: Data, *, metric: Metric,
                 optimizers: Optimizer | Sequence[Optimizer], val: Data | None = None,
                 epochs: int = 1, batch_size: int = 8, budget: Budget | None = None, seed: int = 0,
                 concurrency: int = 4, patience: int | None = None, min_delta: float = 0.0,
                 eval_every: int | None = None, checkpoint: str | os.PathLike[str] | None = None,
                 history: str | os.PathLike[str] | None = None,
                 resume: str | os.PathLike[str] | None = None,
                 cache: EvalCache | str | os.PathLike[str] | None = None, namespace: str | None = None,
                 quiet: bool = False, reporter: Reporter | None = None, restore_best: bool = True,
                 error_score: float = 0.0, target_key: str = "target",
                 config: Mapping[str, Any] | None = None,
                 plugin_manager: PluginManager | None = None) -> None:
        for label, number, low in (("epochs", epochs, 0), ("batch_size", batch_size, 1),
                                   ("concurrency", concurrency, 1)):
            if isinstance(number, bool) or not isinstance(number, int) or number < low:
                raise ValueError(f"{label} expects an int >= {low}, got {number!r}")
        if eval_every is not None and eval_every < 1:
            raise ValueError(f"eval_every expects an int >= 1 or None, got {eval_every!r}")
        self.workflow = workflow
        self.call = workflow.forward if isinstance(workflow, Module) else workflow  # type: ignore[attr-defined]
        self.metric = metric
        self.optimizers = [optimizers] if isinstance(optimizers, Optimizer) else list(optimizers)
        if not self.optimizers:
            raise ValueError("optimizers expects at least one optimizer, got none")
        self.train_set = load_examples(train, target_key=target_key)
        if not self.train_set:
            raise ValueError("train expects at least one example, got none")
        self.val_set = load_examples(val, target_key=target_key) if val is not None else []
        self.epochs = epochs
        self.batch_size = batch_size
        self.budget = budget
        self.seed = seed
        self.patience = patience
        self.min_delta = min_delta
        self.eval_every = eval_every
        self.checkpoint_path = Path(checkpoint) if checkpoint is not None else None
        self.history_path = Path(history) if history is not None else None
        self.resume_path = Path(resume) if resume is not None else None
        self.cache = cache if isinstance(cache, EvalCache) else EvalCache(cache)
        self.restore_best = restore_best
        self.config = dict(config) if config is not None else None
        self.plugin_manager = plugin_manager
        self.reporter: Reporter = reporter or (Quiet() if quiet else Bar())
        self.params = collect_params(workflow, self.optimizers)
        self.runner = Runner(self.call, metric, self.params, cache=self.cache,
                             namespace=namespace or default_namespace(self.call, metric),
                             concurrency=concurrency, error_score=error_score)
        self.rng = random.Random(seed)
        self.position = Position()
        self.history: list[StepRecord] = []
        self.best: Best | None = None
        self.usage = UsageTotals()
        self._saved: Checkpoint | None = None
        self._by_id = {e.id: e for e in self.train_set}

    # -- the loop -----------------------------------------------------------------------------
    def fit(self) -> TrainResult:
        """Run (or continue) training; returns the best values, the history and the usage."""
        if self.resume_path is not None:
            finished = self._load(self.resume_path)
            if finished is not None:
                return self._result(finished)
        else:
            torch.manual_seed(self.seed)
            if self.history_path is not None:
                write_history(self.history_path, [])  # a fresh run starts a fresh history
        meter = Budget()
        stopped = "completed"
        self.reporter.start(self.total_steps, self.position.step)
        try:
            with contextlib.ExitStack() as stack:
                stack.enter_context(budget_block(meter))
                if self.budget is not None:
                    stack.enter_context(budget_block(self.budget))
                stopped = self._loop(meter)
        except BudgetExceeded:
            stopped = "budget"
            if self._saved is not None:
                self._restore_saved(self._saved)
        finally:
            self.reporter.stop()
        if stopped != "budget":
            self._save(finished=stopped)
        if self.restore_best and self.best is not None:
            restore(self.params, self.best.values)
        return self._result(stopped)

    @property
    def total_steps(self) -> int:
        return self.epochs * math.ceil(len(self.train_set) / self.batch_size)

    def _loop(self, meter: Budget) -> str:
        if not self.history:
            started = time.perf_counter()
            before = self._usage(meter)
            score = self.validate()
            self.best = Best(score=score, step=0, values=snapshot(self.params))
            self._record(StepRecord(step=0, epoch=0, values_hash=values_hash(self.params),
                                    val_score=score, best_score=score), meter, before, started)
        while self.position.epoch < self.epochs:
            if not self.position.order:
                order = [e.id for e in self.train_set]
                self.rng.shuffle(order)
                self.position.order = order
            while self.position.offset < len(self.position.order):
                stop = self._step(meter)
                if stop is not None:
                    return stop
            self.position.epoch += 1
            self.position.offset = 0
            self.position.order = []
        return "completed"

    def _step(self, meter: Budget) -> str | None:
        started = time.perf_counter()
        before = self._usage(meter)
        position = self.position
        ids = position.order[position.offset: position.offset + self.batch_size]
        batch = [self._by_id[i] for i in ids]
        for opt in self.optimizers:
            opt.zero_feedback()
        runs = self.runner.forward(batch)
        for run in runs:
            if isinstance(run.output, Node):
                backward(run.output, run.feedback, plugin_manager=self.plugin_manager)
        train_score = _mean([outcome_of(r.feedback, None).value for r in runs])
        evaluation = StepEvaluation(self.runner, batch, self.val_set or self.train_set)
        records = []
        for opt in self.optimizers:
            try:
                committed = opt.step(evaluation)
                records.append(OptimizerRecord(name=opt.name, committed=sorted(committed or {})))
            except OptimizerStepError as err:
                records.append(OptimizerRecord(name=opt.name, refused=str(err)))
        for opt in self.optimizers:
            opt.zero_feedback()
        position.offset += len(ids)
        position.step += 1
        val_score = self.validate() if self._validation_due() else None
        stop = None
        if val_score is not None:
            if self.best is None or val_score > self.best.score + self.min_delta:
                self.best = Best(score=val_score, step=position.step, values=snapshot(self.params))
                position.stale_rounds = 0
            else:
                position.stale_rounds += 1
                if self.patience is not None and position.stale_rounds >= self.patience:
                    stop = "early_stop"
        self._record(StepRecord(step=position.step, epoch=position.epoch,
                                values_hash=values_hash(self.params), train_score=train_score,
                                val_score=val_score, best_score=self.best.score if self.best else None,
                                optimizers=records), meter, before, started)
        return stop

    def _validation_due(self) -> bool:
        position = self.position
        if self.eval_every is not None and position.step % self.eval_every == 0:
            return True
        end_of_epoch = position.offset >= len(position.order)
        return end_of_epoch if self.eval_every is None else \
            (end_of_epoch and position.epoch == self.epochs - 1)

    def validate(self, examples: Sequence[Example] | None = None) -> float:
        """Mean outcome of the current values on ``examples`` (default: validation, else train set)."""
        chosen = examples if examples is not None else (self.val_set or self.train_set)
        return _mean([o.value for o in self.runner.outcomes(chosen)])

    # -- records and checkpoints --------------------------------------------------------------
    def _usage(self, meter: Budget) -> UsageTotals:
        return UsageTotals(calls=meter.calls, cached_calls=usage_ledger().cached_calls,
                           tokens=meter.tokens, cost=meter.usd)

    def _record(self, record: StepRecord, meter: Budget, before: UsageTotals, started: float) -> None:
        now = self._usage(meter)
        spent = UsageTotals(calls=now.calls - before.calls,
                            cached_calls=now.cached_calls - before.cached_calls,
                            tokens=now.tokens - before.tokens, cost=now.cost - before.cost)
        self.usage = self.usage + spent
        record = record.model_copy(update={"usage": spent, "time": time.time(),
                                           "seconds": time.perf_counter() - started})
        self.history.append(record)
        if self.history_path is not None:
            append_history(self.history_path, record)
        self._save()
        self.reporter.update(record, self.usage)

    def _checkpoint(self, finished: str | None = None) -> Checkpoint:
        return Checkpoint(params=snapshot(self.params),
                          kinds={n: p.kind.name for n, p in self.params.items()},
                          optimizers=[opt.state_dict() for opt in self.optimizers],
                          position=self.position.model_copy(deep=True), rng=rng_state(self.rng),
                          best=self.best, history=list(self.history), usage=self.usage,
                          finished=finished, config=self.config)

    def _save(self, finished: str | None = None) -> None:
        self._saved = self._checkpoint(finished)
        if self.checkpoint_path is not None:
            self._saved.save(self.checkpoint_path)

    def _load(self, path: Path) -> str | None:
        saved = Checkpoint.load(path)
        ours = {n: p.kind.name for n, p in self.params.items()}
        if saved.kinds != ours:
            raise CheckpointError(f"checkpoint {os.fspath(path)!r} holds params {saved.kinds}, this "
                                  f"run has {ours}", path=os.fspath(path))
        if len(saved.optimizers) != len(self.optimizers):
            raise CheckpointError(f"checkpoint {os.fspath(path)!r} holds {len(saved.optimizers)} "
                                  f"optimizer states, this run has {len(self.optimizers)} optimizers",
                                  path=os.fspath(path))
        try:
            self._restore_saved(saved)
        except ParamValidationError as err:
            raise CheckpointError(f"checkpoint {os.fspath(path)!r} does not fit this run: {err}",
                                  path=os.fspath(path)) from err
        self._saved = saved
        if self.history_path is not None:
            write_history(self.history_path, self.history)
        return saved.finished

    def _restore_saved(self, saved: Checkpoint) -> None:
        restore(self.params, saved.params)
        for opt, state in zip(self.optimizers, saved.optimizers):
            opt.load_state_dict(state)
        set_rng_state(self.rng, saved.rng)
        self.position = saved.position.model_copy(deep=True)
        self.history = list(saved.history)
        self.best = saved.best
        self.usage = saved.usage

    def _result(self, stopped: str) -> TrainResult:
        scored = [r.val_score for r in self.history if r.val_score is not None]
        return TrainResult(
            best_values=self.best.values if self.best else snapshot(self.params),
            best_score=self.best.score if self.best else None,
            best_step=self.best.step if self.best else 0,
            initial_score=scored[0] if scored else None, final_score=scored[-1] if scored else None,
            history=list(self.history), usage=self.usage, steps=self.position.step, stopped=stopped,
            checkpoint=os.fspath(self.checkpoint_path) if self.checkpoint_path else None)


def optimize(workflow: Callable[..., Any] | Module, train: Data, *, metric: Metric,
             optimizers: Optimizer | Sequence[Optimizer], **options: Any) -> TrainResult:
    """Build a ``Trainer`` with these arguments and ``fit()`` it; see ``Trainer`` for options."""
    return Trainer(workflow, train, metric=metric, optimizers=optimizers, **options).fit()


def collect_params(workflow: Any, optimizers: Sequence[Optimizer]) -> dict[str, Param]:
    """Every parameter by name: a module's own names first, then each optimizer's."""
    found: dict[str, Param] = {}
    owner = workflow if isinstance(workflow, Module) else getattr(workflow, "__self__", None)
    if isinstance(owner, Module):
        found.update(owner.named_parameters())
    known = {id(p) for p in found.values()}
    claimed: dict[int, str] = {}
    for opt in optimizers:
        for target, name in opt.param_names.items():
            if id(target) in claimed:
                raise ParamValidationError(f"param {name!r} is owned by optimizers {claimed[id(target)]!r} "
                                           f"and {opt.name!r}; give each param to one optimizer",
                                           param=target)
            claimed[id(target)] = opt.name
            if id(target) in known:
                continue
            if name in found:
                raise ParamValidationError(f"two different params are named {name!r}; names must be "
                                           f"unique in a run", param=target)
            found[name] = target
            known.add(id(target))
    return found


def default_namespace(workflow: Callable[..., Any], metric: Callable[..., Any]) -> str:
    """Names the evaluation cache entries of one workflow judged by one metric."""
    def qualified(item: Any) -> str:
        return f"{getattr(item, '__module__', '?')}.{getattr(item, '__qualname__', type(item).__qualname__)}"
    return f"{qualified(workflow)}|{qualified(metric)}"


def _mean(values: Sequence[float]) -> float:
    return sum(values) / len(values) if values else 0.0
