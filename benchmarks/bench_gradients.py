"""graphopt-gradients against the usual choices: ``greater`` vs ``optoprime`` vs ``fewshot`` on a
prompt, ``mezo`` vs Adam and ``lion`` vs Adam on a small regression network.

(a) prompts: the review-sentiment data bundled with the demo, the embedded SmolLM2-135M as task
    model (system prompt + "Review: ...\\nSentiment:", greedy, 4 tokens), the same weak start
    prompt for every method, a budget of model runs per seed (a task or optimizer LLM call counts
    one, a forward row of ``greater``'s loss counts one); validation accuracy and wall time.
(b) zeroth order: an MLP on a noisy regression task; loss reached after a number of forward
    passes (MeZO spends two per step, Adam one forward and one backward) and the memory each
    holds beyond the parameters: gradients, optimizer state and the activations autograd saves
    (counted exactly through ``torch.autograd.graph.saved_tensors_hooks``), plus MeZO's one
    transient direction tensor. On CUDA the peak allocation is read from ``torch.cuda``.
(c) Lion vs Adam on the same network: steps to a target loss (best of a small learning-rate grid
    each) and optimizer-state bytes.

    python benchmarks/bench_gradients.py b c        # the tables (a takes ~15 minutes on 2 CPU cores)
    python benchmarks/bench_gradients.py a --seeds 3 --budget 120 [--methods greater] [--first-seed 0]
    make bench                                      # pytest-benchmark timings of (b) and (c)
"""

from __future__ import annotations

import argparse
import random
import statistics
import time
from dataclasses import dataclass, field
from typing import Any, Callable

import pytest
import torch

import graphopt as go
from graphopt.graph.demos import demos as make_demos

# -- (b) and (c): a small regression network -------------------------------------------------
WIDTH = 64


def regression_data(seed: int, count: int = 512, features: int = 8) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(count, features, generator=generator)
    y = torch.sin(x[:, :1] * 2) + x[:, 1:2] * x[:, 2:3] + 0.05 * torch.randn(count, 1, generator=generator)
    return x, y


def network(seed: int, features: int = 8, device: str = "cpu", grad: bool = True) -> list[go.Param]:
    generator = torch.Generator().manual_seed(seed)

    def weight(*shape: int) -> torch.Tensor:
        return (torch.randn(*shape, generator=generator) / shape[0] ** 0.5).to(device).requires_grad_(grad)

    return [go.param(weight(features, WIDTH), name="w1"),
            go.param(torch.zeros(WIDTH, device=device, requires_grad=grad), name="b1"),
            go.param(weight(WIDTH, 1), name="w2"),
            go.param(torch.zeros(1, device=device, requires_grad=grad), name="b2")]


def forward(params: list[go.Param], x: torch.Tensor) -> torch.Tensor:
    w1, b1, w2, b2 = (p.value for p in params)
    return torch.tanh(x @ w1 + b1) @ w2 + b2


