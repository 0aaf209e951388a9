"""``go.llm.get(model)``: a model string resolved to a backend plugin, wrapped in a client."""

from __future__ import annotations

from typing import Any

from graphopt.llm.cache import shared_cache
from graphopt.llm.client import Client
from graphopt.llm.config import load_settings
from graphopt.llm.ledger import Ledger
from graphopt.plugins.manager import PluginManager, get_plugin_manager, not_found

# Provider that serves every model string no plugin claims by its prefix.
FALLBACK_PROVIDER = "litellm"

_ledger = Ledger()


def usage_ledger() -> Ledger:
    """The process's usage ledger, which every client from ``get`` records into."""
    return _ledger


def get(model: str | None = None, *, api_key: str | None = None, api_base: str | None = None,
        options: dict[str, Any] | None = None, tag: str | None = None,
        plugin_manager: PluginManager | None = None, **settings: Any) -> Client:
    """A client for ``model`` (default: ``$GRAPHOPT_MODEL``, else ``local/smollm2``).

    The provider is the model string's prefix (``local`` in ``local/smollm2``); a prefix no plugin
    provides goes to litellm. ``api_key``, ``api_base`` and ``options`` go to the backend;
    ``settings`` are fields of ``LLMSettings`` (see ``graphopt.llm.config``).
    """
    resolved = load_settings(model=model, **settings)
    manager = plugin_manager or get_plugin_manager()
    factories = manager.tables()["llm_backends"]
    provider = resolved.model.split("/", 1)[0] if "/" in resolved.model else ""
    entry = factories.get(provider) or factories.get(FALLBACK_PROVIDER)
    if entry is None:
        raise not_found("llm_backends", provider or resolved.model, factories)
    backend_options = dict(options or {})
    if api_key is not None:
        backend_options["api_key"] = api_key
    if api_base is not None:
        backend_options["api_base"] = api_base
    backend = entry.obj.create(resolved.model, settings=resolved, **backend_options)
    cache = shared_cache(resolved.llm_cache_dir) if resolved.cache else None
    return Client(resolved.model, backend, settings=resolved, cache=cache, ledger=_ledger,
                  api_base=api_base, tag=tag)
