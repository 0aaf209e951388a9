"""Fault injection on the training loop: NaN scores, hostile cache entries, corrupted checkpoints,
shared paths, leftovers of killed runs, raising metrics, bad options, interrupts.

Each case is one parametrized id (or one hypothesis example), so the test names count the cases
tried; every case must end in the documented outcome: the run survives with finite records, or
a ``CheckpointError``/``ValueError`` naming the file, field or option, never a hang or traceback
of another type.
"""

from __future__ import annotations

import json
import math
import os
import pickle
import signal
import subprocess
import sys
import warnings
from pathlib import Path
from typing import Any

import diskcache
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import graphopt as go
from graphopt.errors import CheckpointError, RunLockedError
from graphopt.train import Checkpoint, Trainer, load_examples, optimize, read_history
from graphopt.train.lock import PathLock
from graphopt.train.values import values_hash


def number_flow():
    x = go.param(0, name="x", space=go.Int(-10, 10))

    @go.op
    def f(a: int, x: int) -> int:
        return -(x - 3) ** 2 + a

    return x, (lambda a: f(a, x))


def strict_json(text: str) -> Any:
    """JSON without NaN/Infinity literals (``json.loads`` would accept them)."""
    def refuse(constant: str) -> None:
        raise ValueError(f"non-finite number {constant} in a file")
    return json.loads(text, parse_constant=refuse)


# -- non-finite scores ------------------------------------------------------------------------
BAD_SCORES = {"nan-score": float("nan"), "inf-score": float("inf"), "minus-inf-score": float("-inf")}


@pytest.mark.parametrize("bad", list(BAD_SCORES.values()), ids=list(BAD_SCORES))
def test_a_non_finite_score_is_a_failure_and_best_keeps_improving(tmp_path, bad):
    x, flow = number_flow()
    seen = []

    def metric(example, prediction):
        seen.append(prediction)
        return bad if len(seen) == 1 else float(prediction)  # the starting values score NaN

    checkpoint, history = tmp_path / "run.ckpt", tmp_path / "h.jsonl"
    with pytest.warns(RuntimeWarning, match=r"metric gave score=.* on example '.*'; counted as a failure"):
        result = optimize(flow, [{"id": "only", "input": 0}], metric=metric, epochs=8, batch_size=1,
                          eval_every=1, quiet=True, checkpoint=checkpoint, history=history,
                          error_score=-1000.0, optimizers=[go.optimizer("random", [x], seed=4)])
    assert result.initial_score == -1000.0
    assert result.best_score > -1000.0 and result.best_step > 0
    assert x.value == result.best_values["x"]
    strict_json(checkpoint.read_text())
    for line in history.read_text().splitlines():
        strict_json(line)
    assert Checkpoint.load(checkpoint).best.score == result.best_score
    assert read_history(history) == result.history


def test_a_nan_loss_makes_no_nan_parameters():
    import torch

    w = go.param(torch.zeros(2, requires_grad=True), name="w")

    @go.op
    def predict(w, x):
        return (w * x).sum()

    def loss(example, prediction):
        return (prediction - example.target) ** 2 * (float("nan") if example.input[0] < 0 else 1.0)

    data = [([1.0, 2.0], 3.0), ([-1.0, 1.0], 0.0)]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        result = optimize(lambda x: predict(w, torch.tensor(x)), data, metric=loss, epochs=3,
                          batch_size=2, quiet=True, error_score=-100.0,
                          optimizers=[go.optimizer("torch", [w], algorithm="SGD", lr=0.05)])
    assert bool(torch.isfinite(w.value).all())
    assert not torch.equal(w.value.detach(), torch.zeros(2))
    assert result.best_score is not None and math.isfinite(result.best_score)


def test_an_old_checkpoint_with_null_scores_still_loads_and_resumes(tmp_path):
    x, flow = number_flow()
    checkpoint = tmp_path / "run.ckpt"
    options = dict(metric=lambda e, p: float(p), epochs=3, batch_size=1, eval_every=1, quiet=True)
    optimize(flow, [(0, 0)], optimizers=[go.optimizer("random", [x], seed=1)], checkpoint=checkpoint,
             **{**options, "epochs": 1})
    data = json.loads(checkpoint.read_text())
    data["best"]["score"] = None  # as a NaN was written before non-finite scores were refused
    data["history"][0]["val_score"] = data["history"][0]["best_score"] = None
    data["finished"] = None
    checkpoint.write_text(json.dumps(data))
    assert Checkpoint.load(checkpoint).best.score is None
    result = optimize(flow, [(0, 0)], optimizers=[go.optimizer("random", [x], seed=1)], resume=checkpoint,
                      **options)
    assert result.best_score is not None and result.best_step >= 1


