"""``mapelites``: the archive fills its cells, keeps the best per cell, reports coverage."""

from __future__ import annotations

import itertools
from typing import Any, Mapping, Sequence

import pytest

import graphopt as go
from graphopt.graph.node import Param
from graphopt.llm.scripted import scripted_client
from graphopt_promptsearch import Descriptor, keyword_labels, length_bins


class TableEvaluation:
    def __init__(self, score, size: int = 4) -> None:
        self.score = score
        self.size = size
        self.asked = 0

    def __call__(self) -> go.Feedback:
        return go.Feedback(score=0.0)

    def scores(self, values: Mapping[Param, Any], indices: Sequence[int]) -> list[float]:
        self.asked += 1
        return [self.score({p.name: v for p, v in values.items()}, i) for i in indices]


@go.op
def answer(system: str, question: str) -> str:
    return f"{system} -> {question}"


VARIANTS = ["Answer please.", "Answer the question carefully and completely, please.",
            "Answer now.", "Answer the question carefully and completely, right now.",
            "Answer, please, kindly.", "Answer."]


def cycling_model():
    replies = itertools.cycle(VARIANTS)
    return scripted_client(lambda messages, params: f"```text\n{next(replies)}\n```")


DESCRIPTORS = [length_bins((20, 40)), keyword_labels({"polite": ["please"]}, default="plain")]


def test_length_and_keyword_descriptors_label_values():
    length, tone = DESCRIPTORS
    assert length.labels == ("<20", "20-40", ">=40")
    assert length.measure({"p": "x" * 25}) == "20-40"
    assert tone.measure({"p": "Reply, PLEASE."}) == "polite" and tone.measure({"p": "Go."}) == "plain"


def test_archive_fills_cells_keeps_the_best_per_cell_and_reports_coverage():
    system = go.param("Answer briefly.", name="system")
    opt = go.optimizer("mapelites", [system], llm=cycling_model(), descriptors=DESCRIPTORS,
                       iterations=6, seed=0)
    go.backward(answer(system, "2+2?"), go.Feedback(score=0.0, text="too terse"))
    opt.step(TableEvaluation(lambda values, i: float(len(values["system"]))))
    archive = opt.archive()
    assert set(archive) == {("<20", "polite"), ("<20", "plain"), (">=40", "polite"),
                            (">=40", "plain"), ("20-40", "polite")}
    assert opt.coverage() == pytest.approx(5 / 6)
    # "Answer briefly." (15 chars) and "Answer now." (11) share a cell: the longer (higher) stays
    assert archive[("<20", "plain")]["values"] == {"system": "Answer briefly."}
    assert system.value == VARIANTS[3]                   # the best elite (the longest) is committed
    assert opt.state_dict()["extra"]["coverage"] == pytest.approx(5 / 6)


def test_children_outside_the_grid_are_not_scored():
    system = go.param("Answer briefly.", name="system")
    only_short = [Descriptor("short", lambda v: "short" if len(v["system"]) < 20 else None, ("short",))]
    evaluation = TableEvaluation(lambda values, i: 1.0)
    opt = go.optimizer("mapelites", [system], llm=cycling_model(), descriptors=only_short,
                       iterations=6, seed=0)
    go.backward(answer(system, "2+2?"), go.Feedback(score=0.0, text="x"))
    opt.step(evaluation)
    assert evaluation.asked == 1 + sum(len(v) < 20 for v in VARIANTS)
    assert opt.coverage() == 1.0


def test_options_are_checked():
    with pytest.raises(ValueError, match="descriptors"):
        go.optimizer("mapelites", [go.param("A", name="system")], descriptors=[lambda v: 1])
