"""The demo workflow: an LLM labels a review, trainable code parses the reply, a torch head scores it.

Parameters: the LLM step's ``instruction`` (text) and ``demos`` (few-shot demonstrations), the
``parse`` op's source code, and the scoring ``head`` (a tensor: weights of the parsed features
and a bias). The metric rewards a confident, correct decision, so a vague reply scores nothing.
"""

from __future__ import annotations

from typing import Any

import torch

from graphopt.feedback.feedback import Feedback
from graphopt.graph.demos import demos
from graphopt.graph.module import Module
from graphopt.graph.node import Node, param
from graphopt.graph.op import op
from graphopt.llm.client import Client
from graphopt.train.data import Example

LABELS = ("negative", "positive")


class ReviewTriage(Module):
    """Decides whether a customer review is positive, through an LLM and a tensor head."""

    def __init__(self, client: Client, *, max_tokens: int = 4) -> None:
        self.client = client
        self.max_tokens = max_tokens
        self.instruction = param("Is the customer review positive or negative?", name="instruction",
                                 description="system prompt of the labelling LLM")
        self.demos = demos(name="demos", max_demos=4)
        self.head = param(torch.tensor([2.0, -2.0, 0.0], requires_grad=True), name="head",
                          description="weights of [says positive, says negative] and a bias")

    @op
    def label(self, instruction: str, demos: list[dict[str, Any]], review: str) -> str:
        """The LLM's reply: a sentiment word for the review."""
        shots = "".join(f"Review: {d['inputs']['review']}\nSentiment: {d['output']}\n\n" for d in demos)
        messages = [{"role": "system", "content": instruction},
                    {"role": "user", "content": f"{shots}Review: {review}\nSentiment:"}]
        return self.client.complete(messages, max_tokens=self.max_tokens).text.strip()

    @op(trainable=True)
    def parse(self, reply: str) -> list[float]:
        """Features of the reply: does it say positive, does it say negative."""
        text = reply.lower()
        return [float("positive" in text), float("negative" in text)]

    @op
    def score(self, features: list[float], head: torch.Tensor) -> torch.Tensor:
        """Probability that the review is positive."""
        return torch.sigmoid(torch.tensor([*features, 1.0]) @ head)

    def forward(self, review: str) -> Node:
        return self.score(self.parse(self.label(self.instruction, self.demos, review)), self.head)


def confident_accuracy(example: Example, probability: Any) -> Feedback:
    """Score 1 for a correct decision at least 75% sure; the loss trains the head."""
    target = torch.tensor(float(LABELS.index(example.target)))
    if not isinstance(probability, torch.Tensor):
        return Feedback(score=0.0, text=f"the workflow returned {probability!r}, not a probability")
    loss = torch.nn.functional.binary_cross_entropy(probability.clamp(1e-4, 1 - 1e-4), target)
    p = float(probability.detach())
    decided = LABELS[int(p > 0.5)]
    if abs(p - 0.5) >= 0.25 and decided == example.target:
        return Feedback(score=1.0, loss=loss)
    why = "unsure" if abs(p - 0.5) < 0.25 else f"said {decided}"
    return Feedback(score=0.0, loss=loss,
                    text=f"review {example.input['review']!r} is {example.target}; the workflow {why} (p={p:.2f})")
