"""Bad input to the command line: every case ends in one line on stderr and exit code 2.

Malformed configs, workflows, metrics, paths and options, run through typer's runner; then a
full disk, a corrupt cache database, ``--debug`` and an internal error. Case ids count the cases.
"""

from __future__ import annotations

import errno
import json
import os
import textwrap
from pathlib import Path
from typing import Callable

import pytest
from typer.testing import CliRunner

from graphopt.cli.app import app

FLOW = textwrap.dedent('''
    import torch
    import graphopt as go

    offset = go.param(0, name="offset", space=go.Int(-5, 5))
    weights = go.param(torch.zeros(2, requires_grad=True), name="weights")
    LIMIT = 3

    @go.op
    def shift(x, offset):
        return x + offset

    def flow(x):
        return shift(x, offset)

    def closeness(example, prediction):
        return -abs(prediction - example.target)

    def one_argument(prediction):
        return 1.0
''')


@pytest.fixture
def project(tmp_path, monkeypatch):
    for name in ("GRAPHOPT_MODEL", "GRAPHOPT_CACHE_DIR"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    monkeypatch.setenv("COLUMNS", "200")
    monkeypatch.chdir(tmp_path)
    (tmp_path / "flow.py").write_text(FLOW)
    rows = [{"input": {"x": x}, "target": x + 3} for x in range(4)]
    (tmp_path / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return tmp_path


def config(text: str, name: str = "run.yaml") -> Callable[[Path], list[str]]:
    """A case: write ``text`` as the config file and run with it."""
    def make(project: Path) -> list[str]:
        (project / name).write_text(textwrap.dedent(text))
        return ["run", "--config", name, "-q"]
    return make


def settings(**changes: object) -> Callable[[Path], list[str]]:
    """A case: a valid YAML config with ``changes`` (None removes a key)."""
    base: dict[str, object] = {"workflow": "flow.py:flow", "data": "train.jsonl",
                               "metric": "flow.py:closeness", "optimizers": ["random"],
                               "checkpoint": "run.ckpt.json"}
    base.update(changes)
    body = json.dumps({k: v for k, v in base.items() if v is not None})  # JSON is YAML
    return config(body)


def files(files: dict[str, str | bytes], args: list[str]) -> Callable[[Path], list[str]]:
    """A case: write ``files`` (a trailing / makes a directory) and run ``args``."""
    def make(project: Path) -> list[str]:
        for name, content in files.items():
            if name.endswith("/"):
                (project / name).mkdir()
            elif isinstance(content, bytes):
                (project / name).write_bytes(content)
            else:
                (project / name).write_text(textwrap.dedent(content))
        return args
    return make


def workflow(source: str, name: str = "flow") -> Callable[[Path], list[str]]:
    """A case: a workflow file ``bad.py`` with ``source``."""
    return files({"bad.py": source}, ["run", f"bad.py:{name}", "--data", "train.jsonl",
                                      "--optimizer", "random", "-q"])


RUN = ["run", "flow.py:flow", "--data", "train.jsonl", "--optimizer", "random", "-q"]

# case id -> (how to make it, a fragment the one-line message must contain)
CASES: dict[str, tuple[Callable[[Path], list[str]], str]] = {
    "yaml-syntax": (config("workflow: [flow.py:flow\ndata: x\n"), "config 'run.yaml': not valid YAML"),
    "toml-syntax": (config('workflow = "flow.py:flow\n', "run.toml"), "config 'run.toml': not valid TOML"),
    "yaml-list": (config("- workflow\n- data\n"), "config 'run.yaml': expects a mapping of settings, got a list"),
    "yaml-scalar": (config("just some words\n"), "expects a mapping of settings, got a str"),
    "empty-yaml": (config(""), "config 'run.yaml': is empty"),
    "empty-toml": (config("", "run.toml"), "config 'run.toml': is empty"),
    "comments-only-yaml": (config("# nothing here\n"), "config 'run.yaml': is empty"),
    "json-suffix": (config("{}", "run.json"), "expects a .yaml, .yml or .toml file"),
    "missing-config": (lambda p: ["run", "--config", "nowhere.yaml"], "config 'nowhere.yaml': cannot read it"),
    "config-is-a-directory": (files({"dir.yaml/": ""}, ["run", "--config", "dir.yaml"]),
                              "config 'dir.yaml': cannot read it"),
    "config-not-utf8": (files({"run.yaml": b"workflow: \xff\xfe\n"}, ["run", "--config", "run.yaml"]),
                        "expects UTF-8 text"),
    "unknown-setting": (settings(epoch=3), "unknown setting 'epoch'; did you mean 'epochs'?"),
    "epochs-a-word": (settings(epochs="three"), "setting 'epochs' expects a valid integer, got 'three'"),
    "epochs-a-quoted-number": (settings(epochs="3"), "setting 'epochs' expects a valid integer, got '3'"),
    "epochs-negative": (settings(epochs=-1), "setting 'epochs' expects greater than or equal to 0"),
    "batch-size-zero": (settings(batch_size=0), "setting 'batch_size' expects greater than or equal to 1"),
    "concurrency-a-bool": (settings(concurrency=True), "setting 'concurrency' expects a valid integer, got True"),
    "patience-negative": (settings(patience=-1), "setting 'patience' expects greater than or equal to 1"),
    "max-usd-nan": (config("workflow: flow.py:flow\ndata: train.jsonl\noptimizers: [random]\nmax_usd: .nan\n"),
                    "setting 'max_usd' expects a finite number"),
    "max-calls-a-string": (settings(max_calls="5"), "setting 'max_calls' expects a valid integer, got '5'"),
    "optimizers-a-number": (settings(optimizers=5), "setting 'optimizers' expects a valid list"),
    "optimizers-empty": (settings(optimizers=[]), "at least one optimizer"),
    "optimizer-unknown-name": (settings(optimizers=["randum"]), "did you mean 'random'"),
    "optimizer-unknown-option": (settings(optimizers=[{"name": "random", "options": {"sed": 1}}]),
                                 "optimizer 'random': unknown option 'sed'; did you mean 'seed'?"),
    "optimizer-mistyped-option": (settings(optimizers=[{"name": "random", "options": {"seed": "x"}}]),
                                  "optimizer 'random': option 'seed' expects int, got 'x'"),
    "torch-lr-a-word": (settings(optimizers=[{"name": "torch", "params": ["weights"],
                                              "options": {"lr": "fast"}}]), "optimizer 'torch'"),
    "optimizer-spec-extra-key": (settings(optimizers=[{"name": "random", "lr": 1}]),
                                 "unknown setting 'optimizers.0.lr'"),
    "optimizer-unknown-param": (settings(optimizers=[{"name": "random", "params": ["ofset"]}]),
                                "unknown params ['ofset']"),
    "workflow-missing": (settings(workflow=None), "setting 'workflow' is missing"),
    "workflow-syntax-error": (workflow("def flow(:\n    pass\n"), "bad.py has a syntax error at line 1"),
    "workflow-import-error": (workflow("import graphopt_no_such_module\n"),
                              "bad.py raised ModuleNotFoundError at line 1"),
    "workflow-raises-at-import": (workflow("x = 1\nraise RuntimeError('needs a GPU')\n"),
                                  "bad.py raised RuntimeError at line 2: needs a GPU"),
    "workflow-names-a-param": (lambda p: ["run", "flow.py:offset", "--data", "train.jsonl",
                                          "--optimizer", "random", "-q"], "is a Param node"),
    "workflow-names-a-constant": (lambda p: ["run", "flow.py:LIMIT", "--data", "train.jsonl",
                                             "--optimizer", "random", "-q"], "is a int, expects a function"),
    "workflow-name-undefined": (lambda p: ["run", "flow.py:nothing", "--data", "train.jsonl",
                                           "--optimizer", "random", "-q"], "flow.py defines no 'nothing'"),
    "workflow-without-name": (lambda p: ["run", "flow.py", "--data", "train.jsonl", "--optimizer", "random"],
                              "expects 'path/to/file.py:name'"),
    "workflow-file-missing": (lambda p: ["run", "gone.py:flow", "--data", "train.jsonl", "--optimizer",
                                         "random"], "gone.py:flow': no file '"),
    "metric-wrong-arity": (lambda p: RUN + ["--metric", "flow.py:one_argument"],
                           "metric(example, prediction), but its signature is (prediction)"),
    "metric-not-callable": (lambda p: RUN + ["--metric", "flow.py:LIMIT"], "metric 'flow.py:LIMIT' is a int"),
    "checkpoint-a-directory": (lambda p: RUN + ["--checkpoint", str(p)],
                               "option --checkpoint: setting 'checkpoint' expects a file path"),
    "checkpoint-in-a-file": (lambda p: RUN + ["--checkpoint", "train.jsonl/run.ckpt"], "is not a directory"),
    "history-a-directory": (settings(history="."), "setting 'history' expects a file path"),
    "data-missing": (lambda p: ["run", "flow.py:flow", "--data", "nope.jsonl", "--optimizer", "random"],
                     "option --data: setting 'data' expects a JSONL file"),
    "data-a-directory": (settings(data="."), "setting 'data' expects a JSONL file, "),
    "data-not-jsonl": (files({"bad.jsonl": "{not json\n"}, ["run", "flow.py:flow", "--data", "bad.jsonl",
                                                           "--optimizer", "random", "-q"]), "bad.jsonl"),
    "option-not-an-int": (lambda p: RUN + ["--epochs", "abc"], "Invalid value for '--epochs'"),
    "option-unknown": (lambda p: RUN + ["--epoch", "2"], "No such option: --epoch"),
    "resume-not-a-checkpoint": (files({"x.json": "{}"}, ["resume", "x.json"]),
                                "expected a graphopt.checkpoint/1 file"),
    "resume-missing-file": (lambda p: ["resume", "gone.json"], "checkpoint 'gone.json': cannot read it"),
    "show-not-json": (files({"x.json": "{not json"}, ["show", "x.json"]), "checkpoint 'x.json'"),
}

IDS = [f"{i + 1:02d}-of-{len(CASES)}-{name}" for i, name in enumerate(CASES)]


def invoke(*args: str):
    return CliRunner().invoke(app, list(args))


@pytest.mark.parametrize("case", list(CASES), ids=IDS)
def test_bad_input_is_one_line_and_exit_2(project, case):
    make, fragment = CASES[case]
    done = invoke(*make(project))
    lines = done.stderr.strip().splitlines()
    assert done.exit_code == 2, done.output
    assert len(lines) == 1 and lines[0].startswith("error: "), done.stderr
    assert fragment in lines[0]
    assert "Traceback" not in done.output
    assert done.exception is None or isinstance(done.exception, SystemExit)


def test_the_suite_tries_at_least_30_cases():
    assert len(CASES) >= 30


def test_debug_shows_the_traceback(project):
    done = invoke("--debug", "run", "flow.py:offset", "--data", "train.jsonl", "--optimizer", "random")
    assert done.exit_code == 2
    assert "Traceback (most recent call last)" in done.stderr
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("error: workflow '") and "flow.py:offset' is a Param node" in last


def test_a_full_disk_is_one_line_naming_the_file(project, monkeypatch):
    def no_space(src, dst):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), os.fspath(dst))

    monkeypatch.setattr(os, "replace", no_space)
    done = invoke(*RUN, "--checkpoint", "run.ckpt.json")
    (line,) = done.stderr.strip().splitlines()
    assert done.exit_code == 2
    assert line.startswith("error: '") and "run.ckpt.json" in line and "no space left on device" in line


