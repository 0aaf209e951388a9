"""The run report: layout geometry, the score chart's axes, per-step diffs, rejections, escaping, CLI."""

from __future__ import annotations

import random
import re
from pathlib import Path
from types import ModuleType

import networkx as nx
import pytest
from typer.testing import CliRunner

from graphopt.cli.app import app
from graphopt.train.checkpoint import Checkpoint
from graphopt.train.history import OptimizerRecord, Rejected, StepRecord, UsageTotals
from graphopt.train.report import graph_data, graph_from_data, recorded_changes, render_report
from graphopt.train.report_chart import history_svg, nice_ticks
from graphopt.train.report_layout import Layout, layered_layout


def _crosses(points: list[tuple[float, float]], box: object) -> bool:
    """Whether the polyline passes through the inside of ``box`` (sampled finely)."""
    for (x1, y1), (x2, y2) in zip(points, points[1:]):
        for i in range(101):
            t = i / 100
            x, y = x1 + (x2 - x1) * t, y1 + (y2 - y1) * t
            if box.x + 1 < x < box.x + box.width - 1 and box.y + 1 < y < box.y + box.height - 1:
                return True
    return False


def _edges_clear_of_boxes(layout: Layout) -> list[tuple[object, object, object]]:
    return [(parent, child, key) for (parent, child), points in layout.edges.items()
            for key, box in layout.boxes.items() if key not in (parent, child) and _crosses(points, box)]


def test_an_edge_skipping_a_column_goes_around_the_box_in_it() -> None:
    # The demo's shape: parse.code feeds parse directly, and label sits in the column between.
    graph = nx.DiGraph([("prompt", "label"), ("review", "label"), ("label", "parse"), ("parse.code", "parse")])
    layout = layered_layout(graph)
    assert layout.boxes["parse.code"].x < layout.boxes["label"].x < layout.boxes["parse"].x
    assert len(layout.edges[("parse.code", "parse")]) == 4  # routed through a slot of the middle column
    assert _edges_clear_of_boxes(layout) == []


def test_no_edge_passes_under_a_box_in_random_graphs() -> None:
    rng = random.Random(3)
    for _ in range(12):
        graph = nx.DiGraph()
        graph.add_nodes_from(range(14))
        graph.add_edges_from((a, b) for a in range(14) for b in range(a + 1, 14) if rng.random() < 0.15)
        layout = layered_layout(graph)
        assert _edges_clear_of_boxes(layout) == []
        assert set(layout.edges) == set(graph.edges)


def test_the_chart_labels_every_step_and_both_axes() -> None:
    history = [StepRecord(step=s, epoch=0, values_hash="h", val_score=0.1 * s, train_score=0.05 * s)
               for s in range(7)]
    svg = history_svg(history)
    assert re.findall(r'class="xtick"[^>]*>(\d+)<', svg) == [str(s) for s in range(7)]
    assert len(re.findall(r'class="ytick"', svg)) >= 3
    assert ">step</text>" in svg and ">score</text>" in svg


def test_nice_ticks_cover_the_range_with_round_steps() -> None:
    assert nice_ticks(0.0, 1.0) == [0.0, 0.2, 0.4, 0.6, 0.8, 1.0]
    ticks = nice_ticks(0.37, 0.41)
    assert ticks[0] <= 0.37 and ticks[-1] >= 0.41 and len(ticks) >= 3


def test_recorded_changes_keep_changed_values_and_describe_huge_ones() -> None:
    assert recorded_changes(None, {"a": "x", "b": 1}) == {"a": "x", "b": 1}
    assert recorded_changes({"a": "x", "b": 1}, {"a": "x", "b": 2}) == {"b": 2}
    big = recorded_changes(None, {"t": list(range(10_000))})["t"]
    assert isinstance(big, str) and big.startswith("<value of")


def _history() -> list[StepRecord]:
    return [StepRecord(step=0, epoch=0, values_hash="a", val_score=0.5, best_score=0.5,
                       changes={"prompt": "Answer.\nBe brief.", "parse.code": "def parse(r):\n    return r\n"}),
            StepRecord(step=1, epoch=0, values_hash="b", train_score=0.25, val_score=0.75, best_score=0.75,
                       changes={"prompt": "Answer the <b>question</b>.\nBe brief."},
                       optimizers=[OptimizerRecord(name="optoprime", committed=["prompt"], score_before=0.25,
                                                   score_after=0.5),
                                   OptimizerRecord(name="evolution", rejected=Rejected(
                                       reason="scored 0.2 < 0.5 on the minibatch", score_before=0.5,
                                       score_after=0.2, params=["parse.code"]))],
                       usage=UsageTotals(calls=3, tokens=120, cost=0.0125, evaluations=4)),
            StepRecord(step=2, epoch=0, values_hash="c", val_score=0.75, best_score=0.75,
                       optimizers=[OptimizerRecord(name="optoprime", refused="reply had no suggestion")])]


