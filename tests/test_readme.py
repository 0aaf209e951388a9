"""The README's quickstart must run as written."""

import re
from pathlib import Path

import torch

README = Path(__file__).resolve().parents[1] / "README.md"


def test_quickstart_runs_and_does_what_it_says(capsys):
    source = re.search(r"## Quickstart\n\n```python\n(.*?)```", README.read_text(), re.S).group(1)
    assert len(source.splitlines()) <= 22
    namespace: dict = {}
    exec(compile(source, str(README), "exec"), namespace)
    assert namespace["prompt"].feedback[0].feedback.text == "mention the source"
    assert torch.allclose(namespace["head"].value.detach(), torch.tensor([1.0, 2.0]), atol=0.05)
    assert "['mention the source']" in capsys.readouterr().out
