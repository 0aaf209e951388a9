"""Examples and datasets: lists, iterables or JSONL files, each example with a stable id.

An example is an ``input`` (what the workflow is called with: keyword arguments when it is a
dict, else one positional argument), an optional ``target`` and an ``id``. Rows may be
``Example``s, ``(input, target)`` pairs, or dicts with ``input``/``target`` (and ``id``) keys;
a dict without ``input`` is the input itself, less its ``id`` and its ``target_key``.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any, Iterable, Iterator

from graphopt.errors import DatasetError

Data = Iterable[Any] | str | os.PathLike[str]
"""What ``go.optimize`` and ``go.evaluate`` take as examples: an iterable, or a JSONL path."""


class Example:
    """One input with its target; ``key`` (its id and a hash of its content) keys the evaluation cache."""

    __slots__ = ("id", "input", "target", "_key")

    def __init__(self, input: Any, target: Any = None, *, id: str | None = None) -> None:
        self.input = input
        self.target = target
        self.id = id if id is not None else content_id(input, target)
        self._key: str | None = None

    @property
    def key(self) -> str:
        """``id:content-hash``: the same id with other targets or inputs is another example."""
        if self._key is None:
            self._key = f"{self.id}:{content_id(self.input, self.target)}"
        return self._key

    def __repr__(self) -> str:
        return f"Example(id={self.id!r}, input={self.input!r}, target={self.target!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Example) and (self.id, self.input, self.target) == \
            (other.id, other.input, other.target)

    __hash__ = None  # type: ignore[assignment]

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "input": self.input, "target": self.target}


def content_id(input: Any, target: Any) -> str:
    """A short hash of the example's canonical JSON (``repr`` for non-JSON values)."""
    text = json.dumps({"input": input, "target": target}, sort_keys=True, default=repr)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def to_example(row: Any, *, target_key: str = "target", where: str = "row") -> Example:
    """One row as an ``Example``; see the module docstring for the accepted shapes."""
    if isinstance(row, Example):
        return row
    if isinstance(row, tuple) and len(row) == 2:
        return Example(row[0], row[1])
    if isinstance(row, dict):
        row_id = row.get("id")
        if row_id is not None and not isinstance(row_id, (str, int)):
            raise DatasetError(f"{where}: 'id' expects a str or int, got {type(row_id).__name__}")
        if "input" in row:
            return Example(row["input"], row.get(target_key), id=None if row_id is None else str(row_id))
        fields = {k: v for k, v in row.items() if k not in ("id", target_key)}
        return Example(fields, row.get(target_key), id=None if row_id is None else str(row_id))
    raise DatasetError(f"{where}: expects an Example, an (input, target) pair or a dict, "
                       f"got {type(row).__name__} {row!r:.80}")


def read_jsonl(path: str | os.PathLike[str]) -> Iterator[Any]:
    """The rows of a JSONL file (blank lines skipped), each parsed as JSON."""
    with open(path, encoding="utf-8") as handle:
        for number, line in enumerate(handle, 1):
            if line.strip():
                try:
                    yield json.loads(line)
                except json.JSONDecodeError as err:
                    raise DatasetError(f"{os.fspath(path)}:{number}: not JSON: {err.msg}") from err


def load_examples(data: Data, *,
                  target_key: str = "target") -> list[Example]:
    """Examples from a list, an iterable or a JSONL path; duplicate ids are refused."""
    if isinstance(data, (str, os.PathLike)):
        path = Path(data)
        if not path.is_file():
            raise DatasetError(f"dataset {os.fspath(path)!r}: expects a JSONL file, found none")
        rows: Iterable[Any] = read_jsonl(path)
        label = os.fspath(path)
    else:
        rows, label = data, "dataset"
    examples = [to_example(row, target_key=target_key, where=f"{label} row {i}")
                for i, row in enumerate(rows)]
    seen: dict[str, int] = {}
    for index, example in enumerate(examples):
        if example.id in seen:
            raise DatasetError(f"{label}: rows {seen[example.id]} and {index} share id {example.id!r}; "
                               f"ids key the evaluation cache and must be unique")
        seen[example.id] = index
    return examples
