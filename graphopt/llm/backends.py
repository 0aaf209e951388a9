"""Built-in LLM backends, registered through the same hook a third-party plugin uses."""

from __future__ import annotations

from typing import Any

from graphopt.llm.hosted import LiteLLMFactory
from graphopt.llm.local.backend import LocalFactory
from graphopt.plugins.manager import hookimpl


@hookimpl
def graphopt_llm_backends() -> list[Any]:
    """``local`` (the embedded model) and ``litellm`` (every other model string)."""
    return [LocalFactory(), LiteLLMFactory()]
