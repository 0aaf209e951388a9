"""The client: one request peeled in order (key, cache lookup, budget, backend with retries, record)."""

from __future__ import annotations

import asyncio
import contextvars
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Iterable, Sequence, TypeVar

from pydantic import BaseModel

from graphopt.llm import structured
from graphopt.llm.cache import ReplyCache
from graphopt.llm.config import LLMSettings
from graphopt.llm.keys import cache_key
from graphopt.llm.ledger import Hold, Ledger, active_budgets, reserve_all, token_room
from graphopt.llm.protocol import Backend, Message
from graphopt.llm.redact import backend_secrets, mask_known
from graphopt.llm.reply import Reply
from graphopt.llm.retry import acall_with_retries, call_with_retries
from graphopt.llm.spans import traced_acomplete, traced_complete

M = TypeVar("M", bound=BaseModel)

Messages = str | Sequence[Message]


def normalize_messages(messages: Messages) -> list[Message]:
    """A prompt string becomes one user message; a list of messages is checked and copied."""
    if isinstance(messages, str):
        return [{"role": "user", "content": messages}]
    normalized: list[Message] = []
    for position, message in enumerate(messages):
        if not isinstance(message, dict) or "role" not in message or "content" not in message:
            raise TypeError(f"message {position} expects a dict with 'role' and 'content', "
                            f"got {message!r}")
        normalized.append(dict(message))
    if not normalized:
        raise ValueError("messages expects at least one message, got none")
    return normalized


