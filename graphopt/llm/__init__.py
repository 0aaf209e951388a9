"""The LLM layer: one client protocol over litellm and the embedded local model.

``go.llm.get(model)`` returns a ``Client`` whose ``complete``/``acomplete`` return a ``Reply``;
requests are cached on disk, retried, checked against ``budget`` blocks and recorded in the usage
ledger. Importing this package loads no model, opens no cache and does not import litellm.
"""

from graphopt.llm.cache import ReplyCache, clear_cache
from graphopt.llm.chat import achat, chat
from graphopt.llm.client import Client
from graphopt.llm.config import DEFAULT_MODEL, LLMSettings, load_settings
from graphopt.llm.ledger import Budget, Ledger, UsageRecord, budget
from graphopt.llm.protocol import Backend, BackendFactory
from graphopt.llm.registry import get, usage_ledger
from graphopt.llm.reply import Reply, Usage
from graphopt.llm.retry import TransientError
from graphopt.llm.stats import Stats, stats
from graphopt.llm.structured import extract_json

__all__ = [
    "Backend", "BackendFactory", "Budget", "Client", "DEFAULT_MODEL", "LLMSettings", "Ledger",
    "Reply", "ReplyCache", "Stats", "TransientError", "Usage", "UsageRecord", "achat", "budget",
    "chat", "clear_cache", "extract_json", "get", "load_settings", "stats", "usage_ledger",
]
