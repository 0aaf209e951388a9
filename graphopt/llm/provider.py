"""The embedded model as a litellm custom provider: ``litellm.completion(model="local/smollm2")``.

Import through ``graphopt.llm.litellm_env.load_litellm()``, which prepares litellm's environment
first and registers the provider. Calls go through a graphopt client, so they share its cache,
ledger and the process's one loaded model; streamed replies come straight from the engine.
"""

from __future__ import annotations

import asyncio
from types import ModuleType
from typing import Any, AsyncIterator, Iterator

from litellm import CustomLLM
from litellm.types.utils import GenericStreamingChunk, ModelResponse
from litellm.utils import Usage as LiteLLMUsage

from graphopt.llm.local.backend import LocalBackend
from graphopt.llm.registry import get

PROVIDER = "local"
_DONE = object()


def _chunk(text: str, *, finished: bool = False) -> GenericStreamingChunk:
    return {"text": text, "is_finished": finished, "finish_reason": "stop" if finished else "",
            "usage": None, "index": 0, "tool_use": None}


def _params(optional_params: dict[str, Any]) -> dict[str, Any]:
    return {name: value for name, value in optional_params.items() if name != "stream"}


class LocalProvider(CustomLLM):
    """litellm handler for ``local/<name>`` models, backed by graphopt's local backend."""

    def _fill(self, response: ModelResponse, model: str, reply: Any) -> ModelResponse:
        response.choices[0].message.content = reply.text  # type: ignore[union-attr]
        response.choices[0].finish_reason = reply.finish_reason or "stop"
        response.model = f"{PROVIDER}/{model}"
        setattr(response, "usage", LiteLLMUsage(
            prompt_tokens=reply.usage.prompt_tokens, completion_tokens=reply.usage.completion_tokens,
            total_tokens=reply.usage.total_tokens))
        return response

    def completion(self, model: str, messages: list, api_base: str, custom_prompt_dict: dict,
                   model_response: ModelResponse, print_verbose: Any, encoding: Any, api_key: Any,
                   logging_obj: Any, optional_params: dict, *args: Any, **kwargs: Any) -> ModelResponse:
        reply = get(f"{PROVIDER}/{model}").complete(messages, **_params(optional_params))
        return self._fill(model_response, model, reply)

    async def acompletion(self, model: str, messages: list, api_base: str, custom_prompt_dict: dict,
                          model_response: ModelResponse, print_verbose: Any, encoding: Any,
                          api_key: Any, logging_obj: Any, optional_params: dict, *args: Any,
                          **kwargs: Any) -> ModelResponse:
        reply = await get(f"{PROVIDER}/{model}").acomplete(messages, **_params(optional_params))
        return self._fill(model_response, model, reply)

    def streaming(self, model: str, messages: list, api_base: str, custom_prompt_dict: dict,
                  model_response: ModelResponse, print_verbose: Any, encoding: Any, api_key: Any,
                  logging_obj: Any, optional_params: dict, *args: Any,
                  **kwargs: Any) -> Iterator[GenericStreamingChunk]:
        backend = get(f"{PROVIDER}/{model}").backend
        if not isinstance(backend, LocalBackend):
            raise TypeError(f"provider {PROVIDER!r} expects a LocalBackend, got {type(backend).__name__}")
        for piece in backend.stream(messages, **_params(optional_params)):
            yield _chunk(piece)
        yield _chunk("", finished=True)

    async def astreaming(self, model: str, messages: list, api_base: str, custom_prompt_dict: dict,
                         model_response: ModelResponse, print_verbose: Any, encoding: Any,
                         api_key: Any, logging_obj: Any, optional_params: dict, *args: Any,
                         **kwargs: Any) -> AsyncIterator[GenericStreamingChunk]:
        pieces = self.streaming(model, messages, api_base, custom_prompt_dict, model_response,
                                print_verbose, encoding, api_key, logging_obj, optional_params)
        while True:
            # Each piece is produced by a blocking generator: fetch it off the event loop.
            chunk = await asyncio.to_thread(next, pieces, _DONE)
            if chunk is _DONE:
                return
            yield chunk  # type: ignore[misc]


def register_provider(litellm: ModuleType) -> None:
    """Add ``local`` to ``litellm.custom_provider_map`` unless a handler is already there."""
    if any(item.get("provider") == PROVIDER for item in litellm.custom_provider_map):
        return
    litellm.custom_provider_map = [*litellm.custom_provider_map,
                                   {"provider": PROVIDER, "custom_handler": LocalProvider()}]
