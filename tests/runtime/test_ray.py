"""The Ray executor on a local 2-CPU Ray: same results as threads, retries, budgets, caches.

Ray starts once for the module (a few seconds); every test is guarded by an alarm so a stuck
cluster fails the test instead of hanging the suite.
"""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from pathlib import Path
from typing import Any

import pytest

import graphopt as go
from graphopt.errors import BudgetExceeded
from graphopt.llm.ledger import Budget
from graphopt.llm.scripted import follow_schema, scripted_client
from graphopt.runtime.executor import ThreadExecutor
from graphopt.train import Trainer
from graphopt.train.cache import EvalCache

ray = pytest.importorskip("ray")

pytestmark = pytest.mark.slow

TRAIN = [{"id": f"t{i}", "input": {"text": w}, "target": "positive" if i % 2 == 0 else "negative"}
         for i, w in enumerate(["love it", "hate it", "good one", "bad one", "great", "awful"])]


class Classifier(go.Module):
    """Answers only when its instruction asks to be specific; optionally slow on one example."""

    def __init__(self, slow_dir: str | None = None) -> None:
        self.instruction = go.param("Answer.", name="instruction")
        self.slow_dir = slow_dir

    @go.op
    def classify(self, instruction: str, text: str) -> str:
        if self.slow_dir is not None and text == "great":
            marker = Path(self.slow_dir)
            if not (marker / "killed").exists():  # the first try waits to be killed
                (marker / "pid").write_text(str(os.getpid()))
                time.sleep(30)
        if "specific" not in instruction.lower():
            return "unsure"
        return "positive" if any(w in text for w in ("love", "good", "great")) else "negative"

    def forward(self, text: str) -> go.Node:
        return self.classify(self.instruction, text)


class Asker(go.Module):
    """One model call per example, made on the worker."""

    def __init__(self) -> None:
        self.instruction = go.param("Answer.", name="instruction")

    @go.op
    def ask(self, instruction: str, text: str) -> str:
        client = scripted_client(lambda messages, params: "positive")
        return client.complete([{"role": "user", "content": f"{instruction} {text}"}], max_tokens=4).text

    def forward(self, text: str) -> go.Node:
        return self.ask(self.instruction, text)


def exact(example: Any, prediction: Any) -> go.Feedback:
    if prediction == example.target:
        return go.Feedback(score=1.0)
    return go.Feedback(score=0.0, text=f"expected {example.target!r}, got {prediction!r}")


@pytest.fixture(scope="module")
def cluster() -> Any:
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    yield ray
    ray.shutdown()


@pytest.fixture(autouse=True)
def _deadline() -> Any:
    def expired(signum: int, frame: Any) -> None:
        raise TimeoutError("a Ray test ran past 60 s")

    previous = signal.signal(signal.SIGALRM, expired)
    signal.alarm(60)
    yield
    signal.alarm(0)
    signal.signal(signal.SIGALRM, previous)


def specific(messages: Any, params: Any) -> str:
    """Every string the optimizer asks for says to be specific."""
    def fill(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: fill(v) for k, v in value.items()}
        return "Be specific: name the sentiment." if isinstance(value, str) else value

    return json.dumps(fill(json.loads(follow_schema(messages, params))))


def train(executor: Any, tmp_path: Path, **options: Any) -> Any:
    flow = options.pop("flow", None) or Classifier()
    opt = go.optimizer("optoprime", [flow.instruction], llm=scripted_client(specific))
    trainer = Trainer(flow, TRAIN, metric=exact, optimizers=opt, batch_size=3, epochs=2, seed=0,
                      quiet=True, executor=executor, **options)
    return trainer, trainer.fit()


def comparable(result: Any) -> dict[str, Any]:
    data = result.model_dump(mode="json")
    for record in data["history"]:
        record.pop("time"), record.pop("seconds")
    return data


def test_the_same_run_on_threads_and_on_ray_gives_the_same_values_scores_and_history(cluster, tmp_path):
    threads, local = train("threads", tmp_path)
    trainer, remote = train("ray", tmp_path)
    assert comparable(remote) == comparable(local)
    assert remote.best_values["instruction"] != "Answer."  # backward ran on runs from the workers
    assert trainer.runner.evaluations == threads.runner.evaluations
    assert trainer.runner.distinct_points == threads.runner.distinct_points


def test_a_worker_killed_mid_evaluation_is_retried_and_the_run_ends_as_on_threads(cluster, tmp_path):
    _, local = train(ThreadExecutor(2), tmp_path)
    marker = tmp_path / "slow"
    marker.mkdir()

    def kill() -> None:
        for _ in range(400):
            if (marker / "pid").exists():
                (marker / "killed").write_text("")
                os.kill(int((marker / "pid").read_text()), signal.SIGKILL)
                return
            time.sleep(0.05)

    killer = threading.Thread(target=kill)
    killer.start()
    _, remote = train("ray", tmp_path, flow=Classifier(str(marker)))
    killer.join()
    assert (marker / "killed").exists()
    assert comparable(remote) == comparable(local)