def test_cache_stats_on_a_corrupt_database_is_one_line(project):
    cache_dir = project / "cache"
    (cache_dir / "eval").mkdir(parents=True)
    (cache_dir / "eval" / "cache.db").write_bytes(b"this is not a sqlite database" * 100)
    (cache_dir / "llm").mkdir()
    (cache_dir / "llm" / "cache.db").write_bytes(b"this is not a sqlite database" * 100)
    done = invoke("cache", "stats", "--cache-dir", str(cache_dir))
    (line,) = done.stderr.strip().splitlines()
    assert done.exit_code == 2 and "Traceback" not in done.output
    assert line.startswith("error: llm replies cache '") and "its database is unreadable" in line


def test_an_internal_error_is_one_line_exit_1_and_names_debug(project, monkeypatch):
    import graphopt.cli.run as run_module

    def broken(*args, **kwargs):
        raise KeyError("a graphopt bug")

    monkeypatch.setattr(run_module, "build_trainer", broken)
    done = invoke(*RUN)
    (line,) = done.stderr.strip().splitlines()
    assert done.exit_code == 1
    assert line == "error: internal error KeyError: 'a graphopt bug' (rerun with --debug for the traceback)"


SIGNALLING_FLOW = textwrap.dedent('''
    import os
    import signal
    import time

    import graphopt as go

    offset = go.param(0, name="offset", space=go.Int(-5, 5))
    CALLS = []

    @go.op
    def shift(x, offset):
        return x + offset

    def flow(x):
        return shift(x, offset)

    def closeness(example, prediction):
        CALLS.append(1)
        if len(CALLS) == int(os.environ.get("SIGNAL_AT_CALL", "0")):
            os.kill(os.getpid(), getattr(signal, os.environ["SIGNAL_NAME"]))
        time.sleep(float(os.environ.get("METRIC_SECONDS", "0")))
        return -abs(prediction - example.target)
''')


