"""Every hosted or served model through litellm: OpenAI, Anthropic, Ollama, vLLM, ``openai/...``."""

from __future__ import annotations

import time
from typing import Any

from graphopt.llm.config import LLMSettings, load_settings
from graphopt.llm.litellm_env import load_litellm
from graphopt.llm.protocol import Message
from graphopt.llm.reply import Reply, Usage


class LiteLLMBackend:
    """One litellm model string; credentials stay in the backend, never in a cache key."""

    __slots__ = ("model", "settings", "options", "_litellm")

    def __init__(self, model: str, settings: LLMSettings, **options: Any) -> None:
        self.model = model
        self.settings = settings
        self.options = options  # api_key, api_base, ... forwarded to every call
        self._litellm: Any = None

    def __repr__(self) -> str:
        return f"LiteLLMBackend({self.model!r})"

    @property
    def litellm(self) -> Any:
        if self._litellm is None:
            self._litellm = load_litellm()
        return self._litellm

    @property
    def structured_output(self) -> bool:
        """Whether litellm knows this model to accept a JSON schema ``response_format``."""
        try:
            return bool(self.litellm.supports_response_schema(model=self.model))
        except Exception:  # an unknown model: fall back to extraction from text
            return False

    def estimate_cost(self, prompt_tokens: int, completion_tokens: int) -> float:
        """USD for that many tokens by litellm's price map (0 for a model it does not price)."""
        try:
            prompt, completion = self.litellm.cost_per_token(
                model=self.model, prompt_tokens=prompt_tokens, completion_tokens=completion_tokens)
        except Exception:  # an unknown model: its replies are costed 0 too
            return 0.0
        return float(prompt or 0.0) + float(completion or 0.0)

    def _request(self, messages: list[Message], params: dict[str, Any]) -> dict[str, Any]:
        # graphopt retries itself, so litellm's own retries would multiply the attempts.
        return {"model": self.model, "messages": messages, "timeout": self.settings.timeout,
                "num_retries": 0, **self.options, **params}

    def _reply(self, response: Any, started: float) -> Reply:
        usage = getattr(response, "usage", None)
        try:
            cost = float(self.litellm.completion_cost(completion_response=response) or 0.0)
        except Exception:  # a model missing from the cost map costs what we cannot know
            cost = 0.0
        choice = response.choices[0]
        return Reply(text=choice.message.content or "", model=response.model or self.model,
                     usage=Usage(prompt_tokens=getattr(usage, "prompt_tokens", 0) or 0,
                                 completion_tokens=getattr(usage, "completion_tokens", 0) or 0),
                     cost=cost, latency=time.perf_counter() - started,
                     finish_reason=getattr(choice, "finish_reason", None))

    def complete(self, messages: list[Message], **params: Any) -> Reply:
        started = time.perf_counter()
        return self._reply(self.litellm.completion(**self._request(messages, params)), started)

    async def acomplete(self, messages: list[Message], **params: Any) -> Reply:
        started = time.perf_counter()
        return self._reply(await self.litellm.acompletion(**self._request(messages, params)), started)


class LiteLLMFactory:
    """Builds ``LiteLLMBackend`` for any model string no other provider claims."""

    provider = "litellm"

    def create(self, model: str, *, settings: LLMSettings | None = None, **options: Any) -> LiteLLMBackend:
        return LiteLLMBackend(model, settings or load_settings(), **options)
