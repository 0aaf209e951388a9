"""The report's lineage section: gepa's candidates with parents, origins and scores, from the checkpoint."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

import graphopt as go
from graphopt.cli.app import app
from graphopt.llm.scripted import follow_schema, scripted_client
from graphopt.optim.gepa import Candidate
from graphopt.train.checkpoint import Checkpoint
from graphopt.train.report import render_report
from graphopt.train.report_lineage import lineage_of, lineages_of

ROW = re.compile(r'<tr( class="best")?><td class="candidate">(?:&nbsp;|└ )*#(\d+)(?: <strong>★ best</strong>)?</td>'
                 r"<td>([^<]*)</td><td>([^<]*)</td><td>[^<]*</td><td>([^<]*)</td>")


def fence(text: str) -> str:
    return f"```text\n{text}\n```"


def lineage_rows(page: str) -> list[tuple[int, str, str, str, bool]]:
    """(id, parents, origin, mean score, best) of every row of the page's lineage section."""
    section = page.split("<h2>Lineage</h2>", 1)[1].split("<h2>", 1)[0]
    return [(int(i), parents, origin, score, bool(best)) for best, i, parents, origin, score in ROW.findall(section)]


def gepa_run(tmp_path: Path) -> tuple[go.Optimizer, Path, Path]:
    """Two params, each helping half the examples: mutations of each, then a merge of the two."""
    system, fmt = go.param("S", name="system"), go.param("F", name="format")

    def handler(messages: list[dict], params: object) -> str:
        content = messages[-1]["content"]
        current = content.split("```", 2)[1].split("\n", 1)[1].rstrip("\n")
        if "text 'system'" in content:
            return fence("S2" if "format = 'F2'" not in content else current + " again")
        return fence("F2" if "system = 'S2'" not in content else current + " again")

    @go.op
    def answer(system: str, fmt: str, text: str) -> str:
        return f"{system}/{fmt}/{text}"

    def metric(example: go.Example, prediction: str) -> float:
        system_value, fmt_value, text = prediction.split("/")
        if text in ("a", "b"):
            return 1.0 if system_value == "S2" else 0.5
        # 'S2' costs a little here, so the seed stays on these examples' front beside it.
        return (1.0 if fmt_value == "F2" else 0.5) - (0.1 if system_value == "S2" else 0.0)

    data = [{"input": {"text": t}, "target": ""} for t in "abcd"]
    opt = go.optimizer("gepa", [system, fmt], llm=scripted_client(handler), iterations=8,
                       minibatch_size=4, seed=1)
    checkpoint, report = tmp_path / "run.ckpt.json", tmp_path / "run.html"
    go.optimize(lambda text: answer(system, fmt, text), data, val=data, optimizers=opt, metric=metric,
                batch_size=4, epochs=1, quiet=True, checkpoint=checkpoint, report=report)
    return opt, checkpoint, report


def test_a_gepa_run_reports_every_candidate_with_its_parents_and_origin(tmp_path: Path) -> None:
    opt, checkpoint, report = gepa_run(tmp_path)
    lineage = opt.lineage()
    assert {"seed", "mutation:system", "mutation:format", "merge"} <= {c["origin"] for c in lineage}
    rows = lineage_rows(report.read_text(encoding="utf-8"))
    assert sorted(r[0] for r in rows) == [c["id"] for c in lineage]
    by_id = {r[0]: r for r in rows}
    for candidate in lineage:
        _, parents, origin, score, best = by_id[candidate["id"]]
        assert parents == (", ".join(f"#{p}" for p in candidate["parents"]) or "-")
        assert origin.split(" ")[0] == candidate["origin"].split(":")[0]
        if candidate["origin"].startswith("mutation:"):
            assert origin == f"mutation of {candidate['origin'].split(':')[1]}"
        assert score == f"{candidate['score']:.3f}" and best == candidate["best"]
    merged = next(c for c in lineage if c["origin"] == "merge")
    assert by_id[merged["id"]][2] == "merge of " + " + ".join(f"#{p}" for p in merged["parents"])
    assert merged["best"] and len(merged["parents"]) == 2
    # a child is listed below its first parent, after it
    order = [r[0] for r in rows]
    assert all(order.index(c["parents"][0]) < order.index(c["id"]) for c in lineage if c["parents"])
    # the checkpoint alone gives the same section (graphopt report)
    again = tmp_path / "again.html"
    done = CliRunner().invoke(app, ["report", str(checkpoint), "-o", str(again)])
    assert done.exit_code == 0, done.output
    assert lineage_rows(again.read_text(encoding="utf-8")) == rows
    assert lineage_of(Checkpoint.load(checkpoint).optimizers[0])[-1]["id"] == lineage[-1]["id"]