def signalling_run(project: Path, name: str) -> list[str]:
    (project / f"{name}.py").write_text(SIGNALLING_FLOW)
    return ["run", f"{name}.py:flow", "--data", "train.jsonl", "--metric", f"{name}.py:closeness",
            "--optimizer", "random", "--epochs", "3", "--batch-size", "1", "--concurrency", "1",
            "--checkpoint", "run.ckpt.json", "-q"]


@pytest.mark.parametrize(("signal_name", "code"), [("SIGINT", 130), ("SIGTERM", 143)])
def test_a_signal_stops_the_run_at_a_checkpoint_and_resume_finishes_it(project, monkeypatch, signal_name, code):
    from graphopt.train import Checkpoint

    monkeypatch.setenv("SIGNAL_NAME", signal_name)
    monkeypatch.setenv("SIGNAL_AT_CALL", "9")  # 4 validation calls, then a step or two
    done = invoke(*signalling_run(project, f"flow_{signal_name.lower()}"))
    assert done.exit_code == code, done.output
    saved = Checkpoint.load(project / "run.ckpt.json")
    assert saved.finished is None and 1 <= saved.position.step < 12
    assert done.stderr.strip().splitlines() == [
        f"interrupted at step {saved.position.step}; resume with: graphopt resume "
        f"{project / 'run.ckpt.json'}"]
    resumed = invoke("resume", "run.ckpt.json", "-q")
    assert resumed.exit_code == 0, resumed.output
    finished = Checkpoint.load(project / "run.ckpt.json")
    assert finished.finished == "completed" and finished.position.step == 12


