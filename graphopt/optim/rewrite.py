"""LLM-driven edits of text and code values: mutation (revise one) and crossover (merge two).

Search optimizers call these through the LLM client protocol only. A reply is cut down to the
new value (a fenced block when there is one); the caller validates it against the parameter, so a
reply that does not fit is simply a candidate that never races.
"""

from __future__ import annotations

import re
from typing import Any, ClassVar, Sequence

from graphopt.graph.node import Param
from graphopt.llm.client import Client
from graphopt.llm.registry import get

# Ways to revise a value; one is drawn per child so children of one parent differ even greedily.
MUTATION_STYLES: tuple[str, ...] = (
    "Fix the problems the feedback points out.",
    "Make it clearer and more specific.",
    "Make it shorter without losing meaning.",
    "Add one concrete rule that would avoid the mistakes in the feedback.",
    "Rephrase it in a different way.",
)

_FENCE = re.compile(r"```[a-zA-Z0-9_+-]*\n(.*?)```", re.DOTALL)


def resolve_client(llm: str | Client | None, tag: str) -> Client:
    """``llm`` as a client recording its calls under ``tag`` (a model string, a client, or the default)."""
    client = llm if isinstance(llm, Client) else get(llm)
    return client.with_tag(tag)


class RewriteClient:
    """Mixin for optimizers with an ``llm`` option: ``client``, that model tagged with the
    optimizer's ``name``, resolved on first use (so building an optimizer loads no model)."""

    llm: str | Client | None
    name: ClassVar[str]
    _client: Client | None = None

    @property
    def client(self) -> Client:
        """The LLM client writing rewrites, made on first use."""
        if self._client is None:
            self._client = resolve_client(self.llm, tag=self.name)
        return self._client


def describe_value(target: Param, name: str) -> str:
    """How a parameter is introduced in an edit prompt."""
    what = "Python function source" if target.kind.name == "code" else "text"
    extra = f" ({target.description})" if target.description else ""
    return f"{what} '{name}'{extra}, of kind {target.kind.describe()}"


def mutation_prompt(target: Param, name: str, value: str, critiques: Sequence[str], style: str) -> str:
    """The request asking for a revised ``value``."""
    notes = "\n".join(f"- {c}" for c in critiques) or "- (no feedback yet)"
    fence = "python" if target.kind.name == "code" else "text"
    return (f"You improve one {describe_value(target, name)} of an AI workflow.\n"
            f"Current value:\n```{fence}\n{value}\n```\nFeedback from runs:\n{notes}\n"
            f"{style} Reply with only the new value inside one ```{fence} block.")


def crossover_prompt(target: Param, name: str, first: str, second: str) -> str:
    """The request asking for one value combining the strengths of two."""
    fence = "python" if target.kind.name == "code" else "text"
    return (f"Two versions of the {describe_value(target, name)} worked well.\n"
            f"Version A:\n```{fence}\n{first}\n```\nVersion B:\n```{fence}\n{second}\n```\n"
            f"Write one version that combines the best of both. Reply with only the new value "
            f"inside one ```{fence} block.")


def extract_value(reply: str) -> str:
    """The new value in a reply: its first fenced block, else the whole reply stripped."""
    found = _FENCE.search(reply)
    if found:
        return found.group(1).strip("\n") + ("\n" if "def " in found.group(1) else "")
    return reply.strip().strip("`").strip()


def ask(client: Client, prompt: str, *, max_tokens: int, temperature: float, seed: int) -> str:
    """One edit request; sampled requests carry ``seed`` as their rollout id, so they cache."""
    params: dict[str, Any] = {"max_tokens": max_tokens, "temperature": temperature}
    if temperature > 0.0:
        params["seed"] = seed
        return extract_value(client.complete(prompt, rollout_id=seed, **params).text)
    return extract_value(client.complete(prompt, **params).text)