class Client:
    """Calls one model through its backend, with caching, retries, budgets and a usage ledger."""

    __slots__ = ("model", "provider", "api_base", "settings", "backend", "cache", "ledger", "tag")

    def __init__(self, model: str, backend: Backend, *, settings: LLMSettings,
                 cache: ReplyCache | None, ledger: Ledger, api_base: str | None = None,
                 tag: str | None = None) -> None:
        self.model = model
        self.provider = model.split("/", 1)[0] if "/" in model else ""
        self.api_base = api_base
        self.settings = settings
        self.backend = backend
        self.cache = cache
        self.ledger = ledger
        self.tag = tag

    def __repr__(self) -> str:
        return f"Client({self.model!r}, backend={type(self.backend).__name__})"

    def with_tag(self, tag: str | None) -> Client:
        """The same client recording its calls under ``tag`` (e.g. an optimizer's name)."""
        return Client(self.model, self.backend, settings=self.settings, cache=self.cache,
                      ledger=self.ledger, api_base=self.api_base, tag=tag)

    # -- one request, peeled ------------------------------------------------------------------
    def _params(self, params: dict[str, Any]) -> dict[str, Any]:
        if params.get("temperature") is None:
            params["temperature"] = self.settings.temperature
        return params

    def _key(self, messages: list[Message], params: dict[str, Any], rollout_id: str | int | None,
             use_cache: bool | None) -> str | None:
        """The cache key, or ``None`` when this request must not be served from the cache."""
        if self.cache is None or use_cache is False:
            return None
        sampled = float(params.get("temperature") or 0.0) > 0.0
        if sampled and rollout_id is None and not (use_cache or self.settings.cache_sampled):
            return None
        keyed = dict(params)
        if self.api_base and "api_base" not in keyed:
            keyed["api_base"] = self.api_base
        return cache_key(provider=self.provider, model=self.model, messages=messages, params=keyed,
                         rollout_id=rollout_id)

    def _prepare(self, messages: Messages, params: dict[str, Any], tag: str | None,
                 rollout_id: str | int | None, use_cache: bool | None
                 ) -> tuple[list[Message], dict[str, Any], str | None, str | None, Reply | None]:
        """The normalized request, its ledger tag and cache key, and the cached reply if any."""
        normalized = normalize_messages(messages)
        params = self._params(params)
        tag = tag or self.tag
        key = self._key(normalized, params, rollout_id, use_cache)
        return normalized, params, tag, key, self._lookup(key, tag)

    def _lookup(self, key: str | None, tag: str | None) -> Reply | None:
        if self.cache is None:
            return None
        if key is None:
            self.cache.bypass()
            return None
        reply = self.cache.get(key)
        if reply is not None:
            self.ledger.record(reply, tag)
        return reply

    def _prompt_bound(self, messages: list[Message]) -> int:
        """The most tokens ``messages`` can take: the backend's count, else their UTF-8 bytes
        (a byte-level tokenizer spends at least one byte a token) plus room for the template."""
        count = getattr(self.backend, "count_tokens", None)
        if callable(count):
            return int(count(messages))
        return sum(len(str(m.get("content", "")).encode("utf-8")) + 8 for m in messages) + 16

    def _reserve(self, messages: list[Message], params: dict[str, Any], key: str | None
                 ) -> tuple[Hold, dict[str, Any], str | None]:
        """Reserve the call's most tokens and cost in every active budget before sending.

        A request without ``max_tokens`` under a token limit is capped to the room left (and,
        being cut by the budget rather than by its own settings, not cached).
        """
        budgets = active_budgets()
        if not any(b.max_tokens is not None or b.max_usd is not None for b in budgets):
            return reserve_all(self.model), params, key  # calls only: nothing to count
        prompt = self._prompt_bound(messages)
        cap = params.get("max_tokens") or params.get("max_completion_tokens")
        if cap is None:
            room = token_room()
            if room is not None and room > prompt:
                cap = room - prompt
                params = {**params, "max_tokens": cap}
                key = None
        tokens = prompt + max(int(cap or 0), 1)
        estimate = getattr(self.backend, "estimate_cost", None)
        usd = float(estimate(prompt, int(cap or 0)) or 0.0) if callable(estimate) else 0.0
        return reserve_all(self.model, tokens=tokens, usd=usd), params, key

    def _finish(self, key: str | None, reply: Reply, started: float, hold: Hold,
                tag: str | None) -> Reply:
        reply = reply.model_copy(update={"latency": time.perf_counter() - started, "cached": False})
        hold.settle(reply)
        if key is not None and self.cache is not None:
            # A key the model echoed must not reach the disk.
            text = mask_known(reply.text, backend_secrets(self.backend))
            self.cache.set(key, reply if text == reply.text else reply.model_copy(update={"text": text}))
        self.ledger.record(reply, tag)
        return reply

    @traced_complete
    def complete(self, messages: Messages, *, tag: str | None = None,
                 rollout_id: str | int | None = None, cache: bool | None = None,
                 **params: Any) -> Reply:
        """One reply to ``messages``; ``params`` are sampling params passed to the backend.

        ``cache=False`` skips the cache; ``cache=True`` also serves sampled (temperature > 0)
        requests from it. A ``rollout_id`` names one of several samples, making each cacheable.
        """
        messages, params, tag, key, hit = self._prepare(messages, params, tag, rollout_id, cache)
        if hit is not None:
            return hit
        hold, params, key = self._reserve(messages, params, key)
        started = time.perf_counter()
        try:
            reply = call_with_retries(lambda: self.backend.complete(messages, **params),
                                      model=self.model, retries=self.settings.retries,
                                      backoff=self.settings.backoff,
                                      secrets=backend_secrets(self.backend))
        except BaseException:
            hold.release()
            raise
        return self._finish(key, reply, started, hold, tag)

    @traced_acomplete
    async def acomplete(self, messages: Messages, *, tag: str | None = None,
                        rollout_id: str | int | None = None, cache: bool | None = None,
                        **params: Any) -> Reply:
        """The async twin of ``complete``."""
        messages, params, tag, key, hit = self._prepare(messages, params, tag, rollout_id, cache)
        if hit is not None:
            return hit
        hold, params, key = self._reserve(messages, params, key)
        started = time.perf_counter()
        try:
            reply = await acall_with_retries(lambda: self.backend.acomplete(messages, **params),
                                             model=self.model, retries=self.settings.retries,
                                             backoff=self.settings.backoff,
                                             secrets=backend_secrets(self.backend))
        except BaseException:
            hold.release()
            raise
        return self._finish(key, reply, started, hold, tag)

    # -- many requests ------------------------------------------------------------------------
    def batch(self, requests: Iterable[Messages], *, concurrency: int | None = None,
              **params: Any) -> list[Reply]:
        """Replies to many requests, in order, at most ``concurrency`` in flight (threads).

        Each thread runs in a copy of the caller's context, so active budgets apply.
        """
        requests = list(requests)
        workers = min(concurrency or self.settings.concurrency, max(1, len(requests)))
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="graphopt-llm") as pool:
            futures = [pool.submit(contextvars.copy_context().run, self.complete, request, **params)
                       for request in requests]
            return [future.result() for future in futures]

    async def abatch(self, requests: Iterable[Messages], *, concurrency: int | None = None,
                     **params: Any) -> list[Reply]:
        """The async twin of ``batch``: ``asyncio.gather`` bounded by a semaphore."""
        bound = asyncio.Semaphore(concurrency or self.settings.concurrency)

        async def one(request: Messages) -> Reply:
            async with bound:
                return await self.acomplete(request, **params)

        return list(await asyncio.gather(*(one(request) for request in requests)))

    # -- structured replies -------------------------------------------------------------------
    def complete_json(self, messages: Messages, *, schema: type[M], **params: Any) -> M:
        """A reply parsed and validated as ``schema``; see ``graphopt.llm.structured``."""
        return structured.complete_json(self, normalize_messages(messages), schema, **params)

    async def acomplete_json(self, messages: Messages, *, schema: type[M], **params: Any) -> M:
        """The async twin of ``complete_json``."""
        return await structured.acomplete_json(self, normalize_messages(messages), schema, **params)

