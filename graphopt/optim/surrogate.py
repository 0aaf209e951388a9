"""A cheap learned score predictor that screens proposals before they are really evaluated.

As in PROMST (Chen et al., 2024), a model fitted on the candidates scored so far ranks new
proposals, and only the most promising are run. Features are hashed word n-grams of each
parameter's value (``name`` keeps parameters apart) plus a length feature, L2-normalized; the
model is kernel (dual) ridge regression over those sparse vectors, solved exactly with torch on
at most ``max_observations`` candidates. Fitting is deterministic from the observations, so the
state is just the observations and the screening counts. ``stats()`` reports the hit rate: the
share of proposals let through that then passed the real evaluation.
"""

from __future__ import annotations

import json
import math
import re
import zlib
from typing import Any, Mapping, Sequence

Values = Mapping[str, Any]
Features = dict[int, float]

_WORD = re.compile(r"\w+|[^\w\s]")


def features(values: Values, *, dims: int = 1 << 14, ngrams: int = 2) -> Features:
    """Hashed word n-grams (``1..ngrams``) of every value, L2-normalized; keys below ``dims``.

    The hash is crc32, stable across processes (Python's ``hash`` of a str is salted per run).
    """
    counts: Features = {}
    for name, value in sorted(values.items()):
        text = value if isinstance(value, str) else json.dumps(value, sort_keys=True)
        words = [w.lower() for w in _WORD.findall(text)]
        grams = [" ".join(words[i:i + n]) for n in range(1, ngrams + 1)
                 for i in range(len(words) - n + 1)]
        for gram in grams:
            key = zlib.crc32(f"{name}\x00{gram}".encode()) % dims
            counts[key] = counts.get(key, 0.0) + 1.0
        length_key = zlib.crc32(f"{name}\x00<length>".encode()) % dims
        counts[length_key] = counts.get(length_key, 0.0) + math.log1p(len(text))
    norm = math.sqrt(sum(v * v for v in counts.values())) or 1.0
    return {k: v / norm for k, v in counts.items()}


def dot(first: Features, second: Features) -> float:
    """The inner product of two sparse vectors."""
    if len(first) > len(second):
        first, second = second, first
    return sum(v * second.get(k, 0.0) for k, v in first.items())


