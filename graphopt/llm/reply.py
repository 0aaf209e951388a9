"""What every backend returns: the reply text with its usage, cost and timing."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class Usage(BaseModel):
    """Tokens a call consumed."""

    model_config = ConfigDict(frozen=True)

    prompt_tokens: int = Field(0, ge=0)
    completion_tokens: int = Field(0, ge=0)

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


class Reply(BaseModel):
    """One model reply; ``cost`` is in USD (0 for local models and for cache hits)."""

    model_config = ConfigDict(frozen=True)

    text: str
    model: str
    usage: Usage = Field(default_factory=Usage)
    cost: float = Field(0.0, ge=0.0)
    latency: float = Field(0.0, ge=0.0)
    cached: bool = False
    finish_reason: str | None = None
