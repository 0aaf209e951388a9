"""Observer hooks: called at fixed moments, reading only; a failing observer warns once; spans."""

from __future__ import annotations

import threading
import warnings
from pathlib import Path
from types import ModuleType
from typing import Any, Mapping

import pytest

from graphopt.graph.spans import current_tracer
from graphopt.plugins import hookimpl
from graphopt.train.observe import RunInfo


class Recorder:
    """An observer plugin that writes down every call."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, Any]] = []

    @hookimpl
    def graphopt_run_start(self, run: RunInfo) -> None:
        self.calls.append(("start", run))

    @hookimpl
    def graphopt_step_end(self, run: RunInfo, record: Any) -> None:
        self.calls.append(("step", record.step))

    @hookimpl
    def graphopt_run_end(self, run: RunInfo, result: Any) -> None:
        self.calls.append(("end", result))


class Broken:
    @hookimpl
    def graphopt_step_end(self, run: RunInfo, record: Any) -> None:
        raise RuntimeError("observer bug")


class Spans:
    """A span tracer keeping (kind, name, start attributes, end attributes, error) per span."""

    def __init__(self) -> None:
        self.spans: list[dict[str, Any]] = []
        self.lock = threading.Lock()

    @hookimpl
    def graphopt_span_tracer(self, run: RunInfo) -> Spans:
        return self

    def start(self, kind: str, name: str, attributes: Mapping[str, Any]) -> dict[str, Any]:
        span = {"kind": kind, "name": name, "attributes": dict(attributes)}
        with self.lock:
            self.spans.append(span)
        return span

    def end(self, span: dict[str, Any], attributes: Mapping[str, Any], error: BaseException | None) -> None:
        span["end"] = dict(attributes)
        span["error"] = error


def test_observers_see_start_every_step_and_end(scripted: ModuleType, tmp_path: Path) -> None:
    trainer, _, _ = scripted.build(tmp_path / "cache", epochs=1, eval_every=1,
                                   checkpoint=tmp_path / "c.json", report=tmp_path / "r.html")
    recorder = Recorder()
    trainer.plugin_manager.register(recorder, name="recorder")
    result = trainer.fit()
    kinds = [kind for kind, _ in recorder.calls]
    assert kinds == ["start"] + ["step"] * (result.steps + 1) + ["end"]
    assert [value for kind, value in recorder.calls if kind == "step"] == list(range(result.steps + 1))
    run = recorder.calls[0][1]
    assert run.params == {"instruction": "text", "demos": "demos", "parse.code": "code"}
    assert run.values["instruction"] == "Answer."
    assert run.optimizers == ("evolution", "fewshot") and run.options["epochs"] == 1
    assert run.report == str(tmp_path / "r.html") and not run.resumed
    assert recorder.calls[-1][1] is result


def test_a_failing_observer_warns_once_and_changes_nothing(scripted: ModuleType, tmp_path: Path) -> None:
    plain, _, _ = scripted.build(tmp_path / "cache-a", epochs=1, eval_every=1)
    expected = scripted.comparable(plain.fit())
    trainer, _, _ = scripted.build(tmp_path / "cache-b", epochs=1, eval_every=1)
    trainer.plugin_manager.register(Broken(), name="broken-observer")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = trainer.fit()
    ours = [w for w in caught if "broken-observer" in str(w.message)]
    assert len(ours) == 1 and "graphopt_step_end" in str(ours[0].message)
    assert "observer bug" in str(ours[0].message)
    assert scripted.comparable(result) == expected


def test_span_tracer_receives_ops_llm_calls_and_optimizer_steps(scripted: ModuleType, tmp_path: Path) -> None:
    trainer, _, _ = scripted.build(tmp_path / "cache", epochs=1, eval_every=1)
    tracer = Spans()
    trainer.plugin_manager.register(tracer, name="spans")
    trainer.fit()
    assert current_tracer() is None  # only for the run's length
    kinds = {span["kind"] for span in tracer.spans}
    assert kinds == {"op", "llm", "optimizer_step"}
    assert {s["name"] for s in tracer.spans if s["kind"] == "op"} >= {"Sentiment.ask", "Sentiment.parse"}
    llm = [s for s in tracer.spans if s["kind"] == "llm"]
    first = llm[0]
    assert first["attributes"]["gen_ai.system"] == "scripted"
    assert first["attributes"]["gen_ai.request.model"] == "model"
    assert first["attributes"]["gen_ai.operation.name"] == "chat"
    assert first["end"]["gen_ai.usage.input_tokens"] == 10
    assert first["end"]["gen_ai.usage.output_tokens"] >= 1
    steps = [s for s in tracer.spans if s["kind"] == "optimizer_step"]
    assert {s["name"] for s in steps} == {"evolution", "fewshot"}
    assert all("end" in s and s["error"] is None for s in tracer.spans)


def test_a_span_tracer_that_raises_warns_once_and_the_run_goes_on(scripted: ModuleType,
                                                                  tmp_path: Path) -> None:
    class Faulty(Spans):
        def start(self, kind: str, name: str, attributes: Mapping[str, Any]) -> dict[str, Any]:
            raise ValueError("exporter down")

    trainer, _, _ = scripted.build(tmp_path / "cache", epochs=1, eval_every=1)
    trainer.plugin_manager.register(Faulty(), name="faulty-spans")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = trainer.fit()
    assert result.steps > 0
    assert len([w for w in caught if "faulty-spans" in str(w.message)]) == 1


def test_a_run_stopped_by_an_error_still_ends_for_observers(scripted: ModuleType, tmp_path: Path) -> None:
    class Ends:
        def __init__(self) -> None:
            self.ends: list[tuple[Any, BaseException | None]] = []

        @hookimpl
        def graphopt_run_end(self, run: RunInfo, result: Any, error: BaseException | None) -> None:
            self.ends.append((result, error))

    def failing_metric(example: Any, prediction: Any) -> Any:
        raise KeyboardInterrupt  # what Ctrl-C does mid-run

    trainer, _, _ = scripted.build(tmp_path / "cache", epochs=1)
    trainer.metric = trainer.runner.metric = failing_metric
    ends = Ends()
    trainer.plugin_manager.register(ends, name="ends")
    with pytest.raises(KeyboardInterrupt):
        trainer.fit()
    assert len(ends.ends) == 1 and ends.ends[0][0] is None
    assert isinstance(ends.ends[0][1], KeyboardInterrupt)
