"""Optional llama.cpp engine for the same GGUF file (``pip install 'graphopt[llamacpp]'``).

Several times faster than transformers on a CPU, never required. A ``Llama`` object is not
thread-safe, so requests run one at a time on a single worker thread.
"""

from __future__ import annotations

from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any, Iterator

from graphopt.llm.local.constrained import json_schema_of
from graphopt.llm.local.engine import Generated, Settings


class LlamaCppEngine:
    """Generates with ``llama_cpp.Llama``; same interface as ``Engine``."""

    __slots__ = ("llama", "_pool", "generate_calls")

    def __init__(self, gguf: Path, *, threads: int = 1, gpu: bool = False, context: int = 4096) -> None:
        import llama_cpp

        self.llama = llama_cpp.Llama(model_path=str(gguf), n_ctx=context, n_threads=threads,
                                     n_gpu_layers=-1 if gpu else 0, verbose=False)
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="graphopt-llamacpp")
        self.generate_calls = 0

    def __repr__(self) -> str:
        return "LlamaCppEngine()"

    @staticmethod
    def _options(params: dict[str, Any]) -> dict[str, Any]:
        settings = Settings.of(params)
        options: dict[str, Any] = {"max_tokens": settings.max_tokens,
                                   "temperature": settings.temperature, "top_p": settings.top_p,
                                   "stop": list(settings.stop) or None}
        if settings.seed is not None:
            options["seed"] = int(settings.seed)
        wants_json, schema = json_schema_of(params.get("response_format"))
        if wants_json:
            options["response_format"] = {"type": "json_object", "schema": schema}
        return options

    def _complete(self, messages: list[dict[str, Any]], options: dict[str, Any]) -> Generated:
        result = self.llama.create_chat_completion(messages=messages, **options)
        self.generate_calls += 1
        choice = result["choices"][0]
        usage = result.get("usage") or {}
        return Generated(choice["message"].get("content") or "", int(usage.get("prompt_tokens", 0)),
                         int(usage.get("completion_tokens", 0)), choice.get("finish_reason") or "stop")

    def submit(self, messages: list[dict[str, Any]], **params: Any) -> Future[Generated]:
        return self._pool.submit(self._complete, messages, self._options(params))

    def generate(self, messages: list[dict[str, Any]], **params: Any) -> Generated:
        return self.submit(messages, **params).result()

    def stream(self, messages: list[dict[str, Any]], **params: Any) -> Iterator[str]:
        """Text pieces of one reply; the worker is held until the stream ends."""
        options = self._options(params)

        def pieces() -> list[str]:
            chunks = self.llama.create_chat_completion(messages=messages, stream=True, **options)
            self.generate_calls += 1
            return [chunk["choices"][0]["delta"].get("content") or "" for chunk in chunks]

        yield from (piece for piece in self._pool.submit(pieces).result() if piece)
