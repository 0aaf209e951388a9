"""``graphopt show``: values printed verbatim, columns folded rather than cut."""

from __future__ import annotations

import json
import textwrap

from typer.testing import CliRunner

from graphopt.cli.app import app
from graphopt.train import Checkpoint

WORKFLOW = textwrap.dedent('''
    import graphopt as go

    prompt = go.param("Use the [tool] result; cite [source].", name="prompt",
                      space=go.Choice(["Use the [tool] result; cite [source].",
                                       "Use the [bold]tool[/bold] result; [red]never[/red] guess."]))

    @go.op
    def answer(x, prompt):
        return f"{prompt} {x}"

    def flow(x):
        return answer(x, prompt)
''')


def run_once(tmp_path, monkeypatch, *args: str):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    (tmp_path / "flow.py").write_text(WORKFLOW)
    rows = [{"input": {"x": i}, "target": "?"} for i in range(3)]
    (tmp_path / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    done = CliRunner().invoke(app, ["run", "flow.py:flow", "--data", "train.jsonl", "--optimizer", "random",
                                    "--batch-size", "1", "--checkpoint", "run.ckpt.json", "-q"])
    assert done.exit_code == 0, done.output
    return CliRunner().invoke(app, ["show", "run.ckpt.json", *args])


def test_values_with_square_brackets_are_printed_verbatim(tmp_path, monkeypatch):
    monkeypatch.setenv("COLUMNS", "300")
    done = run_once(tmp_path, monkeypatch, "--values")
    assert done.exit_code == 0, done.output
    best = Checkpoint.load(tmp_path / "run.ckpt.json").best
    assert f"prompt: {best.values['prompt']!r}" in done.output
    assert "[tool]" in done.output or "[bold]tool[/bold]" in done.output


def test_narrow_terminal_folds_columns_instead_of_cutting_them(tmp_path, monkeypatch):
    monkeypatch.setenv("COLUMNS", "50")
    done = run_once(tmp_path, monkeypatch)
    assert done.exit_code == 0, done.output
    assert "…" not in done.output
