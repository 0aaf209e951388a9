"""The python code blocks of the docs pages, in order, with where each starts."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

DOCS = Path(__file__).resolve().parents[2] / "docs"

# A block runs unless the line before its fence says why not: <!-- not run: needs your data -->
_FENCE = re.compile(r"(?:<!--\s*not run:\s*(?P<reason>.*?)\s*-->\n)?^```python\n(?P<source>.*?)^```",
                    re.S | re.M)


@dataclass(frozen=True)
class Block:
    page: Path
    line: int
    source: str
    skipped: str | None  # the reason given, when the page says the block is not run

    @property
    def where(self) -> str:
        return f"{self.page.relative_to(DOCS.parent)}:{self.line}"


def python_blocks(page: Path) -> list[Block]:
    text = page.read_text(encoding="utf-8")
    return [Block(page, text.count("\n", 0, m.start("source")) + 1, m["source"], m["reason"])
            for m in _FENCE.finditer(text)]


def run_block(block: Block, namespace: dict) -> None:
    """Execute ``block`` in ``namespace``; tracebacks name the page and its line."""
    code = compile("\n" * (block.line - 1) + block.source, str(block.page), "exec")
    exec(code, namespace)