def test_the_report_shows_diffs_rejections_refusals_and_usage() -> None:
    page = render_report(title="t", graph=None, history=_history(), summary={"steps": 2}, values={})
    changes = page.split("<h2>Parameter changes</h2>", 1)[1].split("<h2>", 1)[0]
    assert "step 1: prompt" in changes
    assert '<span class="del">-Answer.</span>' in changes
    assert '<span class="add">+Answer the &lt;b&gt;question&lt;/b&gt;.</span>' in changes
    assert "parse.code" not in changes  # unchanged after step 0: no diff
    rejected = page.split("<h2>Rejected and refused proposals</h2>", 1)[1].split("<h2>", 1)[0]
    assert "scored 0.2 &lt; 0.5 on the minibatch" in rejected and "0.500 → 0.200" in rejected
    assert "reply had no suggestion" in rejected
    steps = page.split("<h2>Steps</h2>", 1)[1].split("<h2>", 1)[0]
    assert "optoprime: prompt (gate 0.250 → 0.500)" in steps
    usage = page.split("<h2>Usage and cost</h2>", 1)[1].split("<h2>", 1)[0]
    assert "0.0125" in usage and "<th>120</th>" in usage


def test_every_value_is_escaped() -> None:
    hostile = '</pre><script>alert("x")</script><img src=x onerror=alert(1)>'
    graph = nx.DiGraph()
    graph.add_node(1, kind="param", name=hostile, value=hostile)
    history = [StepRecord(step=0, epoch=0, values_hash="a", changes={hostile: hostile}),
               StepRecord(step=1, epoch=0, values_hash="b", changes={hostile: hostile + "!"},
                          optimizers=[OptimizerRecord(name=hostile, refused=hostile)])]
    page = render_report(title=hostile, graph=graph, history=history, summary={hostile: hostile},
                         values={hostile: hostile})
    assert "<script" not in page and "<img" not in page
    assert "&lt;script&gt;" in page


def test_graph_data_round_trips_through_json() -> None:
    graph = nx.DiGraph()
    graph.add_node(1, kind="param", name="p", value="'x'", trainable=True)
    graph.add_node(2, kind="message", name="f", value="1", op="f")
    graph.add_edge(1, 2, arg="x")
    again = graph_from_data(graph_data(graph))
    assert dict(again.nodes(data=True)) == dict(graph.nodes(data=True))
    assert list(again.edges(data=True)) == [(1, 2, {"arg": "x"})]


@pytest.fixture
def finished_run(scripted: ModuleType, tmp_path: Path) -> tuple[Path, Path]:
    checkpoint, report = tmp_path / "run.ckpt.json", tmp_path / "run.html"
    trainer, _, _ = scripted.build(tmp_path / "cache", checkpoint=checkpoint, report=report, epochs=1,
                                   eval_every=1)
    trainer.fit()
    return checkpoint, report


def test_optimize_with_report_writes_it_from_the_run(finished_run: tuple[Path, Path]) -> None:
    checkpoint, report = finished_run
    saved = Checkpoint.load(checkpoint)
    assert saved.graph is not None and {n["name"] for n in saved.graph["nodes"]} >= {"instruction", "parse.code"}
    assert set(saved.history[0].changes) == {"instruction", "demos", "parse.code"}
    page = report.read_text()
    assert "step 1: instruction" in page  # the scripted model rewrites the instruction in step 1
    assert "-Answer." in page or "- Answer." in page
    assert page.count('class="node"') == len(saved.graph["nodes"])


def test_report_command_draws_the_report_of_a_checkpoint(finished_run: tuple[Path, Path],
                                                         tmp_path: Path) -> None:
    checkpoint, written = finished_run
    target = tmp_path / "again.html"
    done = CliRunner().invoke(app, ["report", str(checkpoint), "-o", str(target)])
    assert done.exit_code == 0, done.output
    assert target.read_text().split("<h2>", 1)[1] == written.read_text().split("<h2>", 1)[1]


def test_report_command_names_a_file_that_is_no_checkpoint(tmp_path: Path) -> None:
    bad = tmp_path / "x.json"
    bad.write_text("{}")
    done = CliRunner().invoke(app, ["report", str(bad)])
    assert done.exit_code != 0
    assert "x.json" in done.output and not (tmp_path / "report.html").exists()


def test_a_huge_graph_is_kept_as_its_size_only() -> None:
    graph = nx.path_graph(1000, create_using=nx.DiGraph)
    assert graph_data(graph) == {"nodes": [], "edges": [], "omitted_nodes": 1000}
