"""``Trainer`` and ``optimize``: minibatches, optimizers, validation, checkpoints, history.

One step: zero feedback, run the minibatch (traced, in parallel; a run already made when these
values were scored is reused), send each run's feedback backward in example order, step every
optimizer with a ``StepEvaluation`` (gated optimizers score their proposal on the minibatch
before keeping it), validate when due, then append the history line and write the checkpoint.
A step of several optimizers commits all of their proposals or none: any failure rolls every
optimizer back to the step's start. A kill loses at most the step in flight; ``resume=path``
restores values, optimizer states, position and random states.
"""

from __future__ import annotations

import contextlib
import math
import os
import random
import time
import warnings
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import torch

from graphopt.errors import BudgetExceeded, CheckpointError, OptimizerStepError, ParamValidationError
from graphopt.feedback.backward import backward
from graphopt.graph.module import Module
from graphopt.graph.export import to_networkx
from graphopt.graph.node import Node
from graphopt.graph.serialize import check_values
from graphopt.graph.spans import span, tracing
from graphopt.llm.ledger import Budget, budget as budget_block
from graphopt.llm.redact import redact
from graphopt.llm.registry import usage_ledger
from graphopt.optim.optimizer import Optimizer, check_accept
from graphopt.plugins.manager import PluginManager, get_plugin_manager
from graphopt.runtime.executor import Executor, executor_for
from graphopt.train.cache import EvalCache
from graphopt.train.checkpoint import Best, Checkpoint, Position, rng_state, set_rng_state
from graphopt.train.data import Data, Example, load_examples
from graphopt.train.evaluate import Metric, Runner, StepEvaluation, outcome_of
from graphopt.train.history import (OptimizerRecord, Rejected, StepRecord, UsageTotals, append_history,
                                    write_history)
from graphopt.train.lock import PathLock, remove_stale_temporaries
from graphopt.train.observe import Observers, RunInfo
from graphopt.train.progress import Bar, Quiet, Reporter
from graphopt.train.report import graph_data, recorded_changes, write_run_report
from graphopt.train.result import TrainResult
from graphopt.train.setup import check_options, collect_params, default_namespace
from graphopt.train.values import restore, snapshot, values_hash