def test_max_evaluations_hold_exactly_across_workers(cluster, tmp_path):
    trainer, result = train("ray", tmp_path, max_evaluations=7)
    assert result.stopped == "budget"
    assert trainer.runner.evaluations == 7


def test_the_evaluation_cache_hits_across_workers_as_on_threads(cluster, tmp_path):
    flow = Classifier()
    counts = {}
    for executor in ("threads", "ray"):
        cache = EvalCache(tmp_path / executor)
        first = go.evaluate(flow, TRAIN, exact, cache=cache, executor=executor)
        second = go.evaluate(flow, TRAIN, exact, cache=cache, executor=executor)
        assert [e.cached for e in second.examples] == [True] * len(TRAIN)
        assert first.usage.evaluations == len(TRAIN) and second.usage.evaluations == 0
        counts[executor] = (cache.hits, cache.misses, [e.score for e in first.examples])
    assert counts["ray"] == counts["threads"]


@pytest.mark.parametrize("executor", ["threads", "ray"])
def test_model_budgets_hold_exactly_across_workers(cluster, executor):
    short = Budget(max_calls=4)
    with pytest.raises(BudgetExceeded, match="max_calls=4"):
        go.evaluate(Asker(), TRAIN, exact, budget=short, executor=executor)
    assert short.calls == 4 and short.pending == 0
    enough = Budget(max_calls=10, max_tokens=10_000)
    result = go.evaluate(Asker(), TRAIN, exact, budget=enough, executor=executor)
    assert enough.calls == result.usage.calls == len(TRAIN)
    assert enough.tokens == result.usage.tokens > 0


FLOW = '''
import graphopt as go

offset = go.param(0, name="offset", space=go.Int(-5, 5))

@go.op
def shift(x, offset):
    return x + offset

def flow(x):
    return shift(x, offset)

def closeness(example, prediction):
    return -abs(prediction - example.target)
'''


def test_graphopt_run_with_executor_ray_finds_what_threads_find(cluster, tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from graphopt.cli.app import app

    (tmp_path / "train.jsonl").write_text("".join(
        json.dumps({"input": {"x": x}, "target": x + 3}) + "\n" for x in range(4)))
    saved = {}
    for executor in ("threads", "ray"):
        monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / executor))  # each run its own caches
        flow = tmp_path / f"flow_{executor}.py"  # each run its own module (and param)
        flow.write_text(FLOW)
        ckpt = tmp_path / f"{executor}.ckpt"
        done = CliRunner().invoke(app, [
            "run", f"{flow}:flow", "--data", str(tmp_path / "train.jsonl"),
            "--metric", f"{flow}:closeness", "--optimizer", "random", "--epochs", "1",
            "--batch-size", "2", "--executor", executor, "--checkpoint", str(ckpt), "--quiet"],
            catch_exceptions=False)
        assert done.exit_code == 0, done.output
        saved[executor] = json.loads(ckpt.read_text())
        assert saved[executor]["config"]["executor"] == executor
    assert saved["ray"]["best"] == saved["threads"]["best"]
    assert [h["val_score"] for h in saved["ray"]["history"]] == \
        [h["val_score"] for h in saved["threads"]["history"]]


def test_a_run_stopped_on_ray_resumes_on_a_fresh_cluster_as_it_does_on_threads(cluster, tmp_path):
    results = {}
    for executor in ("threads", "ray"):
        ckpt = tmp_path / f"{executor}.ckpt"
        _, stopped = train(executor, tmp_path, max_evaluations=7, checkpoint=ckpt)
        assert stopped.stopped == "budget"
        if executor == "ray":  # the driver's cluster is gone: a new one takes the rest of the run
            cluster.shutdown()
            cluster.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
        _, results[executor] = train(executor, tmp_path, checkpoint=ckpt, resume=ckpt)
    assert comparable(results["ray"])["best_values"] == comparable(results["threads"])["best_values"]
    assert comparable(results["ray"]) == {**comparable(results["threads"]),
                                          "checkpoint": str(tmp_path / "ray.ckpt")}


class Hybrid(go.Module):
    """A tensor param trained by torch Adam and a text param trained by optoprime."""

    def __init__(self) -> None:
        import torch

        self.w = go.param(torch.zeros(2, requires_grad=True), name="w")
        self.style = go.param("quiet", name="style")

    @go.op
    def answer(self, w: Any, style: str, x: list[float], text: str) -> tuple[Any, str]:
        import torch

        word = text.upper() if "specific" in style.lower() else text
        return (w * torch.tensor(x)).sum(), word

    def forward(self, x: list[float], text: str) -> go.Node:
        return self.answer(self.w, self.style, x, text)


def fitted(example: Any, prediction: Any) -> go.Feedback:
    value, word = prediction
    loss = (value - example.target[0]) ** 2
    text = None if word == example.target[1] else f"expected {example.target[1]!r}, got {word!r}"
    return go.Feedback(loss=loss, text=text)


