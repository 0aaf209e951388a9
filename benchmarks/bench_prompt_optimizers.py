"""Prompt optimizers at a fixed budget of model calls: gepa (with and without the surrogate),
mcts, mapelites, spo and apohf on two small tasks of our own, from the same start.

The embedded SmolLM2-135M is both the task model (greedy, a few tokens) and the optimizer's
model. Every model call counts against one budget per run (task, rewrite and judge calls alike;
``go.Budget(max_calls=...)``), the run stops when it is spent, and the validation score of the
values it ends with is measured afterwards (outside the budget).

- Score-based optimizers (gepa, mcts, mapelites) run through ``go.optimize`` with its acceptance
  gate (``accept="improve"``) and ``restore_best``, so they cannot end below the start.
- spo and apohf use no labels: their closures return the task model's outputs on a training
  minibatch and an LLM judge compares them. ``end`` is what they end with; ``gated`` applies the
  same rule as the trainer's ``restore_best`` (keep the start unless validation improved).

Tasks (6 training and 6 validation examples each): ``sentiment`` (a review -> positive or
negative) and ``city`` (a sentence -> the city it names; 1 for the exact name, 0.5 when the reply
contains it).

    python benchmarks/bench_prompt_optimizers.py                        # 3 seeds, budget 40
    python benchmarks/bench_prompt_optimizers.py --seeds 1 --budget 20 --optimizers gepa spo
    python benchmarks/bench_prompt_optimizers.py --model scripted       # the harness, in seconds
    make bench                                                          # the scripted entry below
"""

from __future__ import annotations

import argparse
import random
import statistics
import time
from dataclasses import dataclass
from typing import Any, Callable

import pytest

import graphopt as go
from graphopt.llm.client import Client
from graphopt.llm.scripted import scripted_client

OPTIMIZERS = ("gepa", "gepa+surrogate", "mcts", "mapelites", "spo", "apohf")
REWRITE_TOKENS = 48
JUDGE_TOKENS = 16


# -- the tasks --------------------------------------------------------------------------------
@dataclass(frozen=True)
class Task:
    name: str
    start: str
    requirements: str
    template: str
    train: list[tuple[str, str]]
    val: list[tuple[str, str]]
    max_tokens: int

    def score(self, reply: str, target: str) -> float:
        words = reply.strip().lower()
        if self.name == "sentiment":
            other = "negative" if target == "positive" else "positive"
            return float(target in words and other not in words)
        first = words.splitlines()[0].strip(" .,!\"'") if words else ""
        return 1.0 if first == target.lower() else 0.5 if target.lower() in words else 0.0

    def feedback(self, example: Any, reply: Any) -> go.Feedback:
        """The metric: the score, and what was expected when it is not full marks."""
        score = self.score(str(reply), example.target)
        return go.Feedback(score=score, text=None if score == 1.0 else
                           f"expected {example.target!r}, the model replied {str(reply)!r}")


SENTIMENT = Task(
    "sentiment", "Read the text.", "Reply with one word: positive or negative.",
    "Review: {input}\nSentiment:",
    train=[("A warm, funny film. I loved it.", "positive"), ("Dull plot and wooden acting.", "negative"),
           ("The best meal I have had in years.", "positive"), ("It broke after two days.", "negative"),
           ("Friendly staff and quick service.", "positive"), ("I want my money back.", "negative")],
    val=[("Great sound and easy to set up.", "positive"), ("Boring, I fell asleep.", "negative"),
         ("Beautiful photos, a joy to read.", "positive"), ("The app crashes constantly.", "negative"),
         ("Exceeded every expectation.", "positive"), ("Cold food and rude waiters.", "negative")],
    max_tokens=3)

CITY = Task(
    "city", "Read the text.", "Reply with only the name of the city, nothing else.",
    "Sentence: {input}\nCity:",
    train=[("I moved to Berlin last spring.", "Berlin"), ("Our office in Tokyo opens at nine.", "Tokyo"),
           ("She grew up near the port of Lisbon.", "Lisbon"), ("The train to Madrid was late.", "Madrid"),
           ("He studied law in Toronto.", "Toronto"), ("We spent a week in Cairo.", "Cairo")],
    val=[("My sister lives in Oslo now.", "Oslo"), ("The conference is held in Chicago.", "Chicago"),
         ("They opened a bakery in Vienna.", "Vienna"), ("Flights to Sydney are cheap today.", "Sydney"),
         ("I was born in Dublin.", "Dublin"), ("The museum in Prague reopened.", "Prague")],
    max_tokens=5)

TASKS = {"sentiment": SENTIMENT, "city": CITY}


