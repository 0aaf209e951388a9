"""Generation with transformers, batching concurrent requests on one worker thread.

Requests queue up; the worker waits ``batch_wait_ms`` for company (and again after each arrival,
up to ``WAIT_SLIDES`` waits in all), groups requests whose
generation settings agree, and runs each group as one left-padded ``generate`` call (a batch of 8
gives several times the throughput of 8 sequential calls on a CPU). A streamed request runs alone.

The tokens a batch's prompts share at the start (system prompt, few-shot examples) run once, not
once per row, and their keys and values are kept for later batches and calls that start the same
way (``graphopt.llm.local.prefix``): each row is laid out as the shared prefix, padding, then its
own tokens, and ``generate`` continues from the shared cache.
"""

from __future__ import annotations

import inspect
import json
import queue
import threading
import time
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any, Iterator

import torch

from graphopt.llm.local.constrained import allowed_tokens_fn, json_schema_of
from graphopt.llm.local.prefix import MIN_PREFIX, Layers, PrefixStore, common_prefix

DEFAULT_MAX_TOKENS = 256
WAIT_SLIDES = 4
# OpenAI parameters that have no meaning for a local model and are accepted silently.
_IGNORED = frozenset({"frequency_penalty", "presence_penalty", "logit_bias", "user", "n",
                      "stream", "stream_options", "timeout", "tools", "tool_choice", "metadata"})
_KNOWN = frozenset({"max_tokens", "max_completion_tokens", "temperature", "top_p", "seed", "stop",
                    "response_format"})


@dataclass(frozen=True, slots=True)
class Generated:
    """One generated reply with its token counts."""

    text: str
    prompt_tokens: int
    completion_tokens: int
    finish_reason: str


@dataclass(frozen=True, slots=True)
class Settings:
    """Generation settings shared by a batch; requests batch together only when these agree."""

    max_tokens: int
    temperature: float
    top_p: float
    seed: int | None
    schema: str | None  # canonical JSON schema text when the reply must be JSON
    stop: tuple[str, ...]

    @classmethod
    def of(cls, params: dict[str, Any]) -> Settings:
        unknown = sorted(set(params) - _KNOWN - _IGNORED)
        if unknown:
            raise ValueError(f"local model: unsupported parameter(s) {', '.join(unknown)}; "
                             f"expected any of {', '.join(sorted(_KNOWN))}")
        if (params.get("n") or 1) != 1:
            raise ValueError(f"local model: n expects 1, got {params['n']!r}")
        max_tokens = params.get("max_tokens") or params.get("max_completion_tokens") or DEFAULT_MAX_TOKENS
        stop = params.get("stop") or ()
        wants_json, schema = json_schema_of(params.get("response_format"))
        return cls(
            max_tokens=int(max_tokens),
            temperature=float(params.get("temperature") or 0.0),
            top_p=float(params.get("top_p") or 1.0),
            seed=params.get("seed"),
            schema=json.dumps(schema, sort_keys=True) if wants_json else None,
            stop=(stop,) if isinstance(stop, str) else tuple(stop),
        )


class _Request:
    __slots__ = ("messages", "settings", "future", "streamer")

    def __init__(self, messages: list[dict[str, Any]], settings: Settings, streamer: Any = None) -> None:
        self.messages = messages
        self.settings = settings
        self.future: Future[Generated] = Future()
        self.streamer = streamer


def _cut_at_stop(text: str, stop: tuple[str, ...]) -> tuple[str, bool]:
    positions = [text.find(s) for s in stop if s and s in text]
    if not positions:
        return text, False
    return text[:min(positions)], True


