"""litellm, imported on demand and configured for graphopt: offline cost map, no cache, quiet.

Importing litellm takes seconds, so nothing imports it until a hosted call or the custom provider
needs it. Its cost map would otherwise be fetched over the network at import, and its own cache
is disabled because graphopt caches replies itself.
"""

from __future__ import annotations

import os
import threading
from types import ModuleType

_lock = threading.Lock()
_configured = False


def prepare_environment() -> None:
    """Environment litellm reads at import: use the cost map shipped with the package."""
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    os.environ.setdefault("LITELLM_TELEMETRY", "False")


def load_litellm() -> ModuleType:
    """The ``litellm`` module, configured once, with ``local/...`` registered as a provider."""
    global _configured
    with _lock:
        prepare_environment()
        import litellm

        if not _configured:
            litellm.disable_cache()
            litellm.cache = None
            litellm.telemetry = False  # gone from recent releases; harmless where absent
            litellm.suppress_debug_info = True
            # The provider module subclasses litellm's CustomLLM, so it loads only after litellm.
            from graphopt.llm.provider import register_provider

            register_provider(litellm)
            _configured = True
        return litellm