def test_torch_adam_trains_tensor_params_on_ray_as_on_threads_with_text_feedback_alongside(cluster):
    import torch

    data = [{"id": f"h{i}", "input": {"x": x, "text": t}, "target": [y, t.upper()]}
            for i, (x, y, t) in enumerate([([1.0, 2.0], 3.0, "a"), ([2.0, 1.0], 3.0, "b"),
                                           ([1.0, 1.0], 2.0, "c"), ([3.0, 1.0], 4.0, "d")])]
    runs = {}
    for executor in ("threads", "ray"):
        flow = Hybrid()
        opts = [go.optimizer("torch", [flow.w], algorithm="Adam", lr=0.1),
                go.optimizer("optoprime", [flow.style], llm=scripted_client(specific))]
        result = Trainer(flow, data, metric=fitted, optimizers=opts, batch_size=2, epochs=2, seed=0,
                         quiet=True, restore_best=False, executor=executor).fit()
        runs[executor] = (flow, comparable(result))
    (local, on_threads), (remote, on_ray) = runs["threads"], runs["ray"]
    assert not torch.equal(remote.w.value, torch.zeros(2))  # gradients came back from the workers
    assert torch.allclose(remote.w.value, local.w.value, rtol=0, atol=1e-6)
    assert remote.style.value == local.style.value != "quiet"  # text feedback flowed too
    assert on_ray == on_threads


class CachedAsker(go.Module):
    """One model call per example through a reply cache in ``directory``, on the worker."""

    def __init__(self, directory: str) -> None:
        self.instruction = go.param("Answer.", name="instruction")
        self.directory = directory

    @go.op
    def ask(self, instruction: str, text: str) -> str:
        from graphopt.llm.cache import ReplyCache
        from graphopt.llm.client import Client
        from graphopt.llm.config import load_settings
        from graphopt.llm.registry import usage_ledger
        from graphopt.llm.scripted import ScriptedBackend

        model = "scripted/model"
        client = Client(model, ScriptedBackend(model, lambda messages, params: "positive"),
                        settings=load_settings(model=model, retries=0, backoff=0.0),
                        cache=ReplyCache(self.directory), ledger=usage_ledger())
        return client.complete([{"role": "user", "content": f"{instruction} {text}"}], max_tokens=4).text

    def forward(self, text: str) -> go.Node:
        return self.ask(self.instruction, text)


def test_reply_cache_hits_on_workers_count_in_the_drivers_usage_as_on_threads(cluster, tmp_path):
    from graphopt.llm.registry import usage_ledger

    counts = {}
    for executor in ("threads", "ray"):
        flow = CachedAsker(str(tmp_path / executor))  # each executor its own reply cache
        ledger = usage_ledger()
        before = ledger.totals()
        runs = [go.evaluate(flow, TRAIN, exact, cache=EvalCache(), executor=executor).usage
                for _ in range(2)]  # a fresh evaluation cache: the second run asks the model again
        assert (runs[1].calls, runs[1].cached_calls) == (0, len(TRAIN))  # every reply from the cache
        after = ledger.totals()
        counts[executor] = ([(u.calls, u.cached_calls, u.tokens) for u in runs],
                            {k: after[k] - before[k] for k in after})
    assert counts["ray"] == counts["threads"]
    assert counts["ray"][1]["calls"] == len(TRAIN) and counts["ray"][1]["cached_calls"] == len(TRAIN)


class LocalAsker(go.Module):
    """One call to the embedded model per example; says how many engines its process holds."""

    def __init__(self) -> None:
        self.instruction = go.param("Say hi.", name="instruction")

    @go.op
    def ask(self, instruction: str, text: str) -> str:
        from graphopt.llm.local import runtime

        client = go.llm.get("local/smollm2")
        reply = client.complete([{"role": "user", "content": f"{instruction} {text}"}],
                                max_tokens=2, cache=False)
        proxy = client.backend.engine  # an EngineProxy on a Ray worker
        served_by = proxy.actor._actor_id.hex() if hasattr(proxy, "actor") else "this process"
        return f"{len(runtime._engines)}|{served_by}|{reply.text}"

    def forward(self, text: str) -> go.Node:
        return self.ask(self.instruction, text)


def test_the_embedded_model_loads_once_per_node_in_an_actor_not_in_each_worker(cluster):
    result = go.evaluate(LocalAsker(), TRAIN, lambda example, prediction: 1.0, executor="ray")
    outputs = [json.loads(e.output) for e in result.examples]
    assert all(e.error is None for e in result.examples), [e.error for e in result.examples]
    held, served_by, texts = zip(*(o.split("|", 2) for o in outputs))
    assert set(held) == {"0"} and all(texts), outputs  # no worker loaded the model itself
    assert len(set(served_by)) == 1 and "this process" not in served_by, outputs  # one node actor
    engines = [a for a in ray.util.list_named_actors(all_namespaces=True)
               if a["name"].startswith("graphopt-engine-")]
    assert len(engines) == 1 and engines[0]["namespace"] == "graphopt", engines  # it outlives the run
    ray.kill(ray.get_actor(engines[0]["name"], namespace="graphopt"))
