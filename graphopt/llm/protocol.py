"""The narrow contract between the client and a backend, and between plugins and the client."""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

from graphopt.llm.reply import Reply

Message = dict[str, Any]


@runtime_checkable
class Backend(Protocol):
    """Sends one request to one model; retries, caching and budgets are the client's job.

    A backend raises on failure. Errors it deems transient (rate limits, timeouts, lost
    connections) are retried by the client; see ``graphopt.llm.retry.is_transient``. A backend may
    set ``structured_output = True`` when it honours ``response_format`` with a JSON schema.
    """

    def complete(self, messages: list[Message], **params: Any) -> Reply: ...

    async def acomplete(self, messages: list[Message], **params: Any) -> Reply: ...


class BackendFactory(Protocol):
    """What ``graphopt_llm_backends()`` returns: a provider prefix and a way to build backends."""

    provider: str

    def create(self, model: str, **config: Any) -> Backend: ...
