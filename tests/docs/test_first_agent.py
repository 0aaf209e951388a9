"""docs/first-agent.md followed end to end on the embedded model, each step's outcome checked."""

from __future__ import annotations

import json

import pytest

import graphopt as go
from graphopt.graph.walk import topological_order
from graphopt.train import Checkpoint

from .blocks import DOCS, python_blocks, run_block
from .conftest import embedded_model_env

pytestmark = pytest.mark.slow


def test_first_agent_page_runs_step_by_step(tmp_path, monkeypatch, capsys):
    embedded_model_env(tmp_path, monkeypatch)
    blocks = python_blocks(DOCS / "first-agent.md")
    assert [b.skipped for b in blocks] == [None] * 7
    ns: dict = {"__name__": "first_agent"}

    run_block(blocks[0], ns)  # 1. tools
    assert isinstance(ns["calculator"]("What is 12 * 7?"), go.Message)
    assert ns["calculator"]("What is 12 * 7?").value == "84"
    assert ns["capital"]("What is the capital of Kenya?").value == "Nairobi"

    run_block(blocks[1], ns)  # 2. the module: one LLM call, a traced lookup, a tool
    agent = ns["agent"]
    assert list(dict(agent.named_parameters())) == ["router.prompt"]
    out = agent("What is the capital of France?")
    ran = [n.op.name for n in topological_order([out]) if n.op is not None]
    assert isinstance(out, go.Message) and out.value in {"Paris", "no arithmetic in the question"}
    assert ran.count("llm.chat") == 1 and "lookup" in ran and "router.prompt" in \
        [n.name for n in topological_order([out])]

    run_block(blocks[2], ns)  # 3. data and metric
    metric, train = ns["metric"], ns["train"]
    example = go.train.load_examples(train)[0]
    assert ns["metric"](example, "84").score == 1.0
    assert "expected '84'" in metric(example, "Paris").text

    run_block(blocks[3], ns)  # 4. optimize
    result = ns["result"]
    assert result.steps == 1 and result.stopped == "completed"
    assert set(result.best_values) == {"router.prompt"}
    assert result.best_score >= result.initial_score
    saved = Checkpoint.load(tmp_path / "agent.ckpt.json")
    assert saved.finished == "completed" and list(saved.params) == ["router.prompt"]
    assert agent.router.prompt.value == result.best_values["router.prompt"]

    run_block(blocks[4], ns)  # 5. evaluate (its own in-memory cache: every example runs)
    report = ns["report"]
    assert [row.id for row in report.examples] == ["jp", "add"]
    assert report.score == pytest.approx(result.best_score)
    assert report.usage.evaluations == 2
    assert "2 examples, mean score" in capsys.readouterr().out

    run_block(blocks[5], ns)  # 6. save
    data = json.loads((tmp_path / "agent.params.json").read_text())
    assert data["params"] == {"router.prompt": {"kind": "text", "value": result.best_values["router.prompt"]}}

    run_block(blocks[6], ns)  # 7. production: a fresh agent loads the values, untraced
    assert ns["production"].router.prompt.value == result.best_values["router.prompt"]
    assert isinstance(ns["answer"], str) and not isinstance(ns["answer"], go.Node)
