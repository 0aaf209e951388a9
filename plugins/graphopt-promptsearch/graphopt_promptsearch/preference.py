"""A Bradley–Terry preference model over candidates, learnt from pairwise judgements.

``P(i beats j) = sigmoid(u(i) - u(j))`` with a linear utility ``u(x) = w · phi(x)``. ``phi`` is
the hashed n-gram features of a candidate's values (shared with ``graphopt.optim.surrogate``)
plus one indicator per known candidate, so the model fits each candidate it has seen and still
generalizes, through the words, to candidates never compared. Fitted by Newton's method on the
soft-label log-likelihood with an L2 penalty (convex: a few exact steps in the dual converge);
deterministic from the judgements, so it stores nothing.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, Mapping, Sequence

from graphopt.optim.surrogate import features

if TYPE_CHECKING:
    import torch

Values = Mapping[str, Any]


class PreferenceModel:
    """Bradley–Terry utilities from ``(first, second, preference for first)`` judgements."""

    def __init__(self, *, dims: int = 1 << 10, l2: float = 0.05, max_iter: int = 30) -> None:
        self.dims = dims
        self.l2 = l2
        self.max_iter = max_iter
        import torch  # here, not at the top: registering the plugin never loads torch

        self.weights = torch.zeros(dims + 1, dtype=torch.float64)
        self._ids: dict[int, int] = {}

    def phi(self, values: Values, candidate: int | None = None) -> torch.Tensor:
        """The feature vector: hashed n-grams, then the candidate's own indicator (if known)."""
        import torch

        vector = torch.zeros(self.dims + 1 + len(self._ids), dtype=torch.float64)
        for key, value in features(values, dims=self.dims).items():
            vector[key] = value
        if candidate is not None and candidate in self._ids:
            vector[self.dims + 1 + self._ids[candidate]] = 1.0
        return vector

    def fit(self, candidates: Mapping[int, Values], duels: Sequence[tuple[int, int, float]]) -> None:
        """Refit on every judgement so far; ``candidates`` maps ids to values."""
        import torch

        self._ids = {cid: n for n, cid in enumerate(sorted(candidates))}
        if not duels:
            self.weights = torch.zeros(self.dims + 1 + len(self._ids), dtype=torch.float64)
            return
        table = {cid: self.phi(values, cid) for cid, values in candidates.items()}
        rows = torch.stack([table[i] - table[j] for i, j, _ in duels])
        labels = torch.tensor([p for _, _, p in duels], dtype=torch.float64)
        self.weights = _newton(rows, labels, self.l2, self.max_iter)

    def utility(self, values: Values, candidate: int | None = None) -> float:
        """``u(values)``; pass a known ``candidate`` id to include its own term."""
        phi = self.phi(values, candidate)
        size = min(len(phi), len(self.weights))
        return float(phi[:size] @ self.weights[:size])

    def probability(self, first: Values, second: Values) -> float:
        """The model's chance that ``first`` is preferred to ``second`` (by their words alone)."""
        return 1.0 / (1.0 + math.exp(-(self.utility(first) - self.utility(second))))


def _newton(rows: torch.Tensor, labels: torch.Tensor, l2: float, max_iter: int) -> torch.Tensor:
    """Weights minimizing the logistic loss of ``rows @ w`` against soft ``labels`` plus
    ``l2 * |w|^2``, by Newton steps in the dual: the optimum is ``w = rows.T @ a``, so each step
    solves a system the size of the judgements, not of the features."""
    import torch

    gram = rows @ rows.T
    dual = torch.zeros(rows.shape[0], dtype=torch.float64)
    ridge = 2 * l2 * torch.eye(rows.shape[0], dtype=torch.float64)
    for _ in range(max_iter):
        chance = torch.sigmoid(gram @ dual)
        curvature = (chance * (1 - chance)).unsqueeze(1)
        step = torch.linalg.solve(curvature * gram + ridge, chance - labels + 2 * l2 * dual)
        dual = dual - step
        if float(step.abs().max()) < 1e-10:
            break
    return rows.T @ dual