def test_sigterm_to_a_real_graphopt_run_process(project):
    import signal as signals
    import subprocess
    import sys
    import time

    from graphopt.train import Checkpoint

    env = {**os.environ, "METRIC_SECONDS": "0.2", "PYTHONUNBUFFERED": "1"}
    process = subprocess.Popen([sys.executable, "-m", "graphopt", *signalling_run(project, "flow_slow")],
                               cwd=project, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    checkpoint = project / "run.ckpt.json"
    try:
        deadline = time.monotonic() + 90
        while not checkpoint.exists() and time.monotonic() < deadline and process.poll() is None:
            time.sleep(0.05)
        assert checkpoint.exists(), process.communicate(timeout=30)
        process.send_signal(signals.SIGTERM)
        out, err = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    saved = Checkpoint.load(checkpoint)
    assert process.returncode == 143, err
    assert "Traceback" not in err
    assert err.strip().splitlines()[-1] == \
        f"interrupted at step {saved.position.step}; resume with: graphopt resume {checkpoint}"
    resumed = subprocess.run([sys.executable, "-m", "graphopt", "resume", str(checkpoint), "-q"], cwd=project,
                             env={**os.environ}, capture_output=True, text=True, timeout=120)
    assert resumed.returncode == 0, resumed.stderr
    assert Checkpoint.load(checkpoint).finished == "completed"


def test_sigterm_during_the_demo_is_one_line_and_exit_143(monkeypatch):
    import signal as signals
    import sys
    import time

    def killed_midway(**settings):
        os.kill(os.getpid(), signals.SIGTERM)
        time.sleep(5)  # the handler interrupts this
        raise AssertionError("SIGTERM did not interrupt the demo")

    monkeypatch.setattr(sys.modules["graphopt.cli.demo"], "run_demo", killed_midway)
    started = time.monotonic()
    done = invoke("demo", "--quick")
    assert done.exit_code == 143 and time.monotonic() - started < 4
    assert done.stderr.strip().splitlines() == [
        "interrupted; run graphopt demo again: model calls already made come from the cache"]
