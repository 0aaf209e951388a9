"""Prefix caching for the local model: the keys and values of a prompt's shared start, computed once.

Causal attention makes the keys and values of a prompt's first ``L`` tokens depend on those tokens
only, so they serve any later prompt that starts the same way: the system prompt and few-shot
examples of a batch of evaluations, or an optimizer's long instructions from one call to the next.
``PrefixStore`` keeps the per-layer tensors of a few recent prefixes (bounded in tokens) and hands
back the longest stored start of a new prefix; the engine computes only the rest, once per batch,
and every row of the batch shares it.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Any, Callable, Sequence

Layers = list[tuple[Any, Any]]  # (keys, values) per layer, batch of one, [1, heads, tokens, dim]

MIN_PREFIX = 16
"""Shorter shared starts are not worth a separate forward pass: the batch computes them itself."""


def common_prefix(rows: Sequence[Sequence[int]]) -> int:
    """Length of the token prefix every row shares, leaving each row at least one token of its own
    (``generate`` must run the model on one new token per row at least)."""
    first = rows[0]
    return max(0, min([min(len(r) for r in rows) - 1, *(_shared(first, r) for r in rows[1:])]))


class PrefixStore:
    """The keys and values of recent prompt prefixes, least recently used dropped first.

    ``max_tokens`` bounds the tokens held in all (each token costs ``layers × 2 × heads × dim``
    numbers: about 23 KB for SmolLM2-135M in bf16). Thread-safe; tensors are never written in
    place (caches grow by concatenation), so an entry is shared without copying.
    """

    __slots__ = ("max_tokens", "_entries", "_lock", "hits", "misses", "reused_tokens")

    def __init__(self, max_tokens: int = 8192) -> None:
        self.max_tokens = max_tokens
        self._entries: OrderedDict[tuple[int, ...], Layers] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0
        self.reused_tokens = 0  # prompt tokens whose keys and values came from the store

    def __len__(self) -> int:
        return len(self._entries)

    def longest(self, tokens: Sequence[int]) -> tuple[int, Layers | None]:
        """The longest stored start of ``tokens``: its length and layers (cut to that length)."""
        best, layers = 0, None
        with self._lock:
            for key, stored in self._entries.items():
                shared = _shared(key, tokens)
                if shared > best:
                    best, layers, best_key = shared, stored, key
            if layers is not None:
                self._entries.move_to_end(best_key)
        if layers is None or best < MIN_PREFIX:
            return 0, None
        return best, [(k[:, :, :best], v[:, :, :best]) for k, v in layers]

    def get(self, tokens: Sequence[int], compute: Callable[[int, Layers | None], Layers]) -> Layers:
        """Layers for exactly ``tokens``: the longest stored start, extended by
        ``compute(start, layers)`` (which runs the model on ``tokens[start:]``), then stored."""
        start, layers = self.longest(tokens)
        if start:
            self.hits += 1
            self.reused_tokens += start
        else:
            self.misses += 1
        if layers is not None and start == len(tokens):
            return layers  # stored exactly: nothing to compute
        layers = compute(start, layers)
        self.put(tokens, layers)
        return layers

    def put(self, tokens: Sequence[int], layers: Layers) -> None:
        key = tuple(tokens)
        if len(key) > self.max_tokens:
            return
        with self._lock:
            self._entries[key] = layers
            self._entries.move_to_end(key)
            # A stored start of the new key is now redundant: the new entry holds it.
            for other in [k for k in self._entries if len(k) < len(key) and key[:len(k)] == k]:
                del self._entries[other]
            while sum(len(k) for k in self._entries) > self.max_tokens:
                self._entries.popitem(last=False)


def _shared(a: Sequence[int], b: Sequence[int]) -> int:
    limit = min(len(a), len(b))
    index = 0
    while index < limit and a[index] == b[index]:
        index += 1
    return index