class Surrogate:
    """Ridge regression on hashed n-grams of candidates' values, predicting their score.

    ``observe(values, score)`` adds a scored candidate; ``predict`` returns ``None`` until
    ``min_observations`` are known (a surrogate that knows nothing must not screen). ``screen``
    keeps the ``keep`` best-predicted of several proposals; ``record(passed)`` then says whether
    one let through passed its real evaluation, which ``stats()`` turns into a hit rate.
    """

    def __init__(self, *, alpha: float = 1.0, ngrams: int = 2, dims: int = 1 << 14,
                 min_observations: int = 4, max_observations: int = 256) -> None:
        if not alpha > 0:
            raise ValueError(f"surrogate: alpha expects a number > 0, got {alpha!r}")
        for option, value, least in (("ngrams", ngrams, 1), ("dims", dims, 16),
                                     ("min_observations", min_observations, 1),
                                     ("max_observations", max_observations, 2)):
            if isinstance(value, bool) or not isinstance(value, int) or value < least:
                raise ValueError(f"surrogate: {option} expects an int >= {least}, got {value!r}")
        self.alpha = alpha
        self.ngrams = ngrams
        self.dims = dims
        self.min_observations = min_observations
        self.max_observations = max_observations
        self.observations: list[tuple[dict[str, Any], float]] = []
        self.screened_out = 0
        self.let_through = 0
        self.hits = 0
        self._fit: tuple[list[Features], list[float], float] | None = None

    # -- learning -----------------------------------------------------------------------------
    def observe(self, values: Values, score: float) -> None:
        """Learn that ``values`` scored ``score`` (non-finite scores are not learnt from)."""
        if not math.isfinite(score):
            return
        self.observations.append((dict(values), float(score)))
        if len(self.observations) > self.max_observations:
            self.observations = self.observations[-self.max_observations:]
        self._fit = None

    @property
    def ready(self) -> bool:
        """Whether enough candidates are known to predict."""
        return len(self.observations) >= self.min_observations

    def _fitted(self) -> tuple[list[Features], list[float], float]:
        if self._fit is None:
            import torch  # on the first fit only: an optimizer built with a surrogate stays light

            vectors = [self.features(v) for v, _ in self.observations]
            scores = [s for _, s in self.observations]
            mean = sum(scores) / len(scores)
            n = len(vectors)
            gram = torch.empty((n, n), dtype=torch.float64)
            for i in range(n):
                for j in range(i, n):
                    gram[i, j] = gram[j, i] = dot(vectors[i], vectors[j])
            gram += self.alpha * torch.eye(n, dtype=torch.float64)
            target = torch.tensor([s - mean for s in scores], dtype=torch.float64)
            weights = torch.linalg.solve(gram, target).tolist()
            self._fit = (vectors, weights, mean)
        return self._fit

    def features(self, values: Values) -> Features:
        return features(values, dims=self.dims, ngrams=self.ngrams)

    def predict(self, values: Values) -> float | None:
        """The predicted score of ``values``; ``None`` before ``min_observations`` are known."""
        if not self.ready:
            return None
        vectors, weights, mean = self._fitted()
        query = self.features(values)
        return mean + sum(w * dot(query, v) for w, v in zip(weights, vectors))

    # -- screening ----------------------------------------------------------------------------
    def rank(self, candidates: Sequence[Values]) -> list[int]:
        """Indices of ``candidates``, highest predicted score first (given order when not ready)."""
        if not self.ready:
            return list(range(len(candidates)))
        predicted = [self.predict(c) for c in candidates]
        return sorted(range(len(candidates)), key=lambda i: (-predicted[i], i))  # type: ignore[operator]

    def screen(self, candidates: Sequence[Values], keep: int) -> list[int]:
        """The indices of the ``keep`` best-predicted candidates, best first; all of them (in
        order) while the surrogate is not ready. Counts what it screened out."""
        if not self.ready:
            return list(range(len(candidates)))
        kept = self.rank(candidates)[:max(keep, 0)]
        self.screened_out += len(candidates) - len(kept)
        return kept

    def record(self, passed: bool) -> None:
        """Whether a proposal the surrogate chose over others passed its real evaluation (call
        it only after a ``screen`` that had a choice to make)."""
        self.let_through += 1
        self.hits += int(passed)

    def stats(self) -> dict[str, Any]:
        """Observations, screened-out and let-through counts, hits and the hit rate."""
        return {"observations": len(self.observations), "screened_out": self.screened_out,
                "let_through": self.let_through, "hits": self.hits,
                "hit_rate": self.hits / self.let_through if self.let_through else None}

    # -- state --------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """JSON data: the observations and the screening counts."""
        return {"observations": [[dict(v), s] for v, s in self.observations],
                "screened_out": self.screened_out, "let_through": self.let_through,
                "hits": self.hits}

    def load_state_dict(self, data: Mapping[str, Any]) -> None:
        """Restore what ``state_dict`` wrote."""
        observations = []
        for item in data.get("observations", []):
            if (not isinstance(item, (list, tuple)) or len(item) != 2 or not isinstance(item[0], dict)
                    or isinstance(item[1], bool) or not isinstance(item[1], (int, float))):
                raise ValueError(f"surrogate: an observation must be [values dict, score], got {item!r}")
            observations.append((dict(item[0]), float(item[1])))
        self.observations = observations
        self.screened_out = int(data.get("screened_out", 0))
        self.let_through = int(data.get("let_through", 0))
        self.hits = int(data.get("hits", 0))
        self._fit = None


def make_surrogate(option: bool | Surrogate | Mapping[str, Any] | None, optimizer: str) -> Surrogate | None:
    """An optimizer's ``surrogate=`` option as a ``Surrogate``: ``True`` for the defaults, a
    dict of its options, an instance as is; ``False``/``None`` for none."""
    if option is None or option is False:
        return None
    if option is True:
        return Surrogate()
    if isinstance(option, Surrogate):
        return option
    if isinstance(option, Mapping):
        return Surrogate(**option)
    raise ValueError(f"optimizer {optimizer!r}: surrogate expects True, False, a dict of options or "
                     f"a Surrogate, got {option!r}")


__all__ = ["Surrogate", "dot", "features", "make_surrogate"]
