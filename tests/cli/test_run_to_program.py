"""From a run to a program: ``graphopt eval``, ``export``, ``run --save``, ``resume`` options,
``Module.load`` of checkpoints and exported files, and failed runs recorded with their error."""

from __future__ import annotations

import json
import textwrap

import pytest
from typer.testing import CliRunner

import graphopt as go
from graphopt.cli.app import app
from graphopt.llm.scripted import follow_schema, scripted_client
from graphopt.train import Checkpoint, Trainer

WORKFLOW = textwrap.dedent('''
    import graphopt as go

    class Shifter(go.Module):
        def __init__(self):
            self.offset = go.param(0, name="offset", space=go.Int(-5, 5))

        def forward(self, x):
            return go.op(name="shift")(lambda x, offset: x + offset)(x, self.offset)

    def closeness(example, prediction):
        if prediction == 99:
            raise ValueError("no 99s")
        return -abs(prediction - example.target)
''')


@pytest.fixture
def project(tmp_path, monkeypatch):
    for name in ("GRAPHOPT_MODEL", "GRAPHOPT_CACHE_DIR"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    monkeypatch.setenv("COLUMNS", "200")
    monkeypatch.chdir(tmp_path)
    (tmp_path / "flow.py").write_text(WORKFLOW)
    rows = [{"id": f"r{x}", "input": {"x": x}, "target": x + 3} for x in range(6)]
    (tmp_path / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return tmp_path


def invoke(*args: str):
    return CliRunner().invoke(app, list(args), catch_exceptions=False)


def train(project, *extra: str):
    return invoke("run", "flow.py:Shifter", "--data", "train.jsonl", "--metric", "flow.py:closeness",
                  "--optimizer", "random", "--epochs", "4", "--batch-size", "3",
                  "--checkpoint", "run.ckpt", "-q", *extra)


def load_shifter(project):
    namespace: dict = {}
    exec(compile((project / "flow.py").read_text(), "flow.py", "exec"), namespace)
    return namespace["Shifter"]()


def test_run_save_writes_the_best_values_that_module_load_reads(project):
    done = train(project, "--save", "best.json")
    assert done.exit_code == 0, done.output
    saved = Checkpoint.load(project / "run.ckpt")
    model = load_shifter(project)
    model.load(project / "best.json")
    assert model.offset.value == saved.best.values["offset"]
    assert "best values: best.json" in done.output


def test_module_load_reads_a_checkpoint_best_or_last(project):
    assert train(project).exit_code == 0
    saved = Checkpoint.load(project / "run.ckpt")
    model = load_shifter(project)
    model.load(project / "run.ckpt")
    assert model.offset.value == saved.best.values["offset"]
    model.load(project / "run.ckpt", values="last")
    assert model.offset.value == saved.params["offset"]


def test_export_writes_best_or_last_values_as_a_parameter_file(project):
    assert train(project).exit_code == 0
    saved = Checkpoint.load(project / "run.ckpt")
    done = invoke("export", "run.ckpt", "-o", "params.json")
    assert done.exit_code == 0, done.output
    assert f"best values, step {saved.best.step}" in done.output
    data = json.loads((project / "params.json").read_text())
    assert data == {"format": "graphopt.params/1",
                    "params": {"offset": {"kind": "int", "value": saved.best.values["offset"]}}}
    assert invoke("export", "run.ckpt", "-o", "last.json", "--values", "last").exit_code == 0
    model = load_shifter(project)
    model.load(project / "last.json")
    assert model.offset.value == saved.params["offset"]
    refused = CliRunner().invoke(app, ["export", "run.ckpt", "-o", "x.json", "--values", "worst"])
    assert refused.exit_code == 2 and "expects 'best' or 'last'" in refused.output


def test_eval_prints_a_table_and_writes_json_for_the_run_values(project):
    assert train(project).exit_code == 0
    saved = Checkpoint.load(project / "run.ckpt")
    done = invoke("eval", "flow.py:Shifter", "--data", "train.jsonl", "--metric", "flow.py:closeness",
                  "--params", "run.ckpt", "-o", "eval.json")
    assert done.exit_code == 0, done.output
    result = json.loads((project / "eval.json").read_text())
    assert [e["id"] for e in result["examples"]] == [f"r{x}" for x in range(6)]
    offset = saved.best.values["offset"]
    assert [e["score"] for e in result["examples"]] == [-abs(offset - 3)] * 6
    assert "6 examples, mean score" in done.output and "r5" in done.output


def test_eval_keeps_outcomes_in_graphopts_evaluation_cache_unless_told_not_to(project):
    args = ("eval", "flow.py:Shifter", "--data", "train.jsonl", "--metric", "flow.py:closeness")
    assert "0 from the cache" in invoke(*args).output
    assert "6 from the cache" in invoke(*args).output
    assert (project / "xdg" / "graphopt" / "eval").is_dir()
    assert "0 from the cache" in invoke(*args, "--no-eval-cache").output


def test_eval_shows_errors_in_the_table(project):
    (project / "bad.jsonl").write_text(json.dumps({"id": "x", "input": {"x": 99}, "target": 1}) + "\n")
    done = invoke("eval", "flow.py:Shifter", "--data", "bad.jsonl", "--metric", "flow.py:closeness")
    assert done.exit_code == 0, done.output
    assert "no 99s" in done.output and "1 errors" in done.output


def test_resume_takes_model_and_budget_options(project):
    assert train(project).exit_code == 0
    saved = Checkpoint.load(project / "run.ckpt")
    saved.model_copy(update={"finished": None}).save(project / "run.ckpt")  # as a kill leaves it
    done = invoke("resume", "run.ckpt", "--model", "openai/gpt-4o-mini", "--max-calls", "5", "-q",
                  "--save", "resumed.json")
    assert done.exit_code == 0, done.output
    config = Checkpoint.load(project / "run.ckpt").config
    assert config["model"] == "openai/gpt-4o-mini" and config["max_calls"] == 5
    assert (project / "resumed.json").is_file()


class Greeter(go.Module):
    def __init__(self):
        self.prompt = go.param("Say hi.", name="prompt")

    def forward(self, name):
        return go.ops.format("{} {}", self.prompt, name)


def test_a_run_stopped_by_an_error_is_recorded_as_failed_and_resumes(tmp_path):
    data = [{"id": "a", "input": {"name": "Ann"}, "target": "Hello Ann"}]

    def metric(example, prediction):
        return go.Feedback(score=float(prediction == example.target), text="greet with Hello")

    def trainer(handler, **options):
        model = Greeter()
        opt = go.optimizer("optoprime", model, llm=scripted_client(handler))
        return Trainer(model, data, metric=metric, optimizers=opt, epochs=2, batch_size=1,
                       checkpoint=tmp_path / "run.ckpt", on_step_error="raise", quiet=True, **options)

    def down(messages, params):
        return RuntimeError("Missing credentials for the provider")

    with pytest.raises(go.OptimizerStepError):
        trainer(down).fit()
    saved = Checkpoint.load(tmp_path / "run.ckpt")
    assert saved.finished is None and "Missing credentials" in saved.error
    shown = CliRunner().invoke(app, ["show", str(tmp_path / "run.ckpt")], env={"COLUMNS": "200"})
    assert "failed (resumable)" in shown.output and "Missing credentials" in shown.output
    result = trainer(follow_schema, resume=tmp_path / "run.ckpt").fit()
    assert result.steps == 2
    after = Checkpoint.load(tmp_path / "run.ckpt")
    assert after.finished == "completed" and after.error is None
