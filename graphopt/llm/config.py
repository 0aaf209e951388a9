"""LLM settings: keyword arguments first, then ``GRAPHOPT_*`` environment variables, then defaults.

This module is the one place the configuration is documented; ``docs/llm.md`` renders the same
table. Every field can be given to ``go.llm.get(model, **settings)``; the environment is read
when settings are built, never at import.

==========================  =========================  =============================================
field                       environment variable       meaning
==========================  =========================  =============================================
model                       GRAPHOPT_MODEL             litellm model string or ``local/smollm2``
cache_dir                   GRAPHOPT_CACHE_DIR         root of the request cache and model cache
cache                       GRAPHOPT_CACHE             ``off`` disables the request cache
cache_sampled               GRAPHOPT_CACHE_SAMPLED     serve temperature > 0 from cache (no rollout)
temperature                 GRAPHOPT_TEMPERATURE       used when a call gives none (0: greedy)
retries                     GRAPHOPT_LLM_RETRIES       retries after a transient failure
backoff                     GRAPHOPT_LLM_BACKOFF       first retry delay in seconds, doubled each time
timeout                     GRAPHOPT_LLM_TIMEOUT       seconds per hosted call
concurrency                 GRAPHOPT_LLM_CONCURRENCY   bound of ``Client.batch`` / ``abatch``
local_backend               GRAPHOPT_LOCAL_BACKEND     ``transformers``, ``llamacpp`` or ``auto``
device                      GRAPHOPT_DEVICE            ``cpu``, ``cuda``, or ``auto`` (CUDA if any)
torch_threads               GRAPHOPT_TORCH_THREADS     torch intra-op threads for the local model
omp_wait_policy             GRAPHOPT_OMP_WAIT_POLICY   OMP_WAIT_POLICY set before torch starts
max_batch                   GRAPHOPT_LOCAL_MAX_BATCH   most concurrent local requests in one batch
batch_wait_ms               GRAPHOPT_LOCAL_BATCH_WAIT  how long a batch waits for company, in ms
prefix_cache_tokens         GRAPHOPT_LOCAL_PREFIX      prompt-start tokens kept as keys, values (0: off)
==========================  =========================  =============================================
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

DEFAULT_MODEL = "local/smollm2"

# field name -> environment variable; the order is the documentation order above.
ENVIRONMENT: dict[str, str] = {
    "model": "GRAPHOPT_MODEL",
    "cache_dir": "GRAPHOPT_CACHE_DIR",
    "cache": "GRAPHOPT_CACHE",
    "cache_sampled": "GRAPHOPT_CACHE_SAMPLED",
    "temperature": "GRAPHOPT_TEMPERATURE",
    "retries": "GRAPHOPT_LLM_RETRIES",
    "backoff": "GRAPHOPT_LLM_BACKOFF",
    "timeout": "GRAPHOPT_LLM_TIMEOUT",
    "concurrency": "GRAPHOPT_LLM_CONCURRENCY",
    "local_backend": "GRAPHOPT_LOCAL_BACKEND",
    "device": "GRAPHOPT_DEVICE",
    "torch_threads": "GRAPHOPT_TORCH_THREADS",
    "omp_wait_policy": "GRAPHOPT_OMP_WAIT_POLICY",
    "max_batch": "GRAPHOPT_LOCAL_MAX_BATCH",
    "batch_wait_ms": "GRAPHOPT_LOCAL_BATCH_WAIT",
    "prefix_cache_tokens": "GRAPHOPT_LOCAL_PREFIX",
}

_OFF = {"0", "off", "false", "no", "none", "disabled"}


def default_cache_dir() -> Path:
    """``$XDG_CACHE_HOME/graphopt``, else ``~/.cache/graphopt``."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "graphopt"


class LLMSettings(BaseModel):
    """Validated settings of one client; see the module docstring for each field."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    model: str = DEFAULT_MODEL
    cache_dir: Path = Field(default_factory=default_cache_dir)
    cache: bool = True
    cache_sampled: bool = False
    temperature: float = Field(0.0, ge=0.0)
    retries: int = Field(3, ge=0)
    backoff: float = Field(1.0, ge=0.0)
    timeout: float = Field(120.0, gt=0.0)
    concurrency: int = Field(8, ge=1)
    local_backend: Literal["transformers", "llamacpp", "auto"] = "transformers"
    device: Literal["cpu", "cuda", "auto"] = "auto"
    torch_threads: int = Field(1, ge=1)
    omp_wait_policy: Literal["PASSIVE", "ACTIVE"] = "PASSIVE"
    max_batch: int = Field(8, ge=1)
    batch_wait_ms: float = Field(20.0, ge=0.0)
    prefix_cache_tokens: int = Field(8192, ge=0)

    @field_validator("cache", "cache_sampled", mode="before")
    @classmethod
    def _switch(cls, value: Any) -> Any:
        if isinstance(value, str):
            return value.strip().lower() not in _OFF
        return value

    @property
    def llm_cache_dir(self) -> Path:
        """Where request replies are cached."""
        return self.cache_dir / "llm"

    @property
    def model_cache_dir(self) -> Path:
        """Where converted local model weights are kept."""
        return self.cache_dir / "models"


def load_settings(**overrides: Any) -> LLMSettings:
    """Settings from ``overrides``, then the environment, then defaults.

    An override of ``None`` means "not given". Raises ``ValueError`` naming the field, where it
    came from and the value that was refused.
    """
    unknown = sorted(set(overrides) - set(LLMSettings.model_fields))
    if unknown:
        raise ValueError(f"unknown LLM setting(s) {', '.join(map(repr, unknown))}; expected any of "
                         f"{', '.join(LLMSettings.model_fields)}")
    values: dict[str, Any] = {}
    sources: dict[str, str] = {}
    for field, variable in ENVIRONMENT.items():
        if overrides.get(field) is not None:
            values[field], sources[field] = overrides[field], "argument"
        elif os.environ.get(variable, "").strip():
            values[field], sources[field] = os.environ[variable].strip(), f"${variable}"
    try:
        return LLMSettings(**values)
    except ValidationError as err:
        problem = err.errors()[0]
        field = str(problem["loc"][0]) if problem["loc"] else "?"
        raise ValueError(f"LLM setting {field!r} (from {sources.get(field, 'default')}) "
                         f"{problem['msg'].lower()}, got {values.get(field)!r}") from err
