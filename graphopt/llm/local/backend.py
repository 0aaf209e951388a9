"""The ``local`` provider: the embedded model behind the client protocol."""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING, Any, Iterator

from graphopt.errors import LLMError
from graphopt.llm.config import LLMSettings, load_settings
from graphopt.llm.protocol import Message
from graphopt.llm.reply import Reply, Usage

if TYPE_CHECKING:
    from graphopt.llm.local.engine import Generated

# Model names the local provider serves, mapped to what loads them.
MODELS = ("smollm2",)


class LocalBackend:
    """``local/smollm2``: loaded on the first call, shared by every client in the process."""

    __slots__ = ("model", "settings", "_engine")

    structured_output = True  # JSON schemas are enforced while decoding

    def __init__(self, model: str, settings: LLMSettings) -> None:
        name = model.split("/", 1)[1] if "/" in model else model
        if name not in MODELS:
            raise LLMError(f"local provider has no model {name!r}; expected one of "
                           f"{', '.join('local/' + m for m in MODELS)}", model=model)
        self.model = f"local/{name}"
        self.settings = settings
        self._engine: Any = None

    def __repr__(self) -> str:
        return f"LocalBackend({self.model!r})"

    @property
    def engine(self) -> Any:
        """The shared engine (loading the model on first access)."""
        if self._engine is None:
            # The runtime (torch, the engine) loads here: registering the backend stays light.
            from graphopt.llm.local import runtime

            self._engine = runtime.shared_engine(self.settings)
        return self._engine

    def _reply(self, generated: Generated, started: float) -> Reply:
        return Reply(text=generated.text, model=self.model,
                     usage=Usage(prompt_tokens=generated.prompt_tokens,
                                 completion_tokens=generated.completion_tokens),
                     cost=0.0, latency=time.perf_counter() - started,
                     finish_reason=generated.finish_reason)

    def count_tokens(self, messages: list[Message]) -> int:
        """The prompt's tokens as the model will see them (chat template included)."""
        return self.engine.count_tokens(messages)

    def estimate_cost(self, prompt_tokens: int, completion_tokens: int) -> float:
        """The embedded model is free."""
        return 0.0

    def complete(self, messages: list[Message], **params: Any) -> Reply:
        started = time.perf_counter()
        return self._reply(self.engine.generate(messages, **params), started)

    async def acomplete(self, messages: list[Message], **params: Any) -> Reply:
        started = time.perf_counter()
        engine = await asyncio.to_thread(lambda: self.engine)  # a first load must not block the loop
        generated = await asyncio.wrap_future(engine.submit(messages, **params))
        return self._reply(generated, started)

    def stream(self, messages: list[Message], **params: Any) -> Iterator[str]:
        """Text pieces of one reply as they are generated."""
        return self.engine.stream(messages, **params)


class LocalFactory:
    """Builds ``LocalBackend`` for model strings starting with ``local/``."""

    provider = "local"

    def create(self, model: str, *, settings: LLMSettings | None = None, **config: Any) -> LocalBackend:
        if config:
            raise TypeError(f"local provider takes no backend options, got {', '.join(sorted(config))}")
        return LocalBackend(model, settings or load_settings())
