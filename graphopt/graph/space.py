"""Hyperparameter spaces: ``Int``, ``Float`` and ``Choice``.

A space validates a value, samples one, and maps values to and from the unit interval so
zeroth-order optimizers can step in one shared coordinate system.
"""

from __future__ import annotations

import math
import random
from typing import Any, Sequence


class Space:
    """Base of the hyperparameter spaces; a space is immutable and JSON-serializable."""

    kind: str = ""

    def validate(self, value: Any) -> Any:
        """Return ``value`` normalized to this space, or raise ``ValueError`` saying why not."""
        raise NotImplementedError

    def sample(self, rng: random.Random) -> Any:
        """A value drawn from the space with ``rng``."""
        raise NotImplementedError

    def to_json(self) -> dict[str, Any]:
        raise NotImplementedError

    @staticmethod
    def from_json(data: dict[str, Any]) -> Space:
        """Rebuild a space written by ``to_json``."""
        kinds: dict[str, type[Space]] = {"int": Int, "float": Float, "choice": Choice}
        try:
            cls = kinds[data["type"]]
        except KeyError as err:
            raise ValueError(f"unknown space {data!r}; expected type int, float or choice") from err
        args = {k: v for k, v in data.items() if k != "type"}
        return cls(**args)

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and self.to_json() == other.to_json()  # type: ignore[attr-defined]

    def __hash__(self) -> int:
        return hash(repr(self))


class _Range(Space):
    """A numeric interval ``[low, high]``, optionally on a log scale."""

    def __init__(self, low: float, high: float, *, log: bool = False) -> None:
        if not low < high:
            raise ValueError(f"{type(self).__name__} needs low < high, got low={low!r}, high={high!r}")
        if log and low <= 0:
            raise ValueError(f"{type(self).__name__} with log=True needs low > 0, got {low!r}")
        self.low = low
        self.high = high
        self.log = log

    def to_unit(self, value: float) -> float:
        """Map a value of the space to ``[0, 1]``."""
        if self.log:
            return (math.log(value) - math.log(self.low)) / (math.log(self.high) - math.log(self.low))
        return (value - self.low) / (self.high - self.low)

    def from_unit(self, unit: float) -> Any:
        """Map ``unit`` (clipped to ``[0, 1]``) back to a valid value of the space."""
        unit = min(1.0, max(0.0, unit))
        if self.log:
            raw = math.exp(math.log(self.low) + unit * (math.log(self.high) - math.log(self.low)))
        else:
            raw = self.low + unit * (self.high - self.low)
        return self._snap(raw)

    def _snap(self, raw: float) -> Any:
        return min(self.high, max(self.low, raw))

    def sample(self, rng: random.Random) -> Any:
        return self.from_unit(rng.random())

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {"type": self.kind, "low": self.low, "high": self.high}
        if self.log:
            data["log"] = True
        return data

    def __repr__(self) -> str:
        log = ", log=True" if self.log else ""
        return f"{type(self).__name__}({self.low!r}, {self.high!r}{log})"


class Int(_Range):
    """Integers in ``[low, high]`` (both included)."""

    kind = "int"

    def __init__(self, low: int, high: int, *, log: bool = False) -> None:
        if not (isinstance(low, int) and isinstance(high, int)):
            raise ValueError(f"Int bounds must be integers, got low={low!r}, high={high!r}")
        super().__init__(low, high, log=log)

    def validate(self, value: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ValueError(f"expects {self!r}, got {value!r} ({type(value).__name__})")
        if isinstance(value, float):
            if not value.is_integer():
                raise ValueError(f"expects {self!r}, got non-integer {value!r}")
            value = int(value)
        if not self.low <= value <= self.high:
            raise ValueError(f"expects {self!r}, got {value!r}")
        return int(value)

    def _snap(self, raw: float) -> int:
        return int(min(self.high, max(self.low, round(raw))))

    def sample(self, rng: random.Random) -> int:
        if self.log:
            return self.from_unit(rng.random())
        return rng.randint(int(self.low), int(self.high))


class Float(_Range):
    """Real numbers in ``[low, high]``; ``log=True`` samples and steps on a log scale."""

    kind = "float"

    def validate(self, value: Any) -> float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ValueError(f"expects {self!r}, got {value!r} ({type(value).__name__})")
        value = float(value)
        if math.isnan(value) or not self.low <= value <= self.high:
            raise ValueError(f"expects {self!r}, got {value!r}")
        return value


class Choice(Space):
    """One of a fixed, ordered list of JSON-serializable options."""

    kind = "choice"

    def __init__(self, options: Sequence[Any]) -> None:
        if isinstance(options, (str, bytes)) or not isinstance(options, Sequence):
            raise ValueError(f"Choice needs a list of options, got {options!r}")
        if not options:
            raise ValueError("Choice needs at least one option")
        self.options = list(options)

    def validate(self, value: Any) -> Any:
        for option in self.options:
            if type(option) is type(value) and option == value:
                return option
        raise ValueError(f"expects one of {self.options!r}, got {value!r}")

    def index(self, value: Any) -> int:
        """Position of ``value`` among the options."""
        return self.options.index(self.validate(value))

    def sample(self, rng: random.Random) -> Any:
        return rng.choice(self.options)

    def to_json(self) -> dict[str, Any]:
        return {"type": "choice", "options": list(self.options)}

    def __repr__(self) -> str:
        return f"Choice({self.options!r})"
