"""graphopt-otel against the real OpenTelemetry SDK, spans caught by its InMemorySpanExporter."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

import graphopt as go
from graphopt import testing
from graphopt.llm.scripted import follow_schema, scripted_client
from graphopt.plugins import PluginManager
from graphopt_otel import OtelObserver

TRAIN = [{"id": f"q{i}", "input": {"question": q}, "target": a}
         for i, (q, a) in enumerate([("2+2", "4"), ("3+3", "6"), ("1+1", "2"), ("5+5", "10")])]


def handler(messages: list[dict[str, Any]], params: dict[str, Any]) -> str:
    if messages[0]["content"].startswith("Answer"):
        question = messages[-1]["content"]
        left, right = question.split("+")
        return str(int(left) + int(right)) if "digits" in messages[0]["content"] else "four"
    return follow_schema(messages, params)


def build(manager: PluginManager) -> tuple[Any, list[Any]]:
    client = scripted_client(handler)
    prompt = go.param("Answer with words.", name="prompt")

    @go.op
    def ask(prompt: str, question: str) -> str:
        return client.complete([{"role": "system", "content": prompt},
                                {"role": "user", "content": question}], max_tokens=8).text

    @go.op
    def clean(reply: str) -> str:
        return reply.strip()

    def workflow(question: str) -> Any:
        return clean(ask(prompt, question))

    opt = go.optimizer("optoprime", [prompt], llm=client, plugin_manager=manager)
    return workflow, [opt]


def exact(example: Any, prediction: Any) -> go.Feedback:
    return go.Feedback(score=float(prediction == example.target), text=f"expected {example.target}")


@pytest.fixture
def spans(tmp_path: Path) -> tuple[InMemorySpanExporter, PluginManager]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    manager = testing.default_plugin_manager()
    manager.register(OtelObserver(tracer_provider=provider), name="otel-test")
    return exporter, manager


def run(manager: PluginManager, tmp_path: Path) -> Any:
    workflow, optimizers = build(manager)
    return go.optimize(workflow, TRAIN, metric=exact, optimizers=optimizers, batch_size=2, epochs=1,
                       quiet=True, cache=tmp_path / "eval", plugin_manager=manager)


def test_a_run_is_one_span_with_optimizer_steps_ops_and_llm_calls_under_it(spans: Any, tmp_path: Path) -> None:
    exporter, manager = spans
    result = run(manager, tmp_path)
    finished = exporter.get_finished_spans()
    roots = [s for s in finished if s.name == "graphopt.run workflow"]
    assert len(roots) == 1
    root = roots[0]
    assert root.parent is None and root.attributes["graphopt.run.steps"] == result.steps == 2
    assert root.attributes["graphopt.run.optimizers"] == ("optoprime",)
    assert [e.attributes["graphopt.step"] for e in root.events if e.name == "graphopt.step"] == [0, 1, 2]
    trace_ids = {s.context.trace_id for s in finished}
    assert trace_ids == {root.context.trace_id}  # worker-thread spans join the run's trace

    steps = [s for s in finished if s.name == "optimizer.step optoprime"]
    assert len(steps) == 2 and all(s.parent.span_id == root.context.span_id for s in steps)
    asks = [s for s in finished if s.name == "build.ask"]
    assert asks and all(s.attributes["graphopt.span.kind"] == "op" for s in asks)
    assert {s.name for s in finished} >= {"build.ask", "build.clean"}


def test_llm_calls_follow_the_genai_conventions(spans: Any, tmp_path: Path) -> None:
    exporter, manager = spans
    run(manager, tmp_path)
    finished = exporter.get_finished_spans()
    by_id = {s.context.span_id: s for s in finished}
    calls = [s for s in finished if s.attributes.get("graphopt.span.kind") == "llm"]
    assert calls
    for call in calls:
        assert call.name == "chat model" and call.kind == SpanKind.CLIENT
        assert call.attributes["gen_ai.operation.name"] == "chat"
        assert call.attributes["gen_ai.system"] == "scripted"
        assert call.attributes["gen_ai.request.model"] == "model"
        assert call.attributes["gen_ai.usage.input_tokens"] > 0
        assert call.attributes["gen_ai.usage.output_tokens"] > 0
    in_ask = [c for c in calls if c.parent is not None and by_id[c.parent.span_id].name == "build.ask"]
    in_step = [c for c in calls if c.parent is not None and by_id[c.parent.span_id].name.startswith("optimizer.step")]
    assert in_ask and in_step  # the workflow's calls sit under their op, the optimizer's under its step
    assert all(c.attributes["gen_ai.request.max_tokens"] == 8 for c in in_ask)


def test_a_failing_op_is_an_error_span(spans: Any) -> None:
    exporter, manager = spans
    observer = next(p for n, p in manager.list_name_plugin() if n == "otel-test")
    tracer = observer.graphopt_span_tracer(run=object())

    @go.op
    def explode(x: int) -> int:
        raise ValueError("bad input")

    from graphopt.graph.spans import tracing
    with tracing(tracer):
        out = explode(1)
    assert isinstance(out, go.Error)
    span = exporter.get_finished_spans()[-1]
    assert span.name.endswith("explode") and span.status.status_code == StatusCode.ERROR
    assert span.attributes["error.type"] == "ValueError"


def test_without_a_configured_sdk_the_plugin_records_nothing() -> None:
    observer = OtelObserver()  # the global provider: the API's no-op proxy unless an SDK set one
    assert observer.graphopt_span_tracer(run=object()) is None
