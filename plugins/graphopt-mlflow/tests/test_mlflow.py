"""graphopt-mlflow against a real MLflow tracking store: a local sqlite database in a temp folder."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

import graphopt as go
from graphopt import testing
from graphopt.llm.scripted import follow_schema, scripted_client
from graphopt.plugins import PluginManager
from graphopt_mlflow import MlflowObserver

TRAIN = [{"id": f"q{i}", "input": {"question": q}, "target": a}
         for i, (q, a) in enumerate([("2+2", "4"), ("3+3", "6"), ("1+1", "2"), ("5+5", "10")])]


def handler(messages: list[dict[str, Any]], params: dict[str, Any]) -> str:
    if messages[0]["content"].startswith("Answer"):
        left, right = messages[-1]["content"].split("+")
        return str(int(left) + int(right)) if "digits" in messages[0]["content"] else "four"
    return follow_schema(messages, params)


def workflow_and_optimizer(manager: PluginManager) -> tuple[Any, Any]:
    client = scripted_client(handler)
    prompt = go.param("Answer with words.", name="prompt")

    @go.op
    def ask(prompt: str, question: str) -> str:
        return client.complete([{"role": "system", "content": prompt},
                                {"role": "user", "content": question}], max_tokens=8).text

    def solve(question: str) -> Any:
        return ask(prompt, question)

    return solve, go.optimizer("optoprime", [prompt], llm=client, plugin_manager=manager)


def exact(example: Any, prediction: Any) -> go.Feedback:
    return go.Feedback(score=float(prediction == example.target), text=f"expected {example.target}")


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> str:
    """One sqlite store for the module: creating its tables takes MLflow several seconds."""
    from mlflow.tracking import MlflowClient

    folder = tmp_path_factory.mktemp("mlflow")
    uri = f"sqlite:///{folder / 'mlflow.db'}"
    MlflowClient(uri).create_experiment("graphopt-tests", artifact_location=str(folder / "artifacts"))
    return uri


def logged_run(store: str, tmp_path: Path, **options: Any) -> tuple[Any, Any, Any]:
    from mlflow.tracking import MlflowClient

    manager = testing.default_plugin_manager()
    observer = MlflowObserver(store, experiment="graphopt-tests")
    manager.register(observer, name="mlflow-test")
    solve, opt = workflow_and_optimizer(manager)
    result = go.optimize(solve, TRAIN, metric=exact, optimizers=[opt], batch_size=2, epochs=1, quiet=True,
                         cache=tmp_path / "eval", plugin_manager=manager,
                         checkpoint=tmp_path / "run.ckpt.json", report=tmp_path / "report.html", **options)
    client = MlflowClient(store)
    experiment = client.get_experiment_by_name("graphopt-tests")
    runs = client.search_runs([experiment.experiment_id], order_by=["attributes.start_time DESC"])
    return result, client, runs[0]


def test_a_run_logs_params_step_metrics_best_values_and_files(store: str, tmp_path: Path) -> None:
    result, client, run = logged_run(store, tmp_path)
    assert run.info.status == "FINISHED" and run.info.run_name == "solve"
    params = run.data.params
    assert params["optimizers"] == "optoprime" and params["option.epochs"] == "1"
    assert params["param.prompt.kind"] == "text" and params["param.prompt.start"] == "Answer with words."
    history = client.get_metric_history(run.info.run_id, "val_score")
    assert [m.step for m in history] == [r.step for r in result.history if r.val_score is not None]
    assert [m.value for m in history] == [r.val_score for r in result.history if r.val_score is not None]
    assert [m.step for m in client.get_metric_history(run.info.run_id, "calls")] == [0, 1, 2]
    assert run.data.metrics["run.best_score"] == result.best_score
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert artifacts == {"best_values.json", "report.html", "run.ckpt.json"}
    best = json.loads(Path(client.download_artifacts(run.info.run_id, "best_values.json", str(tmp_path / "dl")))
                      .read_text())
    assert best == result.best_values
    report = Path(client.download_artifacts(run.info.run_id, "report.html", str(tmp_path / "dl2"))).read_text()
    assert report == (tmp_path / "report.html").read_text()


def test_a_run_stopped_by_an_error_is_a_failed_mlflow_run(store: str, tmp_path: Path) -> None:
    def broken(example: Any, prediction: Any) -> Any:
        raise KeyboardInterrupt

    from mlflow.tracking import MlflowClient

    manager = testing.default_plugin_manager()
    manager.register(MlflowObserver(store, experiment="graphopt-tests"), name="mlflow-test")
    solve, opt = workflow_and_optimizer(manager)
    with pytest.raises(KeyboardInterrupt):
        go.optimize(solve, TRAIN, metric=broken, optimizers=[opt], quiet=True, cache=tmp_path / "eval",
                    plugin_manager=manager)
    client = MlflowClient(store)
    experiment = client.get_experiment_by_name("graphopt-tests")
    run = client.search_runs([experiment.experiment_id], order_by=["attributes.start_time DESC"])[0]
    assert run.info.status == "KILLED" and "KeyboardInterrupt" in run.data.tags["graphopt.error"]


def test_it_stays_off_without_a_tracking_uri(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("MLFLOW_TRACKING_URI", "GRAPHOPT_MLFLOW"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.delitem(__import__("sys").modules, "mlflow", raising=False)
    observer = MlflowObserver()
    assert not observer.active()
    observer.graphopt_run_start(run=object())  # nothing logged, nothing imported
    assert observer.run_id(object()) is None
    monkeypatch.setenv("GRAPHOPT_MLFLOW", "1")
    assert observer.active()