def test_a_run_without_gepa_has_no_lineage_section(tmp_path: Path) -> None:
    def handler(messages: list[dict], params: object) -> str:
        if messages[0]["content"].startswith("Answer"):
            left, right = messages[-1]["content"].split("+")
            return str(int(left) + int(right))
        return follow_schema(messages, params)

    client = scripted_client(handler)
    prompt = go.param("Answer with the number only.", name="prompt")

    @go.op
    def ask(prompt: str, question: str) -> str:
        return client.complete([{"role": "system", "content": prompt},
                                {"role": "user", "content": question}], max_tokens=8).text

    train = [{"input": {"question": f"{a}+{a}"}, "target": str(2 * a)} for a in range(4)]
    report = tmp_path / "report.html"
    go.optimize(lambda question: ask(prompt, question), train, quiet=True, batch_size=2,
                metric=lambda example, prediction: float(prediction == example.target),
                optimizers=[go.optimizer("optoprime", [prompt], llm=client)], report=report)
    page = report.read_text(encoding="utf-8")
    assert "<h2>Usage and cost</h2>" in page and "Lineage" not in page and 'class="lineage"' not in page


def test_lineage_of_reads_gepa_state_and_marks_the_best() -> None:
    pool = [Candidate(0, {"p": "a"}, [], "seed", 0, [0.5, 0.5]),
            Candidate(1, {"p": "b"}, [0], "mutation:p", 1, [1.0, 0.0]),
            Candidate(2, {"p": "c"}, [0], "mutation:p", 1, [0.0, 1.0]),
            Candidate(3, {"p": "d"}, [1, 2], "merge", 1, [1.0, 1.0]),
            Candidate(4, {"p": "e"}, [0], "mutation:p", 2, [float("-inf"), 1.0])]
    state = {"optimizer": "gepa", "extra": {"pool": [c.to_json() for c in pool], "frontier": {"3": 2}}}
    entries = lineage_of(state)
    assert [(e["id"], e["parents"], e["kind"], e["param"], e["score"], e["leads"], e["best"]) for e in entries] == [
        (0, [], "seed", None, 0.5, 0, False), (1, [0], "mutation", "p", 0.5, 0, False),
        (2, [0], "mutation", "p", 0.5, 0, False), (3, [1, 2], "merge", None, 1.0, 2, True),
        (4, [0], "mutation", "p", None, 0, False)]
    assert lineage_of({"optimizer": "optoprime", "extra": {}}) == []
    assert lineage_of({"optimizer": "gepa", "extra": {"pool": []}}) == []
    assert lineages_of([{"optimizer": "optoprime", "extra": {}}, state, state]).keys() == \
        {"gepa (optimizer 2)", "gepa (optimizer 3)"}


def test_lineage_text_is_escaped() -> None:
    hostile = "<script>alert(1)</script>"
    state = {"optimizer": hostile, "extra": {"pool": [
        {"id": 0, "parents": [], "origin": "seed", "step": 0, "scores": [1.0]},
        {"id": 1, "parents": [0], "origin": f"mutation:{hostile}", "step": 0, "scores": [0.0]}]}}
    page = render_report(title="t", graph=None, history=[], summary={}, values={},
                         lineages=lineages_of([state, state]))
    assert "<script" not in page and "mutation of &lt;script&gt;" in page


@pytest.mark.parametrize("lineages", [None, {}])
def test_render_report_without_lineage_has_no_section(lineages: dict | None) -> None:
    assert "Lineage" not in render_report(title="t", graph=None, history=[], summary={}, values={},
                                          lineages=lineages)
