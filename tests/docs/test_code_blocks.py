"""Every python block in docs/ runs as written, page by page, in one namespace per page (as a
reader runs them in order), in a temporary folder. A block the page marks
``<!-- not run: reason -->`` is skipped, with the reason shown; pages that reach the embedded
model or start Ray are marked slow; docs/first-agent.md has its own step-by-step test."""

from __future__ import annotations

import pytest

from .blocks import DOCS, python_blocks, run_block
from .conftest import embedded_model_env

OWN_TEST = {"first-agent.md": "tests/docs/test_first_agent.py"}
EMBEDDED = {"first-agent-async.md", "gradients.md", "llm.md"}
STARTS_RAY = {"ray.md"}

PAGES = sorted(p.relative_to(DOCS).as_posix() for p in DOCS.rglob("*.md")
               if python_blocks(p) and p.relative_to(DOCS).as_posix() not in OWN_TEST)


def page_param(page: str):
    return pytest.param(page, id=page, marks=[pytest.mark.slow] if page in EMBEDDED | STARTS_RAY else [])


@pytest.mark.parametrize("page", [page_param(p) for p in PAGES])
def test_python_blocks_of_the_page_run(page, tmp_path, monkeypatch):
    embedded_model_env(tmp_path, monkeypatch)
    namespace: dict = {"__name__": f"docs_{page.replace('/', '_').removesuffix('.md')}"}
    ran = 0
    for block in python_blocks(DOCS / page):
        if block.skipped is not None:
            continue
        try:
            run_block(block, namespace)
        except Exception as err:
            raise AssertionError(f"{block.where}: the block raised {type(err).__name__}: {err}") from err
        ran += 1
    if not ran:
        pytest.skip(f"{page}: every block is marked not run")


def test_every_skipped_block_says_why():
    skipped = [b for p in DOCS.rglob("*.md") for b in python_blocks(p) if b.skipped is not None]
    assert all(len(b.skipped.split()) >= 3 for b in skipped), \
        [b.where for b in skipped if len(b.skipped.split()) < 3]


def test_the_user_path_pages_run_every_block():
    for page in ("first-agent.md", "first-agent-async.md", "testing.md", "tutorial.md"):
        blocks = python_blocks(DOCS / page)
        assert blocks and all(b.skipped is None for b in blocks), page
