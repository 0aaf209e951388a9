"""go.evaluate: per-example outcomes, summary, errors, usage and the shared evaluation cache."""

from __future__ import annotations

import json

import pytest

import graphopt as go
from graphopt.llm.scripted import scripted_client
from graphopt.train import EvalCache

DATA = [{"id": "a", "input": {"question": "2+2"}, "target": "4"},
        {"id": "b", "input": {"question": "3+3"}, "target": "6"},
        {"id": "c", "input": {"question": "boom"}, "target": "?"}]


def answer(messages, params):
    question = messages[-1]["content"].rsplit(":", 1)[-1].strip()
    if question == "boom":
        return RuntimeError("model is down")
    return str(eval(question))  # noqa: S307 - the test's own arithmetic


class Calculator(go.Module):
    def __init__(self, client):
        self.prompt = go.param("Compute:", name="prompt")
        self.client = client

    def forward(self, question):
        return go.llm.chat(go.ops.format("{} {}", self.prompt, question), client=self.client)


def exact(example, prediction):
    return float(str(prediction).strip() == example.target)


def test_evaluate_gives_each_outcome_the_mean_the_errors_and_the_usage():
    client = scripted_client(answer)
    result = go.evaluate(Calculator(client), DATA, exact, concurrency=2)
    by_id = {e.id: e for e in result.examples}
    assert [e.id for e in result.examples] == ["a", "b", "c"]
    assert by_id["a"].score == 1.0 and by_id["a"].output == '"4"'
    assert by_id["c"].score == 0.0 and "model is down" in by_id["c"].error
    assert [e.id for e in result.errors] == ["c"]
    assert result.score == pytest.approx(2 / 3)
    assert result.usage.evaluations == 3
    assert result.usage.calls == 2 and result.usage.tokens > 0
    assert "3 examples, mean score 0.667, 1 errors" in result.summary()
    assert json.loads(result.model_dump_json())["examples"][1]["target"] == "6"


def test_evaluate_reuses_the_evaluation_cache_until_a_value_changes(tmp_path):
    client = scripted_client(answer)
    model = Calculator(client)
    cache = EvalCache(tmp_path / "evals")
    first = go.evaluate(model, DATA, exact, cache=cache)
    again = go.evaluate(model, DATA, exact, cache=cache)
    assert not any(e.cached for e in first.examples)
    assert all(e.cached for e in again.examples) and again.usage.evaluations == 0
    assert again.usage.calls == 0 and again.score == first.score
    model.prompt.assign("Work out:")
    changed = go.evaluate(model, DATA, exact, cache=cache)
    assert changed.usage.evaluations == 3


def test_evaluate_scores_a_raising_metric_as_a_failure_and_refuses_no_data():
    def metric(example, prediction):
        raise ValueError("bad metric")

    result = go.evaluate(lambda question: question, DATA[:1], metric, error_score=-1.0)
    assert result.examples[0].score == -1.0 and "bad metric" in result.examples[0].error
    with pytest.raises(ValueError, match="at least one example"):
        go.evaluate(lambda question: question, [], metric)
