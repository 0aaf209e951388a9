"""``run_demo``: optimize ``ReviewTriage`` over the bundled reviews and report before and after.

Three optimizers share the run: ``torch`` trains the head, ``fewshot`` fills the demonstrations,
``optoprime`` (or ``evolution``) revises the instruction. New demos are kept when they score no
worse on the step's minibatch; a new instruction only when it scores strictly better
(``accept="better"``), so on a tie the 135M model's text stays out. optoprime's reply is held to
48 tokens: an instruction of a sentence or two and a short reason, which is all the 135M model
writes usefully (each token costs a decoding step, most of the job's time). Replies and
evaluations are cached under the cache directory, so a second run makes (nearly) no model calls.
"""

from __future__ import annotations

import os
import time
from importlib import resources
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict
from rich.console import Console

from graphopt.graph.export import to_networkx
from graphopt.llm.config import load_settings
from graphopt.llm.registry import get
from graphopt.optim.optimizer import Optimizer
from graphopt.optim.registry import optimizer
from graphopt.plugins.manager import available
from graphopt.train.cache import EvalCache
from graphopt.train.data import Example, load_examples
from graphopt.train.report import write_report
from graphopt.train.trainer import Trainer
from graphopt.demo.workflow import ReviewTriage, confident_accuracy

NAMESPACE = "graphopt.demo/review-triage/1"


class DemoSummary(BaseModel):
    """What a demo run reports."""

    model_config = ConfigDict(frozen=True)

    before: float
    after: float
    steps: int
    seconds: float
    calls: int
    cached_calls: int
    tokens: int
    cost: float
    report: str
    checkpoint: str
    instruction_optimizer: str


def bundled(name: str) -> list[Example]:
    """A bundled dataset, ``train`` or ``val``."""
    with resources.as_file(resources.files("graphopt.demo") / "data" / f"{name}.jsonl") as path:
        return load_examples(path)


def instruction_optimizer(flow: ReviewTriage, client: Any, search: str) -> Optimizer:
    """``optoprime`` when installed (and not overridden), else ``evolution``, over the instruction."""
    if search == "auto":
        search = "optoprime" if "optoprime" in available() else "evolution"
    if search == "optoprime":
        chosen = optimizer("optoprime", [flow.instruction], llm=client, max_prompt_tokens=700,
                           max_tokens=48, max_runs=2)
        chosen.accept = "better"  # the gate's mode for this optimizer (Trainer(accept=...) for all)
        return chosen
    return optimizer("evolution", [flow.instruction], llm=client, population=2, offspring=1,
                     block_size=4, max_tokens=48, seed=0)


def run_demo(*, quick: bool = False, model: str | None = None,
             cache_dir: str | os.PathLike[str] | None = None, out: str | os.PathLike[str] | None = None,
             search: str = "auto", quiet: bool = False, console: Console | None = None) -> DemoSummary:
    """Optimize the demo workflow; writes ``report.html`` and a checkpoint under ``out``."""
    started = time.perf_counter()
    settings = load_settings(model=model, cache_dir=cache_dir)
    out_dir = Path(out) if out is not None else settings.cache_dir / "demo"
    client = get(settings.model, cache_dir=settings.cache_dir)
    flow = ReviewTriage(client)
    train, val = bundled("train"), bundled("val")
    if quick:
        train, val = train[:8], val[:8]
    optimizers = [optimizer("torch", [flow.head], algorithm="Adam", lr=0.5),
                  optimizer("fewshot", [flow.demos], max_demos=3, candidates=2, seed=0),
                  instruction_optimizer(flow, client, search)]
    checkpoint = out_dir / ("quick.ckpt.json" if quick else "demo.ckpt.json")
    checkpoint.unlink(missing_ok=True)
    trainer = Trainer(flow, train, val=val, metric=confident_accuracy, optimizers=optimizers,
                      epochs=1 if quick else 2, batch_size=4 if quick else 8, seed=0, concurrency=8,
                      cache=EvalCache(settings.cache_dir / "eval"), namespace=NAMESPACE,
                      checkpoint=checkpoint, history=out_dir / "history.jsonl", quiet=quiet,
                      reporter=None)
    result = trainer.fit()
    graph = to_networkx(flow.forward(val[0].input["review"]))
    report = out_dir / "report.html"
    summary = DemoSummary(before=result.initial_score or 0.0, after=result.best_score or 0.0,
                          steps=result.steps, seconds=time.perf_counter() - started,
                          calls=result.usage.calls, cached_calls=result.usage.cached_calls,
                          tokens=result.usage.tokens, cost=result.usage.cost, report=str(report),
                          checkpoint=str(checkpoint), instruction_optimizer=optimizers[-1].name)
    write_report(report, title="graphopt demo: review triage", graph=graph, history=result.history,
                 summary={"model": settings.model, "validation before": f"{summary.before:.3f}",
                          "validation after": f"{summary.after:.3f}", "steps": summary.steps,
                          "model calls": summary.calls, "cached calls": summary.cached_calls,
                          "tokens": summary.tokens, "seconds": f"{summary.seconds:.1f}",
                          "optimizers": ", ".join(o.name for o in optimizers)},
                 values=result.best_values)
    return summary
