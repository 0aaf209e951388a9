"""Process-wide runtime for the embedded model: thread settings, device choice, one shared engine.

Loading takes seconds, so each process keeps one engine per (device, cache directory, backend)
and every client of ``local/smollm2`` shares it; requests from all of them batch together.
"""

from __future__ import annotations

import contextlib
import contextvars
import importlib.util
import os
import threading
from pathlib import Path
from typing import Any, Callable, Iterator

import torch

from graphopt.errors import LLMError
from graphopt.llm.config import LLMSettings
from graphopt.llm.local import weights
from graphopt.llm.local.engine import Engine
from graphopt.llm.local.llamacpp import LlamaCppEngine

_engines: dict[tuple[str, str, Path], Any] = {}
_engines_lock = threading.Lock()
_host: contextvars.ContextVar[Callable[[LLMSettings], Any] | None] = contextvars.ContextVar(
    "graphopt_engine_host", default=None)


def configure_threads(settings: LLMSettings) -> None:
    """One torch thread and passive OpenMP waits by default: spinning threads starve a busy CPU.

    ``OMP_WAIT_POLICY`` only takes effect when set before torch first starts OpenMP, so an
    explicit value in the environment wins. ``torch.set_num_threads`` is process-wide.
    """
    os.environ.setdefault("OMP_WAIT_POLICY", settings.omp_wait_policy)
    if torch.get_num_threads() != settings.torch_threads:
        torch.set_num_threads(settings.torch_threads)


def pick_device(setting: str) -> str:
    """``cuda`` when asked or (for ``auto``) available, else ``cpu``."""
    if setting == "cuda" and not torch.cuda.is_available():
        raise LLMError(f"model {weights.MODEL_NAME!r}: device 'cuda' requested, but torch sees no "
                       "CUDA device", model=weights.MODEL_NAME)
    if setting == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return setting


def pick_backend(setting: str) -> str:
    """``transformers`` or ``llamacpp``; ``auto`` takes llama.cpp only when it is installed."""
    has_llamacpp = importlib.util.find_spec("llama_cpp") is not None
    if setting == "llamacpp" and not has_llamacpp:
        raise LLMError(f"model {weights.MODEL_NAME!r}: local_backend 'llamacpp' requested, but "
                       "llama-cpp-python is not installed (pip install 'graphopt[llamacpp]')",
                       model=weights.MODEL_NAME)
    if setting == "auto":
        return "llamacpp" if has_llamacpp else "transformers"
    return setting


def _build(backend: str, device: str, settings: LLMSettings) -> Any:
    configure_threads(settings)
    if backend == "llamacpp":
        return LlamaCppEngine(weights.gguf_path(), threads=settings.torch_threads,
                              gpu=device == "cuda")
    loaded = weights.load(settings.model_cache_dir)
    return Engine(loaded.model, loaded.tokenizer, device=device, max_batch=settings.max_batch,
                  batch_wait_ms=settings.batch_wait_ms,
                  prefix_cache_tokens=settings.prefix_cache_tokens)


@contextlib.contextmanager
def engines_from(host: Callable[[LLMSettings], Any]) -> Iterator[None]:
    """Within the block, ``shared_engine`` takes its engine from ``host(settings)`` instead of
    loading one in this process (Ray workers: one engine per node, in an actor)."""
    token = _host.set(host)
    try:
        yield
    finally:
        _host.reset(token)


def shared_engine(settings: LLMSettings) -> Any:
    """The process's engine for these settings, loaded on first use (or the host's, in
    ``engines_from``)."""
    host = _host.get()
    if host is not None:
        return host(settings)
    backend = pick_backend(settings.local_backend)
    device = pick_device(settings.device)
    key = (backend, device, settings.model_cache_dir.expanduser().resolve())
    with _engines_lock:
        engine = _engines.get(key)
        if engine is None:
            engine = _engines[key] = _build(backend, device, settings)
        return engine
