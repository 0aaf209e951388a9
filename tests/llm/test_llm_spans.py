"""LLM calls as spans: GenAI attributes before and after the call, sync and async, failures too."""

from __future__ import annotations

import asyncio
from typing import Any, Mapping

import pytest

from graphopt.graph.spans import current_tracer, span, tracing
from graphopt.llm.scripted import scripted_client


class Recorder:
    def __init__(self) -> None:
        self.spans: list[dict[str, Any]] = []

    def start(self, kind: str, name: str, attributes: Mapping[str, Any]) -> dict[str, Any]:
        self.spans.append({"kind": kind, "name": name, "start": dict(attributes)})
        return self.spans[-1]

    def end(self, handle: dict[str, Any], attributes: Mapping[str, Any], error: BaseException | None) -> None:
        handle.update(end=dict(attributes), error=error)


def test_a_call_is_a_chat_span_with_genai_attributes() -> None:
    client = scripted_client(lambda messages, params: "Paris", model="scripted/tiny")
    recorder = Recorder()
    with tracing(recorder):
        reply = client.complete("Capital of France?", max_tokens=4, temperature=0.0)
    (only,) = recorder.spans
    assert only["kind"] == "llm" and only["name"] == "chat tiny"
    assert only["start"] == {"gen_ai.operation.name": "chat", "gen_ai.system": "scripted",
                             "gen_ai.request.model": "tiny", "gen_ai.request.max_tokens": 4,
                             "gen_ai.request.temperature": 0.0}
    assert only["end"]["gen_ai.usage.input_tokens"] == reply.usage.prompt_tokens > 0
    assert only["end"]["gen_ai.usage.output_tokens"] == reply.usage.completion_tokens > 0
    assert only["end"]["gen_ai.response.model"] == reply.model and only["error"] is None


def test_async_calls_and_failures_are_spans_too() -> None:
    def handler(messages: Any, params: Any) -> Any:
        return TimeoutError("provider timed out") if "fail" in messages[-1]["content"] else "ok"

    client = scripted_client(handler)
    recorder = Recorder()

    async def calls() -> None:
        await client.acomplete("hello")
        with pytest.raises(Exception):
            await client.acomplete("fail")

    with tracing(recorder):
        asyncio.run(calls())
    assert [s["kind"] for s in recorder.spans] == ["llm", "llm"]
    assert recorder.spans[0]["error"] is None and recorder.spans[0]["end"]["gen_ai.usage.output_tokens"] == 1
    assert recorder.spans[1]["error"] is not None and recorder.spans[1]["end"] == {}


def test_without_a_tracer_nothing_is_recorded_and_tracing_nests() -> None:
    outer, inner = Recorder(), Recorder()
    assert current_tracer() is None
    with tracing(outer):
        with tracing(inner):
            with span("optimizer_step", "x", {}):
                pass
        with pytest.raises(ValueError):
            with span("optimizer_step", "y", {}):
                raise ValueError("bad")
    assert current_tracer() is None
    assert [s["name"] for s in inner.spans] == ["x"]
    assert [s["name"] for s in outer.spans] == ["y"] and isinstance(outer.spans[0]["error"], ValueError)
