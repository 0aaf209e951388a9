"""``MlflowObserver``: params at the start, metrics at every step, best values and files at the end.

It talks to MLflow through ``MlflowClient`` (no fluent global run is started or changed), so
concurrent graphopt runs each get their own MLflow run. mlflow is imported only when a run is
logged, never at graphopt's import or plugin loading.
"""

from __future__ import annotations

import json
import os
import sys
import threading
from typing import Any

from graphopt.plugins import hookimpl

MAX_PARAM_CHARS = 500  # starting values logged as params are cut here; the artifacts hold them whole
METRICS = ("train_score", "val_score", "best_score")


class MlflowObserver:
    """Observer plugin logging runs to ``tracking_uri`` under ``experiment``.

    ``enabled``: ``True``/``False`` forces it; ``None`` (default) turns it on when a tracking URI is
    given or ``MLFLOW_TRACKING_URI``/``GRAPHOPT_MLFLOW=1`` is set, or an MLflow run is active.
    ``experiment`` defaults to ``MLFLOW_EXPERIMENT_NAME``, else ``"graphopt"``.
    """

    def __init__(self, tracking_uri: str | None = None, *, experiment: str | None = None,
                 enabled: bool | None = None) -> None:
        self.tracking_uri = tracking_uri
        self.experiment = experiment
        self.enabled = enabled
        self._runs: dict[int, str] = {}
        self._lock = threading.Lock()

    def active(self) -> bool:
        """Whether runs are logged now (see the class docstring)."""
        if self.enabled is not None:
            return self.enabled
        if self.tracking_uri or os.environ.get("MLFLOW_TRACKING_URI") or \
                os.environ.get("GRAPHOPT_MLFLOW", "").lower() in ("1", "true", "yes"):
            return True
        fluent = sys.modules.get("mlflow")  # imported by the user: they may have a run open
        return fluent is not None and fluent.active_run() is not None

    def client(self) -> Any:
        from mlflow.tracking import MlflowClient  # heavy: only once a run is logged

        return MlflowClient(tracking_uri=self.tracking_uri)

    def run_id(self, run: Any) -> str | None:
        """The MLflow run id logging graphopt ``run`` (``None`` if it is not logged)."""
        with self._lock:
            return self._runs.get(id(run))

    @hookimpl
    def graphopt_run_start(self, run: Any) -> None:
        if not self.active():
            return
        client = self.client()
        name = self.experiment or os.environ.get("MLFLOW_EXPERIMENT_NAME") or "graphopt"
        found = client.get_experiment_by_name(name)
        experiment_id = found.experiment_id if found is not None else client.create_experiment(name)
        tags = {"graphopt.workflow": run.name, "graphopt.resumed": str(run.resumed)}
        fluent = sys.modules.get("mlflow")
        parent = fluent.active_run() if fluent is not None else None
        if parent is not None:
            tags["mlflow.parentRunId"] = parent.info.run_id
        created = client.create_run(experiment_id, run_name=run.name, tags=tags)
        with self._lock:
            self._runs[id(run)] = created.info.run_id
        params = {f"option.{key}": value for key, value in run.options.items()}
        params["optimizers"] = ",".join(run.optimizers)
        params.update({f"param.{name}.kind": kind for name, kind in run.params.items()})
        params.update({f"param.{name}.start": _short(value) for name, value in run.values.items()})
        from mlflow.entities import Param

        client.log_batch(created.info.run_id, params=[Param(key, str(value)) for key, value in params.items()])

    @hookimpl
    def graphopt_step_end(self, run: Any, record: Any) -> None:
        run_id = self.run_id(run)
        if run_id is None:
            return
        from mlflow.entities import Metric

        stamp = int(record.time * 1000)
        values = {field: getattr(record, field) for field in METRICS if getattr(record, field) is not None}
        values.update({"calls": record.usage.calls, "tokens": record.usage.tokens,
                       "cost_usd": record.usage.cost, "evaluations": record.usage.evaluations,
                       "params_changed": len(record.changes) if record.step else 0,
                       "rejected": sum(o.rejected is not None for o in record.optimizers)})
        self.client().log_batch(run_id, metrics=[Metric(key, float(value), stamp, record.step)
                                                 for key, value in values.items()])

    @hookimpl
    def graphopt_run_end(self, run: Any, result: Any, error: BaseException | None) -> None:
        with self._lock:
            run_id = self._runs.pop(id(run), None)
        if run_id is None:
            return
        client = self.client()
        try:
            if result is not None:
                for key, value in (("best_score", result.best_score), ("initial_score", result.initial_score),
                                   ("final_score", result.final_score)):
                    if value is not None:
                        client.log_metric(run_id, f"run.{key}", float(value))
                client.set_tag(run_id, "graphopt.stopped", result.stopped)
                client.set_tag(run_id, "graphopt.best_step", str(result.best_step))
                client.log_dict(run_id, result.best_values, "best_values.json")
            else:
                client.set_tag(run_id, "graphopt.error", f"{type(error).__name__}: {error}"[:5000])
            for path in (run.report, run.checkpoint, run.history):
                if path is not None and os.path.exists(path):
                    client.log_artifact(run_id, path)
        finally:
            status = "FINISHED" if error is None else \
                "KILLED" if isinstance(error, KeyboardInterrupt) else "FAILED"
            client.set_terminated(run_id, status)


def _short(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, sort_keys=True)
    return text if len(text) <= MAX_PARAM_CHARS else text[: MAX_PARAM_CHARS - 1] + "…"