class Engine:
    """A loaded model and tokenizer with a worker thread that batches generation requests."""

    __slots__ = ("model", "tokenizer", "device", "max_batch", "batch_wait", "_queue", "_worker",
                 "_lock", "_tokenizing", "generate_calls", "prefixes", "_cache_keyword")

    def __init__(self, model: Any, tokenizer: Any, *, device: str = "cpu", max_batch: int = 8,
                 batch_wait_ms: float = 20.0, prefix_cache_tokens: int = 8192) -> None:
        self.model = model.to(device)
        self.tokenizer = tokenizer
        self.tokenizer.padding_side = "left"
        if self.tokenizer.pad_token_id is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        self.device = device
        self.max_batch = max_batch
        self.batch_wait = batch_wait_ms / 1000.0
        self._queue: queue.SimpleQueue[_Request] = queue.SimpleQueue()
        self._worker: threading.Thread | None = None
        self._lock = threading.Lock()
        # A fast tokenizer's padding settings are state of the tokenizer: a count from a client
        # thread while the worker pads a batch would race with it ("Unable to create tensor").
        self._tokenizing = threading.Lock()
        self.generate_calls = 0  # how many times the model ran; a warm cache leaves it unchanged
        # Keys and values of recent shared prompt starts; 0 tokens turns prefix caching off.
        self.prefixes = PrefixStore(prefix_cache_tokens) if prefix_cache_tokens > 0 else None
        # transformers 5 renames ``past_key_values`` to ``cache`` (the old name warns, then goes).
        forward = inspect.signature(type(self.model).forward).parameters
        self._cache_keyword = "cache" if "cache" in forward else "past_key_values"

    def __repr__(self) -> str:
        return f"Engine({type(self.model).__name__}, device={self.device!r}, max_batch={self.max_batch})"

    # -- public -----------------------------------------------------------------------------
    def submit(self, messages: list[dict[str, Any]], **params: Any) -> Future[Generated]:
        """Queue one request; the future resolves when its batch has run."""
        request = _Request(messages, Settings.of(params))
        self._enqueue(request)
        return request.future

    def generate(self, messages: list[dict[str, Any]], **params: Any) -> Generated:
        """One reply, waiting for it (batched with whatever else is queued)."""
        return self.submit(messages, **params).result()

    def count_tokens(self, messages: list[dict[str, Any]]) -> int:
        """Tokens of ``messages`` after the chat template, as ``generate`` will see them."""
        prompt = self.tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
        with self._tokenizing:
            return len(self.tokenizer(prompt, add_special_tokens=False)["input_ids"])

    def stream(self, messages: list[dict[str, Any]], **params: Any) -> Iterator[str]:
        """Text pieces of one reply as they are generated."""
        from transformers import TextIteratorStreamer

        settings = Settings.of(params)
        streamer = TextIteratorStreamer(self.tokenizer, skip_prompt=True, skip_special_tokens=True,
                                        timeout=600.0)
        request = _Request(messages, settings, streamer)
        self._enqueue(request)
        emitted = ""
        for piece in streamer:
            text, stopped = _cut_at_stop(emitted + piece, settings.stop)
            if len(text) > len(emitted):
                yield text[len(emitted):]
                emitted = text
            if stopped:
                break
        request.future.result()  # surface a failure of the generation itself

    # -- worker ------------------------------------------------------------------------------
    def _enqueue(self, request: _Request) -> None:
        with self._lock:
            if self._worker is None or not self._worker.is_alive():
                self._worker = threading.Thread(target=self._serve, name="graphopt-local-llm",
                                                daemon=True)
                self._worker.start()
        self._queue.put(request)

    def _serve(self) -> None:
        while True:
            pending = [self._queue.get()]
            # The wait for company slides with each arrival (a batch's requests come from threads
            # that each trace a little before calling), up to ``WAIT_SLIDES`` waits in all.
            now = time.monotonic()
            deadline, last = now + self.batch_wait, now + WAIT_SLIDES * self.batch_wait
            while len(pending) < self.max_batch and pending[0].streamer is None:
                try:
                    pending.append(self._queue.get(timeout=max(0.0, deadline - time.monotonic())))
                except queue.Empty:
                    break
                deadline = min(time.monotonic() + self.batch_wait, last)
            for group in _groups(pending, self.max_batch):
                self._run(group)

    def _run(self, group: list[_Request]) -> None:
        for request in group:
            request.future.set_running_or_notify_cancel()
        try:
            results = self._generate(group)
        except BaseException as err:  # the callers waiting on this batch must hear of it
            for request in group:
                request.future.set_exception(err)
            if group[0].streamer is not None:
                group[0].streamer.end()
            return
        for request, result in zip(group, results):
            request.future.set_result(result)

    def _generate(self, group: list[_Request]) -> list[Generated]:
        settings = group[0].settings
        prompts = [self.tokenizer.apply_chat_template(r.messages, add_generation_prompt=True,
                                                      tokenize=False) for r in group]
        with self._tokenizing:
            rows = [self.tokenizer(p, add_special_tokens=False)["input_ids"] for p in prompts]
        inputs, past = self._layout(rows)
        options: dict[str, Any] = {
            "max_new_tokens": settings.max_tokens,
            "pad_token_id": self.tokenizer.pad_token_id,
            "eos_token_id": self.tokenizer.eos_token_id,
        }
        if settings.temperature > 0.0:
            options.update(do_sample=True, temperature=settings.temperature, top_p=settings.top_p)
            if settings.seed is not None:
                torch.manual_seed(int(settings.seed))
        else:
            options.update(do_sample=False, temperature=None, top_p=None, top_k=None)
        if settings.schema is not None:
            options["prefix_allowed_tokens_fn"] = allowed_tokens_fn(
                self.tokenizer, json.loads(settings.schema), width=inputs["input_ids"].shape[1],
                max_new_tokens=settings.max_tokens)
        if group[0].streamer is not None:
            options["streamer"] = group[0].streamer
        if past is not None:
            options[self._cache_keyword] = past
        with torch.inference_mode():
            output = self.model.generate(**inputs, **options)
        self.generate_calls += 1
        return self._decode(group, inputs, output)

    def _layout(self, rows: list[list[int]]) -> tuple[dict[str, Any], Any]:
        """Input ids and attention mask for ``generate``, and the cache of the shared prefix (or
        ``None``): each row is the shared prefix, padding, then the row's own tokens."""
        shared = common_prefix(rows) if self.prefixes is not None else 0
        past = None
        if shared >= MIN_PREFIX:
            prefix = rows[0][:shared]
            layers = self.prefixes.get(prefix, lambda start, known: self._prefill(prefix, start, known))
            past = self._cache(layers, len(rows))
        else:
            shared = 0
        width = max(len(r) for r in rows) - shared
        pad = self.tokenizer.pad_token_id
        ids, mask = [], []
        for row in rows:
            gap = width - (len(row) - shared)
            ids.append(row[:shared] + [pad] * gap + row[shared:])
            mask.append([1] * shared + [0] * gap + [1] * (len(row) - shared))
        inputs = {"input_ids": torch.tensor(ids, device=self.device),
                  "attention_mask": torch.tensor(mask, device=self.device)}
        return inputs, past

    def _prefill(self, prefix: list[int], start: int, known: Layers | None) -> Layers:
        """Keys and values of ``prefix``, computing tokens ``start`` onwards (``known`` holds the
        ones before)."""
        cache = self._cache(known or [], 1)
        with torch.inference_mode():
            self.model(input_ids=torch.tensor([prefix[start:]], device=self.device),
                       use_cache=True, logits_to_keep=1, **{self._cache_keyword: cache})
        return [(layer.keys, layer.values) for layer in cache.layers]

    def _cache(self, layers: Layers, batch: int) -> Any:
        from transformers import DynamicCache

        cache = DynamicCache(ddp_cache_data=layers or None, config=self.model.config)
        if batch > 1:
            cache.batch_repeat_interleave(batch)
        return cache

    def _decode(self, group: list[_Request], inputs: Any, output: Any) -> list[Generated]:
        width = inputs["input_ids"].shape[1]
        prompt_lengths = inputs["attention_mask"].sum(dim=1).tolist()
        eos = self.tokenizer.eos_token_id
        results = []
        for row, request in enumerate(group):
            tokens = output[row, width:].tolist()
            finished = eos in tokens
            tokens = tokens[:tokens.index(eos)] if finished else tokens
            text = self.tokenizer.decode(tokens, skip_special_tokens=True)
            text, stopped = _cut_at_stop(text, request.settings.stop)
            results.append(Generated(text, int(prompt_lengths[row]), len(tokens),
                                     "stop" if finished or stopped else "length"))
        return results


def _groups(pending: list[_Request], size: int) -> list[list[_Request]]:
    """Requests grouped by identical settings, each group at most ``size`` long, in arrival order."""
    by_settings: dict[Settings, list[list[_Request]]] = {}
    for request in pending:
        chunks = by_settings.setdefault(request.settings, [[]])
        if len(chunks[-1]) >= size or request.streamer is not None or (
                chunks[-1] and chunks[-1][0].streamer is not None):
            chunks.append([])
        chunks[-1].append(request)
    return [chunk for chunks in by_settings.values() for chunk in chunks if chunk]