def mse(params: list[go.Param], x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return ((forward(params, x) - y) ** 2).mean()


@go.op
def regression_loss(w1: torch.Tensor, b1: torch.Tensor, w2: torch.Tensor, b2: torch.Tensor,
                    x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Mean squared error of the MLP, traced so ``go.backward`` runs autograd through it."""
    return ((torch.tanh(x @ w1 + b1) @ w2 + b2 - y) ** 2).mean()


@dataclass
class Curve:
    """Loss after each forward pass count, and the bytes held beyond the parameters."""

    losses: dict[int, float] = field(default_factory=dict)
    held_bytes: int = 0
    state_bytes: int = 0
    seconds: float = 0.0


def saved_bytes(run: Callable[[], Any]) -> int:
    """Bytes of the tensors autograd saves for backward while ``run`` executes."""
    total = 0

    def pack(tensor: torch.Tensor) -> torch.Tensor:
        nonlocal total
        total += tensor.numel() * tensor.element_size()
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        run()
    return total


def tensor_bytes(tensors: Any) -> int:
    return sum(t.numel() * t.element_size() for t in tensors if isinstance(t, torch.Tensor))


def train_adam(seed: int, passes: int, checkpoints: tuple[int, ...], lr: float = 1e-2,
               device: str = "cpu") -> Curve:
    x, y = (t.to(device) for t in regression_data(seed))
    params = network(seed, device=device)
    opt = go.optimizer("torch", params, algorithm="Adam", lr=lr)
    curve = Curve()
    started = time.perf_counter()
    for done in range(1, passes + 1):
        if done == 1:
            activations = saved_bytes(lambda: go.backward(regression_loss(*params, x, y)))
        else:
            go.backward(regression_loss(*params, x, y))
        opt.step()
        if done == 1:
            grads = tensor_bytes(p.value.grad for p in params)
            state = sum(tensor_bytes(s.values()) for s in opt.torch_optimizer.state.values())
            curve.held_bytes, curve.state_bytes = activations + grads + state, state
        opt.zero_feedback()
        if done in checkpoints:
            with torch.no_grad():
                curve.losses[done] = float(mse(params, x, y))
    curve.seconds = time.perf_counter() - started
    return curve


def train_mezo(seed: int, passes: int, checkpoints: tuple[int, ...], lr: float = 1e-2, eps: float = 1e-3,
               device: str = "cpu") -> Curve:
    x, y = (t.to(device) for t in regression_data(seed))
    params = network(seed, device=device, grad=False)
    opt = go.optimizer("mezo", params, lr=lr, eps=eps, seed=seed)
    curve = Curve()
    started = time.perf_counter()
    activations = 0

    def closure() -> torch.Tensor:
        nonlocal activations
        loss = None

        def run() -> None:
            nonlocal loss
            loss = mse(params, x, y)

        activations = max(activations, saved_bytes(run))  # under mezo's no_grad: nothing is saved
        return loss

    for done in range(2, passes + 1, 2):
        opt.step(closure)
        for mark in checkpoints:
            if done - 2 < mark <= done:
                with torch.no_grad():
                    curve.losses[mark] = float(mse(params, x, y))
    # MeZO holds no gradients and no state; one direction tensor lives at a time.
    curve.held_bytes = activations + max(tensor_bytes([p.value]) for p in params)
    curve.seconds = time.perf_counter() - started
    return curve


def train_to_target(method: str, seed: int, lr: float, target: float, max_steps: int = 600) -> tuple[int, int]:
    """(steps until the training loss is at most ``target`` (max_steps + 1 if never), state bytes)."""
    x, y = regression_data(seed)
    params = network(seed)
    opt = (go.optimizer("lion", params, lr=lr, betas=(0.9, 0.99)) if method == "lion"
           else go.optimizer("torch", params, algorithm="Adam", lr=lr))
    state = 0
    for step in range(1, max_steps + 1):
        loss = regression_loss(*params, x, y)
        if float(loss.value.detach()) <= target:
            return step - 1, state
        go.backward(loss)
        opt.step()
        opt.zero_feedback()
        if step == 1:
            state = (opt.state_bytes() if method == "lion"
                     else sum(tensor_bytes(s.values()) for s in opt.torch_optimizer.state.values()))
    return max_steps + 1, state


LION_LRS = (1e-3, 3e-3, 1e-2)
ADAM_LRS = (1e-2, 3e-2, 1e-1)


def steps_to_target(method: str, seed: int, target: float) -> tuple[int, float, int]:
    """Best (steps, lr, state bytes) over the method's learning-rate grid."""
    grid = LION_LRS if method == "lion" else ADAM_LRS
    results = [(*train_to_target(method, seed, lr, target), lr) for lr in grid]
    steps, state, lr = min(results)
    return steps, lr, state


# -- (a) prompts through the embedded model ---------------------------------------------------
START_PROMPT = "Read the text."
PROMPT_METHODS = ("greater", "optoprime", "fewshot")
TEMPLATE = "Review: {input}\nSentiment:"


@dataclass
class PromptRun:
    method: str
    seed: int
    accuracy_before: float
    accuracy_after: float
    seconds: float
    spent: int
    task_calls: int
    optimizer_calls: int
    forward_rows: int
    prompt: str


def prompt_task() -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    from graphopt.train.data import load_examples
    from importlib import resources

    data = resources.files("graphopt.demo") / "data"
    pairs = []
    for split in ("train.jsonl", "val.jsonl"):
        examples = load_examples(str(data / split))
        pairs.append([(e.input["review"], e.target) for e in examples])
    return pairs[0], pairs[1]


class Task:
    """The task model behind one traced op, counting its calls."""

    def __init__(self, client: Any) -> None:
        self.client = client
        self.calls = 0

        @go.op
        def label(system_prompt: str, demos: list, review: str) -> str:
            shots = "".join(f"Review: {d['inputs']['review']}\nSentiment: {d['output']}\n\n" for d in demos)
            messages = [{"role": "system", "content": system_prompt},
                        {"role": "user", "content": shots + TEMPLATE.format(input=review)}]
            self.calls += 1
            return self.client.complete(messages, max_tokens=4).text.strip()

        self.label = label

    @staticmethod
    def correct(reply: str, target: str) -> float:
        words = reply.lower()
        other = "negative" if target == "positive" else "positive"
        return float(target in words and other not in words)

    def accuracy(self, system: go.Param, demos: go.Param, pairs: list[tuple[str, str]]) -> float:
        with go.no_trace():
            replies = [self.label(system.value, demos.value, review) for review, _ in pairs]
        return statistics.mean(self.correct(getattr(r, "value", r), t) for r, (_, t) in zip(replies, pairs))


def optimizer_calls(client: Any) -> int:
    """Real (uncached) calls optoprime made: the process shares one ledger, tagged by caller."""
    return int(client.ledger.by_tag().get("optoprime", {}).get("calls", 0))


def optimize_prompt(method: str, seed: int, budget: int, client: Any, optimizer_client: Any,
                    train: list[tuple[str, str]], val: list[tuple[str, str]], before: float,
                    batch: int = 4) -> PromptRun:
    task = Task(client)
    system = go.param(START_PROMPT, name="system_prompt")
    demos = make_demos(name="demos", max_demos=4)
    rng = random.Random(seed)
    order = train[:]
    rng.shuffle(order)
    greater_examples = order[:4]
    if method == "greater":
        opt = go.optimizer("greater", [system], examples=greater_examples, template=TEMPLATE, chat="system",
                           device="cpu", topk=2, lm_topk=None, positions_per_step=3, candidates=6, seed=seed)
    elif method == "optoprime":
        opt = go.optimizer("optoprime", [system], llm=optimizer_client, max_tokens=160, max_prompt_tokens=1_500)
    else:
        opt = go.optimizer("fewshot", [demos], max_demos=4, candidates=3, seed=seed)
    optimizer_calls_before = optimizer_calls(optimizer_client) if method == "optoprime" else 0

    def spent() -> int:
        rows = opt.prompt_loss().forward_rows if method == "greater" and opt._loss is not None else 0
        llm = optimizer_calls(optimizer_client) - optimizer_calls_before if method == "optoprime" else 0
        return task.calls + llm + rows

    started = time.perf_counter()
    position = 0
    while spent() < budget:
        minibatch = [order[(position + i) % len(order)] for i in range(batch)]
        position += batch
        for review, target in minibatch:
            reply = task.label(system, demos, review)
            score = task.correct(reply.value, target)
            go.backward(reply, go.Feedback(score=score, text="correct" if score else
                                           f"expected {target!r}, the model replied {reply.value!r}"))

        def closure() -> go.Feedback:
            with go.no_trace():
                scores = [task.correct(task.label(system.value, demos.value, r), t) for r, t in minibatch]
            return go.Feedback(score=statistics.mean(scores))

        try:
            opt.step(closure)
        except go.OptimizerStepError:
            pass  # a refused step changes nothing; the budget was still spent
        opt.zero_feedback()
    seconds = time.perf_counter() - started
    total = spent()
    calls = task.calls
    after = task.accuracy(system, demos, val)
    rows = opt.prompt_loss().forward_rows if method == "greater" else 0
    llm = optimizer_calls(optimizer_client) - optimizer_calls_before if method == "optoprime" else 0
    prompt = system.value if method != "fewshot" else f"{START_PROMPT} + {len(demos.value)} demos"
    return PromptRun(method, seed, before, after, seconds, total, calls, llm, rows, prompt)


def prompt_table(seeds: range, budget: int, methods: tuple[str, ...] = PROMPT_METHODS) -> list[PromptRun]:
    client = go.llm.get("local/smollm2", cache=False, device="cpu")
    optimizer_client = go.llm.get("local/smollm2", cache=False, device="cpu", tag="optimizer")
    train, val = prompt_task()
    start = Task(client)
    before = start.accuracy(go.param(START_PROMPT, name="system_prompt"), make_demos(name="demos"), val)
    runs = []
    for method in methods:
        for seed in seeds:
            run = optimize_prompt(method, seed, budget, client, optimizer_client, train, val, before)
            print(f"  {run.method:<10} seed {run.seed}: acc {run.accuracy_before:.3f} -> {run.accuracy_after:.3f} "
                  f"in {run.seconds:.0f}s (spent {run.spent}: {run.task_calls} task calls, "
                  f"{run.optimizer_calls} optimizer calls, {run.forward_rows} forward rows) {run.prompt!r}",
                  flush=True)
            runs.append(run)
    return runs


# -- pytest-benchmark entries -----------------------------------------------------------------
@pytest.mark.parametrize("method", ["adam", "mezo"])
def test_zeroth_order_memory(benchmark, method):
    run = train_mezo if method == "mezo" else train_adam
    curve = benchmark.pedantic(run, args=(0, 400, (100, 400)), rounds=1, iterations=1)
    benchmark.extra_info.update({f"loss_at_{k}_forwards": v for k, v in curve.losses.items()})
    benchmark.extra_info["held_bytes"] = curve.held_bytes
    assert curve.losses[400] < curve.losses[100] * 1.5


@pytest.mark.parametrize("method", ["adam", "lion"])
def test_steps_to_target(benchmark, method):
    steps, lr, state = benchmark.pedantic(steps_to_target, args=(method, 0, 0.1), rounds=1, iterations=1)
    benchmark.extra_info.update({"steps": steps, "lr": lr, "state_bytes": state})
    assert steps <= 600


# -- tables -----------------------------------------------------------------------------------
def mean_sd(values: list[float], fmt: str = ".3f") -> str:
    spread = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{statistics.mean(values):{fmt}} ± {spread:{fmt}}"


def table_b(seeds: int, device: str) -> None:
    checkpoints = (50, 200, 800)
    print(f"(b) mezo vs Adam, MLP 8-{WIDTH}-1 on 512 points, {device}: training MSE after N forward "
          f"passes (mean ± sd over {seeds} seeds)")
    print(f"{'method':<8}" + "".join(f"{f'@{n}':>18}" for n in checkpoints)
          + f"{'held bytes':>14}{'state bytes':>14}{'peak cuda':>12}{'seconds':>10}")
    for method, run in (("adam", train_adam), ("mezo", train_mezo)):
        curves, peaks = [], []
        for seed in range(seeds):
            if device == "cuda":
                torch.cuda.reset_peak_memory_stats()
            curves.append(run(seed, checkpoints[-1], checkpoints, device=device))
            peaks.append(torch.cuda.max_memory_allocated() if device == "cuda" else 0)
        cells = [mean_sd([c.losses[n] for c in curves], ".4f") for n in checkpoints]
        peak = f"{max(peaks):>12}" if device == "cuda" else f"{'-':>12}"
        print(f"{method:<8}" + "".join(f"{cell:>18}" for cell in cells)
              + f"{curves[0].held_bytes:>14}{curves[0].state_bytes:>14}{peak}"
              + f"{statistics.mean(c.seconds for c in curves):>10.2f}")
    x, y = regression_data(0)
    params = network(0, grad=False)
    print(f"inference: parameters {tensor_bytes(p.value for p in params)} bytes, a forward pass saves "
          f"{saved_bytes(lambda: mse(network(0), x, y))} bytes for backward when gradients are on, 0 without")


def table_c(seeds: int, target: float = 0.1) -> None:
    print(f"(c) lion vs Adam, same network: steps to training MSE <= {target} (best lr of a 3-point grid "
          f"each), optimizer-state bytes")
    print(f"{'method':<8}{'steps (per seed)':>26}{'mean':>10}{'lr chosen':>22}{'state bytes':>14}")
    for method in ("adam", "lion"):
        results = [steps_to_target(method, seed, target) for seed in range(seeds)]
        steps = [r[0] for r in results]
        print(f"{method:<8}{str(steps):>26}{statistics.mean(steps):>10.1f}{str([r[1] for r in results]):>22}"
              f"{results[0][2]:>14}")


def table_a(seeds: range, budget: int, methods: tuple[str, ...] = PROMPT_METHODS) -> None:
    print(f"(a) prompt optimization, task model local/smollm2 (cpu), start prompt {START_PROMPT!r}, "
          f"budget {budget} model runs per seed, seeds {list(seeds)}")
    runs = prompt_table(seeds, budget, methods)
    print(f"{'method':<10}{'val acc before':>16}{'val acc after':>16}{'lift':>16}{'wall s':>14}{'spent':>8}")
    for method in methods:
        mine = [r for r in runs if r.method == method]
        print(f"{method:<10}{mean_sd([r.accuracy_before for r in mine]):>16}"
              f"{mean_sd([r.accuracy_after for r in mine]):>16}"
              f"{mean_sd([r.accuracy_after - r.accuracy_before for r in mine]):>16}"
              f"{mean_sd([r.seconds for r in mine], '.0f'):>14}{statistics.mean(r.spent for r in mine):>8.0f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("parts", nargs="*", default=["b", "c"], choices=["a", "b", "c"])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--first-seed", type=int, default=0, help="(a): seeds first-seed .. first-seed + seeds - 1")
    parser.add_argument("--methods", nargs="+", default=list(PROMPT_METHODS), choices=PROMPT_METHODS)
    parser.add_argument("--budget", type=int, default=120)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    options = parser.parse_args()
    for part in options.parts:
        {"a": lambda: table_a(range(options.first_seed, options.first_seed + options.seeds), options.budget,
                              tuple(options.methods)), "b": lambda: table_b(options.seeds, options.device),
         "c": lambda: table_c(options.seeds)}[part]()
        print()


if __name__ == "__main__":
    main()