class Workflow:
    """The task model behind one traced op."""

    def __init__(self, task: Task, client: Client, system: go.Param) -> None:
        self.task = task
        self.system = system

        @go.op
        def respond(system_prompt: str, text: str) -> str:
            """Asks the task model, with ``system_prompt``, about ``text``."""
            messages = [{"role": "system", "content": system_prompt},
                        {"role": "user", "content": task.template.format(input=text)}]
            return client.complete(messages, max_tokens=task.max_tokens, temperature=0.0).text.strip()

        self.respond = respond

    def __call__(self, text: str) -> Any:
        return self.respond(self.system, text)

    def outputs(self, inputs: list[str]) -> list[str]:
        with go.no_trace():
            return [str(getattr(r, "value", r)) for r in (self(text) for text in inputs)]

    def accuracy(self, pairs: list[tuple[str, str]]) -> float:
        replies = self.outputs([text for text, _ in pairs])
        return statistics.mean(self.task.score(r, t) for r, (_, t) in zip(replies, pairs))


# -- one run ----------------------------------------------------------------------------------
@dataclass
class RunResult:
    task: str
    optimizer: str
    seed: int
    start: float
    end: float
    gated: float
    calls: int
    tokens: int
    seconds: float
    prompt: str
    detail: str


def build(name: str, system: go.Param, client: Client, task: Task, seed: int) -> go.Optimizer:
    common: dict[str, Any] = {"llm": client, "seed": seed, "max_tokens": REWRITE_TOKENS}
    if name in ("gepa", "gepa+surrogate"):
        extra = {"surrogate": {"min_observations": 2}, "proposals": 2} if name == "gepa+surrogate" else {}
        return go.optimizer("gepa", [system], minibatch_size=2, max_prompt_tokens=500,
                            objective=task.requirements, **common, **extra)
    if name == "mcts":
        return go.optimizer("mcts", [system], width=2, depth=2, minibatch_size=2,
                            max_prompt_chars=1_500, **common)
    if name == "mapelites":
        from graphopt_promptsearch import length_bins

        return go.optimizer("mapelites", [system], iterations=1, max_examples=3,
                            descriptors=[length_bins((30, 80))], **common)
    if name in ("spo", "apohf"):
        from graphopt_promptsearch import llm_judge

        # The optimizer's own model judges; a short reply keeps a judgement about as cheap as a rewrite.
        judge = llm_judge(client, requirements=task.requirements, max_tokens=JUDGE_TOKENS)
        return go.optimizer(name, [system], judge=judge, requirements=task.requirements, **common)
    raise ValueError(f"unknown optimizer {name!r}; expected one of {', '.join(OPTIMIZERS)}")


def run(name: str, task: Task, seed: int, budget: int, task_client: Client, optimizer_client: Client,
        start_score: float) -> RunResult:
    system = go.param(task.start, name="system")
    workflow = Workflow(task, task_client, system)
    opt = build(name, system, optimizer_client, task, seed)
    meter = go.Budget(max_calls=budget)
    started = time.perf_counter()
    if name in ("spo", "apohf"):
        rng = random.Random(seed)
        with go.budget(meter):
            try:
                for _ in range(100):
                    inputs = [text for text, _ in rng.sample(task.train, 3)]
                    opt.step(lambda: workflow.outputs(inputs))
            except go.BudgetExceeded:
                pass
    else:
        train = [{"text": text, "target": target} for text, target in task.train]
        val = [{"text": text, "target": target} for text, target in task.val]
        go.optimize(workflow, train, val=val, optimizers=opt, batch_size=3, epochs=100, budget=meter,
                    seed=seed, quiet=True, metric=task.feedback)
    seconds = time.perf_counter() - started
    end = workflow.accuracy(task.val)
    return RunResult(task.name, name, seed, start_score, end, end if end >= start_score else start_score,
                     meter.calls, meter.tokens, seconds, system.value, detail(opt))


def detail(opt: go.Optimizer) -> str:
    """What the optimizer did with its budget, in a few words."""
    if opt.name == "gepa":
        refused = len(opt.last_step.get("refused", [])) if opt.last_step else 0
        hits = f", surrogate hits {opt.surrogate.stats()['hits']}/{opt.surrogate.stats()['let_through']}" \
            if opt.surrogate is not None else ""
        return f"pool {len(opt.pool)}, {opt.evaluations} evaluations, last step refused {refused}{hits}"
    if opt.name == "mcts":
        return f"{len(opt.nodes)} nodes, {opt.dead_ends} dead ends"
    if opt.name == "mapelites":
        return f"{len(opt.elites)} elites, coverage {opt.coverage():.2f}"
    if opt.name == "spo":
        return f"{opt.steps} proposals, wins/losses/ties {opt.wins}/{opt.losses}/{opt.ties}"
    return f"{len(opt.candidates)} candidates, {len(opt.judgements)} judgements"


# -- models -----------------------------------------------------------------------------------
def embedded_clients() -> tuple[Client, Client]:
    task_client = go.llm.get("local/smollm2", cache=False, device="cpu", tag="task")
    return task_client, go.llm.get("local/smollm2", cache=False, device="cpu")


