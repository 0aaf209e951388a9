"""A small run on a scripted LLM: importable by the tests, and runnable as a subprocess.

``python scripted_run.py RESULT.json --checkpoint C [--resume C] [--delay S]`` trains and writes
the result as JSON; the crash test kills it mid-run and resumes from its checkpoint.
"""

from __future__ import annotations

import argparse
import json
import re
import threading
from pathlib import Path
from typing import Any

import graphopt as go
from graphopt.graph.demos import demos as make_demos
from graphopt.llm import Client, Reply, Usage, get
from graphopt.plugins.manager import PluginManager, hookimpl
from graphopt.train import Example, Trainer

WORDS = {"positive": ["love", "great", "fine", "good"], "negative": ["hate", "awful", "bad", "poor"]}
TRAIN = [{"id": f"t{i}", "input": {"text": f"{w} thing{'!' if i % 3 == 0 else ''}"}, "target": label}
         for i, (label, w) in enumerate((lab, w) for lab, ws in WORDS.items() for w in ws)]
VAL = [{"id": f"v{i}", "input": {"text": f"very {w}{'!' if i % 2 else ''}"}, "target": label}
       for i, (label, w) in enumerate((lab, w) for lab, ws in WORDS.items() for w in ws[:3])]


def label_of(text: str) -> str:
    for label, words in WORDS.items():
        if any(w in text for w in words):
            return label
    return "unsure"


def answer(messages: list[dict[str, Any]], params: dict[str, Any]) -> str:
    """The scripted model: edits improve an instruction; classification depends on the prompt."""
    content = messages[-1]["content"]
    if content.startswith(("You improve one", "Two versions")):
        return "```text\nRead the text carefully, then name its sentiment.\n```"
    system = messages[0]["content"] if messages[0]["role"] == "system" else ""
    text = content.rsplit("Text:", 1)[-1]
    if "carefully" in system or content.count("Example:") >= 2 or "!" in text:
        return f"Sentiment: {label_of(text)}"
    return "I am not sure."


class ScriptedBackend:
    """Answers with ``answer``; optionally slow, to give a crash something to interrupt."""

    def __init__(self, model: str, delay: float) -> None:
        self.model = model
        self.delay = delay
        self.calls = 0
        self._lock = threading.Lock()

    def complete(self, messages: list[dict[str, Any]], **params: Any) -> Reply:
        with self._lock:
            self.calls += 1
        if self.delay:
            threading.Event().wait(self.delay)
        text = answer(messages, params)
        return Reply(text=text, model=self.model, cost=0.001,
                     usage=Usage(prompt_tokens=10, completion_tokens=len(text.split())))

    async def acomplete(self, messages: list[dict[str, Any]], **params: Any) -> Reply:
        return self.complete(messages, **params)


class ScriptedFactory:
    provider = "scripted"

    def __init__(self, delay: float = 0.0) -> None:
        self.delay = delay
        self.backends: list[ScriptedBackend] = []

    def create(self, model: str, **config: Any) -> ScriptedBackend:
        backend = ScriptedBackend(model, self.delay)
        self.backends.append(backend)
        return backend

    @property
    def calls(self) -> int:
        return sum(b.calls for b in self.backends)

    @hookimpl
    def graphopt_llm_backends(self) -> list[Any]:
        return [self]


def scripted_client(cache_dir: Path, delay: float = 0.0) -> tuple[Client, ScriptedFactory]:
    """A client on the scripted model, caching under ``cache_dir`` (``cache=False`` if None)."""
    factory = ScriptedFactory(delay)
    manager = PluginManager()
    manager.register(factory, name="scripted-llm")
    return get("scripted/model", plugin_manager=manager, cache_dir=cache_dir, backoff=0.0), factory


class Sentiment(go.Module):
    """An LLM step whose instruction and demonstrations are parameters, and trainable parsing."""

    def __init__(self, client: Client) -> None:
        self.client = client
        self.instruction = go.param("Answer.", name="instruction")
        self.demos = make_demos(name="demos", max_demos=3)

    @go.op
    def ask(self, instruction: str, demos: list[dict[str, Any]], text: str) -> str:
        shown = "".join(f"Example: {d['inputs']['text']} -> {d['output']}\n" for d in demos)
        reply = self.client.complete([{"role": "system", "content": instruction},
                                      {"role": "user", "content": f"{shown}Text: {text}"}], max_tokens=8)
        return reply.text

    @go.op(trainable=True)
    def parse(self, reply: str) -> str:
        return reply.split(":")[-1].strip().lower()

    def forward(self, text: str) -> go.Node:
        return self.parse(self.ask(self.instruction, self.demos, text))


def exact(example: Example, prediction: Any) -> go.Feedback:
    """1 for the right label; a critique otherwise."""
    if prediction == example.target:
        return go.Feedback(score=1.0)
    return go.Feedback(score=0.0, text=f"expected {example.target!r}, got {prediction!r}")


def build(cache_dir: Path, *, delay: float = 0.0, optimizers: tuple[str, ...] = ("evolution", "fewshot"),
          **options: Any) -> tuple[Trainer, Sentiment, ScriptedFactory]:
    client, factory = scripted_client(cache_dir, delay)
    flow = Sentiment(client)
    manager = PluginManager()
    manager.load_builtins()
    built = []
    if "evolution" in optimizers:
        built.append(go.optimizer("evolution", [flow.instruction], llm=client, population=2, offspring=2,
                                  block_size=2, seed=1, plugin_manager=manager))
    if "fewshot" in optimizers:
        built.append(go.optimizer("fewshot", [flow.demos], max_demos=3, candidates=3, seed=2,
                                  plugin_manager=manager))
    options.setdefault("quiet", True)
    trainer = Trainer(flow, TRAIN, val=VAL, metric=exact, optimizers=built, batch_size=4, seed=0,
                      plugin_manager=manager, **options)
    return trainer, flow, factory


def comparable(result: Any) -> dict[str, Any]:
    """A result without wall times, for comparing runs."""
    data = json.loads(result.model_dump_json())
    for record in data["history"]:
        record.pop("time")
        record.pop("seconds")
        record["usage"].pop("cached_calls")
    data["usage"].pop("cached_calls")
    data.pop("checkpoint")
    return data


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("result")
    parser.add_argument("--cache", required=True)
    parser.add_argument("--checkpoint")
    parser.add_argument("--resume")
    parser.add_argument("--delay", type=float, default=0.0)
    parser.add_argument("--epochs", type=int, default=3)
    args = parser.parse_args()
    trainer, _, _ = build(Path(args.cache), delay=args.delay, checkpoint=args.checkpoint,
                          resume=args.resume, epochs=args.epochs, eval_every=1)
    result = trainer.fit()
    Path(args.result).write_text(json.dumps(comparable(result), sort_keys=True))


if __name__ == "__main__":
    main()