class Trainer:
    """Optimizes ``workflow``'s parameters over a dataset with one or more optimizers.

    ``workflow`` is a callable built from ``@go.op``s (called with an example's input: keyword
    arguments for a dict, else one argument) or a ``go.Module`` (its ``forward``). ``metric(example,
    prediction)`` returns a ``Feedback`` or anything ``Feedback.coerce`` takes; higher scores are
    better, a loss alone counts as its negation; a metric that raises, or gives NaN or an
    infinite number, scores that example ``error_score``. Each optimizer owns its own parameters.

    ``accept`` is the acceptance gate of gated optimizers (LLM optimizers, fewshot: see
    ``Optimizer``): ``"improve"`` keeps a proposal only if it scores no worse than the current
    values on the step's minibatch, ``"better"`` only if it scores higher there (a tie keeps the
    current values), ``"improve_val"`` also not worse on the validation set, ``"always"``
    keeps every valid proposal; ``None`` leaves each optimizer's own ``accept`` (``"improve"``
    unless set). ``max_evaluations`` caps the real runs of the workflow (reserved
    before each run; the run stops with ``stopped="budget"``). ``on_step_error``: ``"skip"``
    records a failed step (rolled back) and goes on, ``"raise"`` stops with
    ``OptimizerStepError``. The checkpoint and history paths are locked while the run holds them.
    ``report`` writes the run's HTML report there when it ends (see ``graphopt report``).
    Observer plugins (``graphopt_run_start``/``step_end``/``run_end``, ``graphopt_span_tracer``)
    of ``plugin_manager`` (default: the process-wide one) watch the run; they cannot steer it.
    ``executor`` runs the evaluations: ``"threads"`` (default, ``concurrency`` threads), ``"ray"``
    (the running Ray instance, the cluster at ``address``, else a local one; docs/ray.md) or
    an ``Executor``; results are the same on each.
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
                 accept: str | None = None, max_evaluations: int | None = None,
                 on_step_error: str = "skip", config: Mapping[str, Any] | None = None,
                 plugin_manager: PluginManager | None = None,
                 report: str | os.PathLike[str] | None = None,
                 executor: str | Executor | None = None, address: str | None = None) -> None:
        check_options(epochs=epochs, batch_size=batch_size, concurrency=concurrency, seed=seed,
                       patience=patience, min_delta=min_delta, eval_every=eval_every,
                       error_score=error_score, max_evaluations=max_evaluations,
                       on_step_error=on_step_error, target_key=target_key, quiet=quiet,
                       restore_best=restore_best)
        self.accept = check_accept(accept) if accept is not None else None
        self.max_evaluations = max_evaluations
        self.on_step_error = on_step_error
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
        self.report_path = Path(report) if report is not None else None
        self.graph: dict[str, Any] | None = None  # one traced run, drawn in the report
        self.cache = cache if isinstance(cache, EvalCache) else EvalCache(cache)
        self.restore_best = restore_best
        self.config = dict(config) if config is not None else None
        self.plugin_manager = plugin_manager
        self.reporter: Reporter = reporter or (Quiet() if quiet else Bar())
        self.params = collect_params(workflow, self.optimizers)
        named = f"{namespace}|" if namespace is not None else ""
        self.runner = Runner(self.call, metric, self.params, cache=self.cache,
                             namespace=named + default_namespace(self.call, metric),
                             concurrency=concurrency, error_score=error_score,
                             max_evaluations=max_evaluations,
                             executor=executor_for(executor, concurrency=concurrency, address=address))
        self.runner.keep = frozenset(e.id for e in self.train_set)
        self.runner.max_kept = max(256, 4 * len(self.train_set))
        self.rng = random.Random(seed)
        self.position = Position()
        self.history: list[StepRecord] = []
        self.best: Best | None = None
        self.usage = UsageTotals()
        self._saved: Checkpoint | None = None
        self._by_id = {e.id: e for e in self.train_set}
        self._counted = UsageTotals()  # evaluations counted before this process (a resumed run)
        self._observers: Observers | None = None
        self._run: RunInfo | None = None

    # -- the loop -----------------------------------------------------------------------------
    def fit(self) -> TrainResult:
        """Run (or continue) training; returns the best values, the history and the usage.

        On ``KeyboardInterrupt`` the values in memory go back to the last checkpoint (which is
        complete on disk: writes are atomic) and the interrupt propagates; ``position.step`` is
        the last completed step, from which ``resume=`` continues.
        """
        with contextlib.ExitStack() as locks:
            for label, path in (("checkpoint", self.checkpoint_path), ("history", self.history_path)):
                if path is not None and not (label == "history" and path == self.checkpoint_path):
                    locks.enter_context(PathLock(path, label))
                    remove_stale_temporaries(path)
            return self._fit()

    def _fit(self) -> TrainResult:
        observers = Observers(self.plugin_manager or get_plugin_manager())
        resumed = self.resume_path is not None
        if self.resume_path is not None:
            finished = self._load(self.resume_path)
            if finished is not None:
                return self._result(finished)
        else:
            torch.manual_seed(self.seed)
            if self.history_path is not None:
                write_history(self.history_path, [])  # a fresh run starts a fresh history
        self._counted = self.usage
        if self.max_evaluations is not None:
            self.runner.max_evaluations = max(0, self.max_evaluations - self.usage.evaluations)
        meter = Budget()
        stopped = "completed"
        run = self._run_info(resumed)
        self._observers, self._run = observers, run
        observers.notify("graphopt_run_start", run=run)
        self.reporter.start(self.total_steps, self.position.step)
        try:
            with contextlib.ExitStack() as stack:
                stack.enter_context(tracing(observers.tracer(run)))
                stack.enter_context(budget_block(meter))
                if self.budget is not None:
                    stack.enter_context(budget_block(self.budget))
                stopped = self._loop(meter)
        except BudgetExceeded:
            stopped = "budget"
            if self._saved is not None:
                self._restore_saved(self._saved)
        except KeyboardInterrupt as err:
            if self._saved is not None:
                self._restore_saved(self._saved)
            observers.notify("graphopt_run_end", run=run, result=None, error=err)
            raise
        except Exception as err:
            self._record_failure(err)
            observers.notify("graphopt_run_end", run=run, result=None, error=err)
            raise
        finally:
            self.reporter.stop()
        if stopped != "budget":
            self._save(finished=stopped)
        if self.restore_best and self.best is not None:
            restore(self.params, self.best.values)
        result = self._result(stopped)
        if self.report_path is not None and self._saved is not None:
            write_run_report(self.report_path, self._saved, title=f"graphopt run: {run.name}")
        observers.notify("graphopt_run_end", run=run, result=result, error=None)
        return result

    def _run_info(self, resumed: bool) -> RunInfo:
        options = {"epochs": self.epochs, "batch_size": self.batch_size, "seed": self.seed,
                   "patience": self.patience, "eval_every": self.eval_every, "accept": self.accept,
                   "train_examples": len(self.train_set), "val_examples": len(self.val_set),
                   "max_evaluations": self.max_evaluations}
        name = getattr(self.call, "__qualname__", None) or type(self.workflow).__name__
        name = name.rpartition("<locals>.")[2]  # a workflow defined in a function: its own name
        return RunInfo(name=name, params={n: p.kind.name for n, p in self.params.items()},
                       values=snapshot(self.params), optimizers=tuple(o.name for o in self.optimizers),
                       options=options, resumed=resumed, config=self.config,
                       checkpoint=os.fspath(self.checkpoint_path) if self.checkpoint_path else None,
                       history=os.fspath(self.history_path) if self.history_path else None,
                       report=os.fspath(self.report_path) if self.report_path else None)

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
        if self.graph is None and runs and isinstance(runs[0].output, Node):
            self.graph = graph_data(to_networkx(runs[0].output))
        for run in runs:
            if isinstance(run.output, Node):
                backward(run.output, run.feedback, plugin_manager=self.plugin_manager)
        train_score = _mean([outcome_of(r.feedback, None).value for r in runs])
        evaluation = StepEvaluation(self.runner, batch, self.val_set or self.train_set,
                                    accept=self.accept)
        records = self._step_optimizers(evaluation)
        for opt in self.optimizers:
            opt.zero_feedback()
        position.offset += len(ids)
        position.step += 1
        val_score = self.validate() if self._validation_due() else None
        stop = None
        if val_score is not None:
            if self.best is None or self.best.score is None or val_score > self.best.score + self.min_delta:
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

    def _step_optimizers(self, evaluation: StepEvaluation) -> list[OptimizerRecord]:
        """Step every optimizer; on any failure roll all of them back to the step's start."""
        records = []
        for opt in self.optimizers:
            try:
                with span("optimizer_step", opt.name, {"graphopt.step": self.position.step + 1}):
                    committed = opt.step(evaluation)
            except BudgetExceeded:
                raise
            except Exception as err:  # any failure of any optimizer undoes the whole step
                reason = (f"optimizer {opt.name!r} failed ({type(err).__name__}: {err}); "
                          f"the step of every optimizer was rolled back")
                self._roll_back()
                if self.on_step_error == "raise":
                    raise OptimizerStepError(f"step {self.position.step + 1}: {reason}; the checkpoint "
                                             f"holds step {self.position.step}", optimizer=opt) from err
                if not isinstance(err, OptimizerStepError):  # a refusal is routine; a crash is not
                    warnings.warn(f"step {self.position.step + 1}: {reason}", RuntimeWarning, stacklevel=2)
                return [OptimizerRecord(name=o.name, refused=reason if o is opt else f"rolled back: {reason}")
                        for o in self.optimizers]
            rejection = getattr(opt, "last_rejection", None)
            scores = getattr(opt, "last_gate", None) or (None, None)
            records.append(OptimizerRecord(
                name=opt.name, committed=sorted(committed or {}),
                score_before=scores[0], score_after=scores[1],
                rejected=None if rejection is None else Rejected(
                    reason=rejection.reason, score_before=rejection.before,
                    score_after=rejection.after, params=rejection.params)))
        return records

    def _roll_back(self) -> None:
        """Values and optimizer states as the last checkpoint holds them (the step's start)."""
        if self._saved is None:
            return
        restore(self.params, self._saved.params)
        for opt, state in zip(self.optimizers, self._saved.optimizers):
            opt.load_state_dict(state)

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
                           tokens=meter.tokens, cost=meter.usd, evaluations=self.runner.evaluations,
                           distinct_points=self.runner.distinct_points)

    def _record(self, record: StepRecord, meter: Budget, before: UsageTotals, started: float) -> None:
        spent = self._usage(meter) - before
        self.usage = self.usage + spent
        values = snapshot(self.params)
        changes = recorded_changes(self._saved.params if self._saved is not None else None, values)
        record = record.model_copy(update={"usage": spent, "time": time.time(), "changes": changes,
                                           "seconds": time.perf_counter() - started})
        self.history.append(record)
        if self.history_path is not None:
            append_history(self.history_path, record)
        self._save(values=values)
        self.reporter.update(record, self.usage)
        if self._observers is not None:
            self._observers.notify("graphopt_step_end", run=self._run, record=record)

    def _checkpoint(self, finished: str | None = None, values: dict[str, Any] | None = None) -> Checkpoint:
        return Checkpoint(params=values if values is not None else snapshot(self.params), graph=self.graph,
                          kinds={n: p.kind.name for n, p in self.params.items()},
                          optimizers=[opt.state_dict() for opt in self.optimizers],
                          position=self.position.model_copy(deep=True), rng=rng_state(self.rng),
                          best=self.best, history=list(self.history), usage=self.usage,
                          finished=finished, config=self.config)

    def _save(self, finished: str | None = None, values: dict[str, Any] | None = None) -> None:
        saved = self._checkpoint(finished, values)
        if self.checkpoint_path is not None:
            saved.save(self.checkpoint_path)
        self._saved = saved  # only once on disk: an interrupt mid-write rolls back to the previous one

    def _record_failure(self, err: Exception) -> None:
        """Roll back to the last complete step and write it with the error that stopped the run;
        a failure to do so is noted on ``err``, which stays the error the caller sees."""
        try:
            if self._saved is not None:
                self._restore_saved(self._saved)
            saved = self._saved or self._checkpoint()
            if self.checkpoint_path is not None:
                error = redact(f"{type(err).__name__}: {err}")  # the file outlives the process: no keys
                saved.model_copy(update={"error": error}).save(self.checkpoint_path)
        except Exception as failed:
            err.add_note(f"graphopt could not record this failure in the checkpoint: "
                         f"{type(failed).__name__}: {failed}")

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
        self._check_position(saved.position, path)
        self._check_best(saved.best, path)
        try:
            self._restore_saved(saved)
        except Exception as err:  # whatever a damaged optimizer state makes load_state_dict raise
            raise CheckpointError(f"checkpoint {os.fspath(path)!r} does not fit this run: "
                                  f"{type(err).__name__}: {err}", path=os.fspath(path)) from err
        self._saved = saved
        if self.history_path is not None:
            write_history(self.history_path, self.history)
        return saved.finished

    def _check_position(self, position: Position, path: Path) -> None:
        where = os.fspath(path)
        known = set(self._by_id)
        if position.order and set(position.order) != known:
            raise CheckpointError(f"checkpoint {where!r}: field position.order: expected a permutation "
                                  f"of this run's {len(known)} training ids", path=where)
        if position.epoch > self.epochs:
            raise CheckpointError(f"checkpoint {where!r}: field position.epoch: {position.epoch} is past "
                                  f"this run's {self.epochs} epochs", path=where)

    def _check_best(self, best: Best | None, path: Path) -> None:
        if best is None:
            return
        try:
            check_values(self.params, best.values)
        except ParamValidationError as err:
            raise CheckpointError(f"checkpoint {os.fspath(path)!r}: field best.values: {err}",
                                  path=os.fspath(path)) from err

    def _restore_saved(self, saved: Checkpoint) -> None:
        restore(self.params, saved.params)
        for opt, state in zip(self.optimizers, saved.optimizers):
            opt.load_state_dict(state)
        set_rng_state(self.rng, saved.rng)
        self.position = saved.position.model_copy(deep=True)
        self.history = list(saved.history)
        self.best = saved.best
        self.usage = saved.usage
        self.graph = saved.graph

    def _result(self, stopped: str) -> TrainResult:
        scored = [r.val_score for r in self.history if r.val_score is not None]
        # What really ran, the part of a step cut short by a budget included.
        usage = self.usage.model_copy(update={
            "evaluations": self._counted.evaluations + self.runner.evaluations,
            "distinct_points": self._counted.distinct_points + self.runner.distinct_points})
        return TrainResult(
            best_values=self.best.values if self.best else snapshot(self.params),
            best_score=self.best.score if self.best else None,
            best_step=self.best.step if self.best else 0,
            initial_score=scored[0] if scored else None, final_score=scored[-1] if scored else None,
            history=list(self.history), usage=usage, steps=self.position.step, stopped=stopped,
            checkpoint=os.fspath(self.checkpoint_path) if self.checkpoint_path else None)


def optimize(workflow: Callable[..., Any] | Module, train: Data, *, metric: Metric,
             optimizers: Optimizer | Sequence[Optimizer], **options: Any) -> TrainResult:
    """Build a ``Trainer`` with these arguments and ``fit()`` it; see ``Trainer`` for options."""
    return Trainer(workflow, train, metric=metric, optimizers=optimizers, **options).fit()


def _mean(values: Sequence[float]) -> float:
    total = sum(values) if values else 0.0
    mean = total / len(values) if values else 0.0
    return mean if math.isfinite(mean) else -math.inf
