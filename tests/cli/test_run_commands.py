"""``graphopt run | resume | show | cache`` through typer's runner, on a tiny workflow file."""

from __future__ import annotations

import json
import textwrap

import pytest
from typer.testing import CliRunner

from graphopt.cli.app import app
from graphopt.train import Checkpoint

WORKFLOW = textwrap.dedent('''
    import graphopt as go

    offset = go.param(0, name="offset", space=go.Int(-5, 5))

    @go.op
    def shift(x, offset):
        return x + offset

    def flow(x):
        return shift(x, offset)

    def closeness(example, prediction):
        return -abs(prediction - example.target)
''')


@pytest.fixture
def project(tmp_path, monkeypatch):
    for name in ("GRAPHOPT_MODEL", "GRAPHOPT_CACHE_DIR"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    monkeypatch.setenv("COLUMNS", "200")
    (tmp_path / "flow.py").write_text(WORKFLOW)
    rows = [{"input": {"x": x}, "target": x + 3} for x in range(6)]
    (tmp_path / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return tmp_path


def invoke(*args: str):
    return CliRunner().invoke(app, list(args), catch_exceptions=False)


def test_run_trains_and_writes_a_checkpoint(project):
    ckpt = project / "run.ckpt"
    done = invoke("run", f"{project / 'flow.py'}:flow", "--data", str(project / "train.jsonl"),
                  "--metric", f"{project / 'flow.py'}:closeness", "--optimizer", "random",
                  "--epochs", "3", "--batch-size", "3", "--checkpoint", str(ckpt), "--quiet")
    assert done.exit_code == 0, done.output
    saved = Checkpoint.load(ckpt)
    assert saved.finished == "completed" and saved.position.step == 6
    assert saved.config["optimizers"] == [{"name": "random", "params": None, "options": {}}]
    assert "validation score" in done.output


def test_run_reads_a_yaml_config_and_options_override_it(project):
    (project / "run.yaml").write_text(
        f"workflow: {project / 'flow.py'}:flow\ndata: {project / 'train.jsonl'}\n"
        f"metric: {project / 'flow.py'}:closeness\noptimizers:\n  - name: random\n    options: {{seed: 4}}\n"
        f"epochs: 5\n")
    ckpt = project / "run.ckpt"
    done = invoke("run", "--config", str(project / "run.yaml"), "--epochs", "1",
                  "--checkpoint", str(ckpt), "-q")
    assert done.exit_code == 0, done.output
    saved = Checkpoint.load(ckpt)
    assert saved.config["epochs"] == 1 and saved.position.step == 1
    assert saved.optimizers[0]["optimizer"] == "random"


def test_run_reads_a_toml_config(project):
    (project / "run.toml").write_text(
        f'workflow = "{project / "flow.py"}:flow"\ndata = "{project / "train.jsonl"}"\n'
        f'optimizers = ["random"]\ncheckpoint = "{project / "t.ckpt"}"\n')
    assert invoke("run", "--config", str(project / "run.toml"), "-q").exit_code == 0
    assert Checkpoint.load(project / "t.ckpt").finished == "completed"


def test_resume_continues_a_run_stopped_by_its_budget_less_run(project):
    ckpt = project / "run.ckpt"
    invoke("run", f"{project / 'flow.py'}:flow", "--data", str(project / "train.jsonl"),
           "--metric", f"{project / 'flow.py'}:closeness", "--optimizer", "random", "--epochs", "2",
           "--batch-size", "3", "--checkpoint", str(ckpt), "-q")
    saved = Checkpoint.load(ckpt)
    # Pretend the process died after step 2: rewind the checkpoint to that step.
    data = json.loads(ckpt.read_text())
    data["finished"] = None
    ckpt.write_text(json.dumps(data))
    done = invoke("resume", str(ckpt), "-q")
    assert done.exit_code == 0, done.output
    assert Checkpoint.load(ckpt).best == saved.best


def test_show_prints_the_history_table(project):
    ckpt = project / "run.ckpt"
    invoke("run", f"{project / 'flow.py'}:flow", "--data", str(project / "train.jsonl"),
           "--optimizer", "random", "--checkpoint", str(ckpt), "-q", "--batch-size", "2")
    done = invoke("show", str(ckpt), "--values")
    assert done.exit_code == 0
    assert "graphopt history" in done.output and "status: completed" in done.output
    assert "offset" in done.output


def test_show_names_a_file_that_is_not_a_checkpoint(project):
    (project / "bad.json").write_text("{}")
    done = invoke("show", str(project / "bad.json"))
    assert done.exit_code == 2
    assert "expected a graphopt.checkpoint/1 file" in done.output


def test_run_with_an_unknown_optimizer_fails_cleanly(project):
    done = invoke("run", f"{project / 'flow.py'}:flow", "--data", str(project / "train.jsonl"),
                  "--optimizer", "randum", "-q", "--checkpoint", str(project / "c"))
    assert done.exit_code == 2
    assert "did you mean 'random'" in done.output


def test_cache_stats_and_clear(project):
    from graphopt.train.cache import EvalCache, Outcome

    cache_dir = project / "cache"
    EvalCache(cache_dir / "eval").set("key", Outcome(score=1.0))
    stats = invoke("cache", "stats", "--cache-dir", str(cache_dir))
    assert stats.exit_code == 0 and "evaluations" in stats.output
    assert " kB " in stats.output or " B " in stats.output  # the size column
    cleared = invoke("cache", "clear", "--cache-dir", str(cache_dir))
    assert "cleared 1 evaluations" in cleared.output
    assert len(EvalCache(cache_dir / "eval")) == 0
