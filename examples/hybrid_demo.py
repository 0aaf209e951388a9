"""A hybrid workflow optimized offline: torch gradients, random search and text feedback in one graph.

Sentiment of short reviews: trainable featurizer code turns text into keyword counts, a tensor
head scores them (trained by the ``torch`` optimizer), a decision threshold is tuned by ``random``
search on validation accuracy, and the prompt-like template receives the textual critiques that
an LLM optimizer would read.
"""

from __future__ import annotations

import torch

import graphopt as go

POSITIVE = ["great", "love", "excellent", "fun", "good", "wonderful", "best", "enjoyed"]
NEGATIVE = ["bad", "boring", "awful", "worst", "hate", "dull", "poor", "waste"]
VOCAB = POSITIVE + NEGATIVE


def make_reviews(n: int, seed: int) -> list[tuple[str, int]]:
    generator = torch.Generator().manual_seed(seed)
    reviews = []
    for _ in range(n):
        label = int(torch.randint(0, 2, (1,), generator=generator))
        pool = POSITIVE if label else NEGATIVE
        words = [pool[int(i)] for i in torch.randint(0, len(pool), (2,), generator=generator)]
        noise = VOCAB[int(torch.randint(0, len(VOCAB), (1,), generator=generator))]
        reviews.append((f"the movie was {words[0]} and {noise}, really {words[1]}", label))
    return reviews


class SentimentFlow(go.Module):
    def __init__(self) -> None:
        self.template = go.param("Review: {text}", name="template",
                                 description="how a review is presented to the scorer")
        self.head = go.param(torch.zeros(len(VOCAB), requires_grad=True), name="head")
        self.bias = go.param(torch.zeros(1, requires_grad=True), name="bias")
        self.threshold = go.param(0.7, name="threshold", space=go.Float(0.2, 0.8))

    @go.op(trainable=True)
    def featurize(self, text: str) -> torch.Tensor:
        """Keyword counts of the review, one per vocabulary word."""
        words = text.lower().replace(",", " ").split()
        return torch.tensor([float(words.count(w)) for w in VOCAB])

    @go.op
    def score(self, features: torch.Tensor, head: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        """Probability that the review is positive."""
        return torch.sigmoid(features @ head + bias)[0]

    @go.op
    def decide(self, probability: torch.Tensor, threshold: float) -> int:
        """1 when the probability clears the threshold."""
        return int(probability.item() > threshold)

    def forward(self, text: str) -> tuple[go.Node, go.Node]:
        shown = go.ops.format(self.template, text=text)
        probability = self.score(self.featurize(shown), self.head, self.bias)
        return probability, self.decide(probability, self.threshold)


def accuracy(flow: SentimentFlow, data: list[tuple[str, int]]) -> float:
    with go.no_trace():
        return sum(flow.forward(text)[1] == label for text, label in data) / len(data)


def main() -> None:
    train, valid = make_reviews(200, seed=0), make_reviews(100, seed=1)
    flow = SentimentFlow()
    before = accuracy(flow, valid)
    head_opt = go.optimizer("torch", [flow.head, flow.bias], algorithm="Adam", lr=0.1)
    threshold_opt = go.optimizer("random", [flow.threshold], seed=0)

    for epoch in range(3):
        for start in range(0, len(train), 20):
            head_opt.zero_feedback()
            flow.template.feedback.clear()
            batch = train[start:start + 20]
            for text, label in batch:
                probability, decision = flow.forward(text)
                loss = go.ops.mse(probability, torch.tensor(float(label)))
                critique = "correct" if decision.value == label else f"expected label {label} for {text!r}"
                go.backward(loss, go.Feedback(loss=loss.value / len(batch), text=critique))
            head_opt.step()
        print(f"epoch {epoch}: train accuracy {accuracy(flow, train):.2f}, "
              f"{len(flow.template.feedback)} critiques reached the template in the last batch")

    for _ in range(12):  # random search on validation accuracy, with the trained head
        threshold_opt.zero_feedback()
        _, decision = flow.forward(valid[0][0])
        go.backward(decision, go.Feedback(score=accuracy(flow, valid)))
        threshold_opt.step()
    flow.threshold.assign(threshold_opt.best["values"]["threshold"])

    probability, decision = flow.forward(valid[0][0])
    graph = go.graph.to_networkx(decision)
    print(f"validation accuracy: before {before:.2f}, after {accuracy(flow, valid):.2f}")
    print(f"threshold {flow.threshold.value:.3f}; one run traces {graph.number_of_nodes()} nodes; "
          f"params: {', '.join(name for name, _ in flow.named_parameters())}")


if __name__ == "__main__":
    main()