def scripted_clients() -> tuple[Client, Client]:
    """A task model that does the task only when told how, and an optimizer model that says so."""
    def task_model(messages: list[dict], params: dict) -> str:
        system, user = messages[0]["content"].lower(), messages[-1]["content"]
        if "Review:" in user:
            text = user.split("Review:")[1].lower()
            good = any(w in text for w in ("love", "best", "great", "friendly", "joy", "exceed", "warm", "beautiful"))
            return ("positive" if good else "negative") if "positive or negative" in system else "ok"
        sentence = user.split("Sentence:")[1].split("\n")[0]
        city = next((w.strip(".") for w in sentence.split()[1:] if w[:1].isupper()), "")
        return city if "city" in system else sentence

    def optimizer_model(messages: list[dict], params: dict) -> str:
        content = messages[-1]["content"]
        if "Which output is better" in content:
            first = content.split("Output A:")[1].split("Output B:")[0]
            return "A" if len(first.strip()) < len(content.split("Output B:")[1].split("Which")[0].strip()) else "B"
        sentiment = any(word in content for word in ("positive", "negative", "Review"))
        wanted = ("Reply with one word: positive or negative." if sentiment
                  else "Reply with only the name of the city.")
        return f"```text\n{wanted}\n```"

    return scripted_client(task_model), scripted_client(optimizer_model)


# -- the table --------------------------------------------------------------------------------
def table(results: list[RunResult]) -> str:
    lines = ["| task | optimizer | start | end (mean ± sd) | gated end | worst gated - start | calls | tokens | wall s |",
             "|---|---|---|---|---|---|---|---|---|"]
    groups: dict[tuple[str, str], list[RunResult]] = {}
    for result in results:
        groups.setdefault((result.task, result.optimizer), []).append(result)
    for (task, optimizer), runs in groups.items():
        ends = [r.end for r in runs]
        spread = statistics.stdev(ends) if len(ends) > 1 else 0.0
        lines.append(
            f"| {task} | {optimizer} | {runs[0].start:.3f} | {statistics.mean(ends):.3f} ± {spread:.3f} "
            f"| {statistics.mean(r.gated for r in runs):.3f} | {min(r.gated - r.start for r in runs):+.3f} "
            f"| {statistics.mean(r.calls for r in runs):.1f} | {statistics.mean(r.tokens for r in runs):.0f} "
            f"| {statistics.mean(r.seconds for r in runs):.1f} |")
    return "\n".join(lines)


def compare_optimizers(*, seeds: int, budget: int, optimizers: tuple[str, ...], tasks: tuple[str, ...],
              clients: Callable[[], tuple[Client, Client]], log: Callable[[str], None] = print
              ) -> list[RunResult]:
    task_client, optimizer_client = clients()
    results = []
    for task_name in tasks:
        task = TASKS[task_name]
        start_score = Workflow(task, task_client, go.param(task.start, name="system")).accuracy(task.val)
        log(f"{task.name}: start {task.start!r} scores {start_score:.3f} on validation")
        for name in optimizers:
            for seed in range(seeds):
                result = run(name, task, seed, budget, task_client, optimizer_client, start_score)
                log(f"  {name:<15} seed {seed}: {result.start:.3f} -> {result.end:.3f} "
                    f"({result.calls} calls, {result.tokens} tokens, {result.seconds:.0f}s; {result.detail}) "
                    f"{result.prompt!r}")
                results.append(result)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--budget", type=int, default=40, help="model calls per run (task + optimizer)")
    parser.add_argument("--optimizers", nargs="+", default=list(OPTIMIZERS), choices=OPTIMIZERS)
    parser.add_argument("--tasks", nargs="+", default=list(TASKS), choices=list(TASKS))
    parser.add_argument("--model", choices=("embedded", "scripted"), default="embedded")
    parser.add_argument("--out", help="also write the table (markdown) to this file")
    args = parser.parse_args()
    clients = embedded_clients if args.model == "embedded" else scripted_clients
    results = compare_optimizers(seeds=args.seeds, budget=args.budget, optimizers=tuple(args.optimizers),
                        tasks=tuple(args.tasks), clients=clients)
    summary = (f"model: {args.model}, budget {args.budget} model calls per run, {args.seeds} seeds\n\n"
               f"{table(results)}\n")
    print("\n" + summary)
    if args.out:
        with open(args.out, "w", encoding="utf-8") as handle:
            handle.write(summary)


# -- pytest-benchmark entries -----------------------------------------------------------------
def test_harness_with_scripted_models(benchmark):
    """The whole harness on scripted models: each run stays within its budget and its gated score
    never ends below the start."""
    results = benchmark.pedantic(
        lambda: compare_optimizers(seeds=1, budget=30, optimizers=OPTIMIZERS, tasks=tuple(TASKS),
                                       clients=scripted_clients, log=lambda line: None),
        rounds=1, iterations=1)
    benchmark.extra_info["table"] = table(results)
    assert all(r.gated >= r.start for r in results)
    assert all(r.calls <= 30 for r in results)


@pytest.mark.slow
def test_one_seed_on_the_embedded_model(benchmark):
    results = benchmark.pedantic(
        lambda: compare_optimizers(seeds=1, budget=16, optimizers=("gepa", "spo"), tasks=("sentiment",),
                                       clients=embedded_clients, log=lambda line: None),
        rounds=1, iterations=1)
    benchmark.extra_info["table"] = table(results)
    assert all(r.gated >= r.start for r in results)


if __name__ == "__main__":
    main()