# -- the evaluation cache holds data only -----------------------------------------------------
class Exploit:
    """Unpickling this runs a shell command that creates a marker file."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def poisoned(tmp_path: Path, value: Any):
    x, flow = number_flow()
    trainer = Trainer(flow, [{"id": "a", "input": 1}], metric=lambda e, p: float(p), quiet=True,
                      cache=tmp_path / "eval", optimizers=[go.optimizer("random", [x])])
    key = trainer.runner.key(values_hash(trainer.params), trainer.train_set[0])
    with diskcache.Cache(str(tmp_path / "eval")) as raw:  # the default disk pickles what it is given
        raw.set(key, value(tmp_path) if callable(value) else value)
    return trainer


HOSTILE = {"pickle-running-os-system": lambda tmp: Exploit(tmp / "pwned"),
           "not-json-text": "{not json", "json-of-another-shape": '{"score": "high", "extra": [1]}',
           "non-finite-json": '{"score": NaN}', "bytes": b"\x80\x04K\x01.", "an-int": 7,
           "a-pickled-dict": {"score": 1.0}}


@pytest.mark.parametrize("value", list(HOSTILE.values()), ids=list(HOSTILE))
def test_a_hostile_cache_entry_is_a_counted_miss_never_loaded(tmp_path, value):
    trainer = poisoned(tmp_path, value)
    assert trainer.validate() == -8.0  # run for real: x=0 gives -(0-3)**2 + 1
    assert trainer.cache.errors == 1 and trainer.cache.hits == 0
    assert trainer.runner.evaluations == 1
    assert not (tmp_path / "pwned").exists()


def test_the_evaluation_cache_writes_json_text_only(tmp_path):
    trainer = poisoned(tmp_path, "{not json")
    trainer.validate()
    with diskcache.Cache(str(tmp_path / "eval")) as raw:
        stored = [raw.get(k) for k in raw]
    assert stored and all(isinstance(v, str) and json.loads(v)["score"] == -8.0 for v in stored)


# -- checkpoints: every field checked, no hang ------------------------------------------------
def finished_checkpoint(tmp_path: Path) -> tuple[Path, dict[str, Any]]:
    x, flow = number_flow()
    checkpoint = tmp_path / "run.ckpt"
    optimize(flow, [(0, 0), (1, 0)], metric=lambda e, p: float(p), epochs=1, batch_size=1, quiet=True,
             eval_every=1, checkpoint=checkpoint, optimizers=[go.optimizer("random", [x], seed=1)])
    data = json.loads(checkpoint.read_text())
    data["finished"] = None
    data["position"].update(epoch=0, offset=1, step=1,
                            order=[e.id for e in load_examples([(0, 0), (1, 0)])])
    data["history"] = data["history"][:2]
    data["best"]["step"] = min(data["best"]["step"], 1)
    return checkpoint, data


def resume(checkpoint: Path) -> Any:
    """Resume a small run from ``checkpoint``, failing the test if it takes more than 20 s."""
    x, flow = number_flow()

    def timeout(signum, frame):
        raise TimeoutError("resume hung")

    previous = signal.signal(signal.SIGALRM, timeout)
    signal.alarm(20)
    try:
        return optimize(flow, [(0, 0), (1, 0)], metric=lambda e, p: float(p), epochs=1, batch_size=1,
                        quiet=True, eval_every=1, resume=checkpoint,
                        optimizers=[go.optimizer("random", [x], seed=1)])
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def corrupt(data: dict[str, Any], path: tuple[Any, ...], value: Any) -> dict[str, Any]:
    data = json.loads(json.dumps(data))
    target = data
    for part in path[:-1]:
        target = target[part]
    target[path[-1]] = value
    return data


CORRUPTIONS = {
    "position.offset=-5": (("position", "offset"), -5),
    "position.offset past the order": (("position", "offset"), 99),
    "position.epoch=-1": (("position", "epoch"), -1),
    "position.epoch past the run": (("position", "epoch"), 10**9),
    "position.step=-3": (("position", "step"), -3),
    "position.order unknown ids": (("position", "order"), ["nope", "gone"]),
    "position.order repeated": (("position", "order"), ["x", "x"]),
    "position.stale_rounds='many'": (("position", "stale_rounds"), "many"),
    "rng.python truncated": (("rng", "python"), [3, [1, 2], None]),
    "rng.torch out of range": (("rng", "torch"), [999, -1]),
    "best.step after position": (("best", "step"), 50),
    "best.score='high'": (("best", "score"), "high"),
    "history renumbered": (("history", 0, "step"), 7),
    "params missing": (("params",), {}),
    "params wrong type": (("params", "x"), "seven"),
    "kinds unknown": (("kinds", "x"), "text"),
    "optimizers empty state": (("optimizers", 0), {}),
    "optimizers wrong name": (("optimizers", 0, "optimizer"), "spsa"),
    "optimizers groups not a list": (("optimizers", 0, "param_groups"), 5),
    "usage.calls=-1": (("usage", "calls"), -1),
    "format unknown": (("format",), "graphopt.checkpoint/0"),
    "finished unknown": (("finished",), "maybe"),
}


@pytest.mark.parametrize("path, value", list(CORRUPTIONS.values()), ids=list(CORRUPTIONS))
def test_a_corrupted_checkpoint_field_is_a_checkpoint_error_naming_it(tmp_path, path, value):
    checkpoint, data = finished_checkpoint(tmp_path)
    checkpoint.write_text(json.dumps(corrupt(data, path, value)))
    with pytest.raises(CheckpointError, match=str(checkpoint)):
        resume(checkpoint)


def test_an_uncorrupted_resumable_checkpoint_resumes(tmp_path):
    checkpoint, data = finished_checkpoint(tmp_path)
    checkpoint.write_text(json.dumps(data))
    result = resume(checkpoint)
    assert result.stopped == "completed" and result.steps == 2


@pytest.mark.parametrize("text", ["", "{", "[]", "null", '"a"', "{}", "[" * 100_000, "\udcff"],
                         ids=["empty", "cut", "list", "null", "string", "empty-object", "deep-nesting",
                              "bad-unicode"])
def test_a_file_that_is_no_checkpoint_is_a_checkpoint_error(tmp_path, text):
    checkpoint = tmp_path / "run.ckpt"
    checkpoint.write_bytes(text.encode("utf-8", "surrogateescape"))
    with pytest.raises(CheckpointError, match="run.ckpt"):
        resume(checkpoint)


FIELDS = [("position", "offset"), ("position", "epoch"), ("position", "step"), ("position", "order"),
          ("position", "stale_rounds"), ("best", "step"), ("best", "score"), ("best", "values"),
          ("rng", "python"), ("rng", "torch"), ("params", "x"), ("kinds", "x"), ("usage", "tokens"),
          ("optimizers", 0, "state"), ("optimizers", 0, "extra"), ("optimizers", 0, "param_groups"),
          ("history", 0, "values_hash"), ("history", 1, "epoch"), ("config",), ("finished",)]
VALUES = st.one_of(st.integers(-10**12, 10**12), st.floats(allow_nan=True, allow_infinity=True),
                   st.text(max_size=8), st.none(), st.booleans(),
                   st.lists(st.one_of(st.integers(-5, 5), st.text(max_size=3)), max_size=4),
                   st.dictionaries(st.text(max_size=3), st.integers(-3, 3), max_size=3))


@settings(max_examples=60, deadline=None, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(field=st.sampled_from(FIELDS), value=VALUES)
def test_fuzzed_checkpoint_fields_resume_or_fail_with_a_checkpoint_error(tmp_path, field, value):
    checkpoint, data = finished_checkpoint(tmp_path)
    checkpoint.write_text(json.dumps(corrupt(data, field, value)))
    try:
        resume(checkpoint)
    except CheckpointError as err:
        assert str(checkpoint) in str(err)


# -- files that defend themselves -------------------------------------------------------------
HOLDER = """
import fcntl, os, sys, time
handle = os.open(sys.argv[1] + ".lock", os.O_RDWR | os.O_CREAT)  # PathLock's protocol, without
fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)                 # importing torch in the holder
os.write(handle, str(os.getpid()).encode())
print("held", flush=True)
time.sleep(60)
"""


@pytest.mark.parametrize("option", ["checkpoint", "history"])
def test_a_second_run_on_a_held_path_fails_naming_the_holders_pid(tmp_path, option):
    path = tmp_path / f"run.{option}"
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(path)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        x, flow = number_flow()
        with pytest.raises(RunLockedError, match=rf"{option} '.*run.{option}' is in use by another run "
                                                 rf"\(pid {holder.pid}\)") as info:
            optimize(flow, [(0, 0)], metric=lambda e, p: float(p), quiet=True, **{option: path},
                     optimizers=[go.optimizer("random", [x])])
        assert info.value.pid == holder.pid
        assert not path.exists()  # nothing was written by the refused run
    finally:
        holder.kill()
        holder.wait()
    x, flow = number_flow()  # the kernel dropped the dead holder's lock
    optimize(flow, [(0, 0)], metric=lambda e, p: float(p), quiet=True, **{option: path},
             optimizers=[go.optimizer("random", [x])])


def test_two_trainers_in_one_process_cannot_share_a_checkpoint(tmp_path):
    checkpoint = tmp_path / "run.ckpt"
    with PathLock(checkpoint, "checkpoint"):
        x, flow = number_flow()
        with pytest.raises(RunLockedError, match=f"pid {os.getpid()}"):
            optimize(flow, [(0, 0)], metric=lambda e, p: float(p), quiet=True, checkpoint=checkpoint,
                     optimizers=[go.optimizer("random", [x])])


def test_temporary_files_of_killed_runs_are_removed_at_the_next_start(tmp_path):
    checkpoint, history = tmp_path / "run.ckpt", tmp_path / "h.jsonl"
    stale = [tmp_path / ".run.ckpt.abc123.tmp", tmp_path / ".h.jsonl.x.tmp"]
    for path in stale:
        path.write_bytes(b"\0" * 1024)
    unrelated = tmp_path / ".other.ckpt.abc.tmp"
    unrelated.write_bytes(b"keep")
    x, flow = number_flow()
    optimize(flow, [(0, 0)], metric=lambda e, p: float(p), quiet=True, checkpoint=checkpoint,
             history=history, optimizers=[go.optimizer("random", [x])])
    assert not any(p.exists() for p in stale) and unrelated.exists()
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")) == [unrelated.name]


OBJECTS = {"nested": {"a": [1, 2.5, None, True], "b": {"c": "d"}}, "list-of-dicts": [{"k": 1}, {"k": 2}],
           "float-looking-int": [1.0, 2], "empty": {}, "unicode-keys": {"é": [-0.0, 1e300]}}


def same_types(a: Any, b: Any) -> bool:
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return list(a) == list(b) and all(same_types(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(same_types(x, y) for x, y in zip(a, b))
    return a == b


class Configured(go.Module):
    """A workflow holding an object param next to the optimized number."""

    def __init__(self, settings: Any) -> None:
        self.settings = go.param(settings, name="settings")
        self.x = go.param(0, name="x", space=go.Int(-10, 10))

    @go.op
    def f(self, a: int, x: int) -> int:
        return -(x - 3) ** 2 + a

    def forward(self, a: int) -> Any:
        return self.f(a, self.x)


@pytest.mark.parametrize("value", list(OBJECTS.values()), ids=list(OBJECTS))
def test_object_params_keep_their_exact_json_types_across_resume(tmp_path, value):
    checkpoint = tmp_path / "run.ckpt"
    flow = Configured(value)
    optimize(flow, [(0, 0)], metric=lambda e, p: float(p), quiet=True, checkpoint=checkpoint, epochs=1,
             optimizers=[go.optimizer("random", [flow.x])])
    fresh = Configured({"other": "value"})
    optimize(fresh, [(0, 0)], metric=lambda e, p: float(p), quiet=True, resume=checkpoint, epochs=1,
             optimizers=[go.optimizer("random", [fresh.x])])
    assert same_types(fresh.settings.value, value)


NOT_JSON = {"tuple": (1, 2), "int-keys": {1: "a"}, "nan": [float("nan")], "inf": {"x": float("inf")},
            "set": {1, 2}, "nested-tuple": {"a": [(1,)]}}


@pytest.mark.parametrize("value", list(NOT_JSON.values()), ids=list(NOT_JSON))
def test_object_params_that_json_would_change_are_refused_at_creation(value):
    with pytest.raises(go.ParamValidationError, match="param 'settings' expects"):
        go.param(value, name="settings")


# -- raising metrics, bad options, interrupts -------------------------------------------------
def test_a_metric_that_raises_is_that_examples_failure():
    x, flow = number_flow()

    def metric(example, prediction):
        if example.input == 1:
            raise ZeroDivisionError("no score for you")
        return float(prediction)

    trainer = Trainer(flow, [(0, 0), (1, 0)], metric=metric, quiet=True, error_score=-50.0,
                      optimizers=[go.optimizer("random", [x], seed=1)], epochs=2, batch_size=2)
    result = trainer.fit()
    assert result.steps == 2
    failed = trainer.runner.outcomes([trainer.train_set[1]])[0]
    assert failed.score == -50.0
    assert failed.error.startswith("ZeroDivisionError: metric raised on example") and "no score for you" in failed.error


BAD_OPTIONS = {"patience=-1": {"patience": -1}, "patience=0": {"patience": 0},
               "patience=1.5": {"patience": 1.5}, "min_delta=nan": {"min_delta": float("nan")},
               "min_delta=inf": {"min_delta": float("inf")}, "min_delta=-1": {"min_delta": -1.0},
               "min_delta='0'": {"min_delta": "0"}, "eval_every=0": {"eval_every": 0},
               "eval_every=True": {"eval_every": True}, "eval_every='2'": {"eval_every": "2"},
               "epochs=-1": {"epochs": -1}, "batch_size=0": {"batch_size": 0},
               "concurrency=0": {"concurrency": 0}, "error_score=nan": {"error_score": float("nan")},
               "max_evaluations=-3": {"max_evaluations": -3}, "seed='1'": {"seed": "1"},
               "restore_best='yes'": {"restore_best": "yes"}, "quiet=1": {"quiet": 1},
               "accept='sometimes'": {"accept": "sometimes"}, "on_step_error=None": {"on_step_error": None}}


@pytest.mark.parametrize("options", list(BAD_OPTIONS.values()), ids=list(BAD_OPTIONS))
def test_a_bad_option_is_a_value_error_naming_it(options):
    x, flow = number_flow()
    (name,) = options
    with pytest.raises(ValueError, match=rf"^{name} expects"):
        Trainer(flow, [(0, 0)], metric=lambda e, p: 1.0, optimizers=[go.optimizer("random", [x])], **options)


def test_an_interrupt_leaves_the_checkpoint_of_the_last_step_and_memory_matching_it(tmp_path):
    x, flow = number_flow()
    checkpoint = tmp_path / "run.ckpt"
    calls = []

    def metric(example, prediction):
        calls.append(1)
        if len(calls) == 6:
            raise KeyboardInterrupt
        return float(prediction)

    trainer = Trainer(flow, [(0, 0)], metric=metric, quiet=True, checkpoint=checkpoint, epochs=10,
                      batch_size=1, eval_every=1, optimizers=[go.optimizer("random", [x], seed=5)])
    with pytest.raises(KeyboardInterrupt):
        trainer.fit()
    saved = Checkpoint.load(checkpoint)
    assert saved.finished is None and saved.position.step == trainer.position.step >= 1
    assert saved.params == {"x": x.value}
    assert not list(tmp_path.glob("*.tmp")) and not list(tmp_path.glob(".*.tmp"))
    x2, flow2 = number_flow()
    result = optimize(flow2, [(0, 0)], metric=lambda e, p: float(p), quiet=True, checkpoint=checkpoint,
                      resume=checkpoint, epochs=10, batch_size=1, eval_every=1,
                      optimizers=[go.optimizer("random", [x2], seed=5)])
    assert result.stopped == "completed" and result.steps == 10
