"""The training loop on a scripted LLM: parallelism, caching, stopping, checkpoints, resuming."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import graphopt as go
from graphopt.train import Checkpoint, EvalCache, Outcome, Trainer, optimize, read_history

HERE = Path(__file__).parent


def test_parallel_evaluation_gives_the_sequential_result(scripted, tmp_path):
    results = []
    for concurrency in (1, 4):
        trainer, _, _ = scripted.build(tmp_path / f"cache{concurrency}", epochs=2, eval_every=1,
                                       concurrency=concurrency)
        results.append(scripted.comparable(trainer.fit()))
    assert results[0] == results[1]
    assert results[0]["best_score"] == 1.0 > results[0]["initial_score"]


def test_optimizing_raises_the_validation_score_and_restores_the_best(scripted, tmp_path):
    trainer, flow, _ = scripted.build(tmp_path / "cache", epochs=1, eval_every=1)
    result = trainer.fit()
    assert result.initial_score == 0.5
    assert result.best_score == 1.0
    assert flow.instruction.value == result.best_values["instruction"]
    assert "carefully" in flow.instruction.value
    assert [r.step for r in result.history] == list(range(len(result.history)))


def test_unchanged_values_are_never_evaluated_twice(scripted, tmp_path):
    trainer, _, factory = scripted.build(tmp_path / "cache", optimizers=("fewshot",))
    first = trainer.validate()
    runs, calls = trainer.runner.runs, factory.calls
    assert trainer.validate() == first
    assert trainer.runner.runs == runs and factory.calls == calls
    assert trainer.cache.hits == len(scripted.VAL)


def test_evaluation_cache_on_disk_serves_a_new_trainer(scripted, tmp_path):
    trainer, _, _ = scripted.build(tmp_path / "cache", optimizers=("fewshot",), cache=tmp_path / "eval")
    trainer.validate()
    again, _, _ = scripted.build(tmp_path / "cache", optimizers=("fewshot",), cache=tmp_path / "eval")
    again.validate()
    assert again.runner.runs == 0
    assert again.cache.hits == len(scripted.VAL)


def test_search_steps_reuse_cached_outcomes(scripted, tmp_path):
    trainer, _, _ = scripted.build(tmp_path / "cache", epochs=2, eval_every=1)
    trainer.fit()
    assert trainer.cache.hits > 0
    assert trainer.runner.runs < trainer.cache.hits + trainer.cache.misses


def test_early_stopping_after_patience_rounds_without_improvement(scripted, tmp_path):
    trainer, _, _ = scripted.build(tmp_path / "cache", optimizers=("fewshot",), epochs=5, eval_every=1,
                                   patience=2)
    result = trainer.fit()
    assert result.stopped == "early_stop"
    assert result.steps == result.best_step + 2 < trainer.total_steps
    assert all(r.val_score <= result.best_score for r in result.history[-2:])


def test_budget_stop_leaves_a_valid_checkpoint(scripted, tmp_path):
    checkpoint = tmp_path / "run.ckpt"
    trainer, _, _ = scripted.build(tmp_path / "cache", epochs=2, eval_every=1, checkpoint=checkpoint,
                                   budget=go.Budget(max_calls=30))
    result = trainer.fit()
    assert result.stopped == "budget"
    saved = Checkpoint.load(checkpoint)
    assert saved.finished is None
    assert saved.position.step == result.steps == len(saved.history) - 1
    assert saved.history == result.history
    resumed, _, _ = scripted.build(tmp_path / "cache", epochs=2, eval_every=1, resume=checkpoint)
    uninterrupted, _, _ = scripted.build(tmp_path / "fresh-cache", epochs=2, eval_every=1)
    finished, reference = scripted.comparable(resumed.fit()), scripted.comparable(uninterrupted.fit())
    for data in (finished, reference):
        for record in data["history"]:
            record.pop("usage")
        data.pop("usage")
    assert finished == reference


def test_history_has_one_jsonl_line_per_step(scripted, tmp_path):
    trainer, _, _ = scripted.build(tmp_path / "cache", epochs=1, history=tmp_path / "h.jsonl")
    result = trainer.fit()
    lines = (tmp_path / "h.jsonl").read_text().splitlines()
    assert len(lines) == result.steps + 1
    record = json.loads(lines[1])
    assert {"values_hash", "train_score", "val_score", "usage", "optimizers", "time"} <= set(record)
    assert read_history(tmp_path / "h.jsonl") == result.history


def test_resume_after_a_crash_finishes_like_an_uninterrupted_run(tmp_path):
    script = HERE / "scripted_run.py"
    checkpoint = tmp_path / "run.ckpt"
    env = {**os.environ, "PYTHONHASHSEED": "0"}
    job = subprocess.Popen([sys.executable, str(script), str(tmp_path / "crashed.json"), "--cache",
                            str(tmp_path / "cache-a"), "--checkpoint", str(checkpoint), "--delay", "0.02"],
                           env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if checkpoint.exists() and Checkpoint.load(checkpoint).position.step >= 2:
                break
            if job.poll() is not None:
                pytest.fail(f"the run ended before it could be killed: {job.stderr.read().decode()}")
            time.sleep(0.02)
        job.send_signal(signal.SIGKILL)
    finally:
        job.wait()
    assert not (tmp_path / "crashed.json").exists()
    killed_at = Checkpoint.load(checkpoint)
    assert killed_at.finished is None and killed_at.position.step >= 2
    for name, extra in (("resumed", ["--checkpoint", str(checkpoint), "--resume", str(checkpoint),
                                     "--cache", str(tmp_path / "cache-a")]),
                        ("reference", ["--cache", str(tmp_path / "cache-b")])):
        done = subprocess.run([sys.executable, str(script), str(tmp_path / f"{name}.json"), *extra],
                              env=env, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr
    resumed = json.loads((tmp_path / "resumed.json").read_text())
    reference = json.loads((tmp_path / "reference.json").read_text())
    for data in (resumed, reference):
        for record in data["history"]:
            record.pop("usage")
        data.pop("usage")
    assert resumed == reference
    assert Checkpoint.load(checkpoint).finished == "completed"


def test_resuming_a_finished_run_returns_its_result(scripted, tmp_path):
    checkpoint = tmp_path / "run.ckpt"
    trainer, _, _ = scripted.build(tmp_path / "cache", epochs=1, checkpoint=checkpoint)
    first = trainer.fit()
    again, _, factory = scripted.build(tmp_path / "cache", epochs=1, resume=checkpoint)
    assert again.fit().best_values == first.best_values
    assert factory.calls == 0


def test_checkpoint_of_another_run_is_refused(scripted, tmp_path):
    checkpoint = tmp_path / "run.ckpt"
    trainer, _, _ = scripted.build(tmp_path / "cache", epochs=1, checkpoint=checkpoint)
    trainer.fit()
    other, _, _ = scripted.build(tmp_path / "cache", optimizers=("fewshot",), resume=checkpoint)
    with pytest.raises(go.errors.CheckpointError, match="2 optimizer states"):
        other.fit()


def test_optimize_with_a_plain_function_and_tuples(tmp_path):
    offset = go.param(0, name="offset", space=go.Int(-5, 5))

    @go.op
    def shift(x: int, offset: int) -> int:
        return x + offset

    opt = go.optimizer("random", [offset], seed=3)
    result = optimize(lambda x: shift(x, offset), [(1, 4), (2, 5), (3, 6)], val=[(4, 7)],
                      metric=lambda example, prediction: -abs(prediction - example.target),
                      optimizers=[opt], epochs=6, batch_size=3, quiet=True, eval_every=1)
    assert result.initial_score == -3.0
    assert result.best_score > result.initial_score
    assert offset.value == result.best_values["offset"]


def test_workflow_errors_become_feedback(tmp_path):
    @go.op
    def broken(x: int) -> int:
        raise RuntimeError("boom")

    opt = go.optimizer("random", [go.param(1, name="k", space=go.Int(0, 3))], seed=0)
    trainer = Trainer(lambda x: broken(x), [(1, 1)], metric=lambda e, p: 1.0, optimizers=[opt],
                      quiet=True, error_score=-1.0)
    assert trainer.validate() == -1.0
    assert trainer.runner.outcomes(trainer.train_set)[0].error == "RuntimeError: boom"


def test_a_param_owned_by_two_optimizers_is_refused():
    shared = go.param(1, name="k", space=go.Int(0, 3))
    with pytest.raises(go.ParamValidationError, match="owned by optimizers"):
        Trainer(lambda x: x, [(1, 1)], metric=lambda e, p: 1.0, quiet=True,
                optimizers=[go.optimizer("random", [shared]), go.optimizer("spsa", [shared])])


def test_eval_cache_clear_empties_it(tmp_path):
    cache = EvalCache(tmp_path / "eval")
    cache.set("k", Outcome(score=1.0))
    assert len(cache) == 1
    assert cache.clear() == 1 and len(cache) == 0
