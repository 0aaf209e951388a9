"""``greater``: prompt search guided by the gradient through the task model (Das et al., 2024,
"GReaTer: Gradients over Reasoning Makes Smaller Language Models Strong Prompt Optimizers").

Each step, for each text parameter: the teacher-forced loss of the examples' targets and its
gradient with respect to the one-hot tokens of the prompt (``PromptLoss.gradient``); at a few
random positions, the model's own ``lm_topk`` likeliest next tokens (or the whole vocabulary),
re-ranked by how much the gradient says each would lower the loss, give ``topk`` single-token
substitutions; all candidates
(at most ``candidates``) and the current prompt are scored in batched forward passes, and the best
is proposed only if its loss is lower than the current one.
"""

from __future__ import annotations

import copy
import math
from typing import TYPE_CHECKING, Any, Callable, Mapping, Sequence

from graphopt.errors import ParamValidationError
from graphopt.graph.node import Param
from graphopt.optim.optimizer import Optimizer, ParamsArg, require_ints
from graphopt.plugins.manager import PluginManager
from graphopt_gradients.prompt_loss import INPUT_FIELD, PROMPT_FIELD, PromptLoss

if TYPE_CHECKING:
    import torch

CHATS = (None, "system", "user")


class Greater(Optimizer):
    """Token edits of text prompts chosen by the task model's gradient, kept only when they lower the loss.

    ``examples``: ``(input, target)`` pairs (or ``{"input": ..., "target": ...}``); the loss is the
    model's mean cross-entropy on each target after reading the prompt and the input.
    ``chat``: ``"system"`` (default: the prompt is the system message, ``template`` the user
    message), ``"user"`` (``template`` holds ``{prompt}`` and ``{input}`` in one user message) or
    ``None`` (raw text, no chat template). ``model``: ``None`` for the embedded model (shared
    with the ``local/smollm2`` backend, on ``device``), or a ``(model, tokenizer)`` pair of a
    transformers causal LM. ``dtype``: the precision of the search's forward and backward passes
    (``"float32"`` by default: bf16 gradients and losses are too coarse to rank one-token edits;
    a model in another precision is copied once, ``None`` keeps the model as it is). Per group:
    ``topk`` substitutions per position, drawn from the model's ``lm_topk`` likeliest tokens at
    that position (GReaTer; ``None``: from the whole vocabulary, as AutoPrompt and GCG do),
    ``positions_per_step``, ``candidates`` scored per step (with the current prompt, in batched
    forward passes of at most ``batch_size`` rows).

    Like the other optimizers it steps on feedback: ``step()`` does nothing until ``go.backward``
    has reached the parameter since the last ``zero_feedback()``. ``last_step`` reports, per
    parameter, the loss before and after, candidates evaluated, tokens changed and forward rows.
    """

    name = "greater"
    kinds = frozenset({"text"})

    def __init__(self, params: ParamsArg, *, examples: Sequence[Any], template: str = INPUT_FIELD,
                 chat: str | None = "system", model: tuple[Any, Any] | None = None, device: str = "auto",
                 dtype: str | None = "float32", topk: int = 4, lm_topk: int | None = 64,
                 positions_per_step: int = 4, candidates: int = 16, batch_size: int = 32, seed: int = 0,
                 plugin_manager: PluginManager | None = None) -> None:
        import torch

        require_ints(self.name, {"topk": (topk, 1), **({} if lm_topk is None else {"lm_topk": (lm_topk, 1)}),
                                 "positions_per_step": (positions_per_step, 1),
                                 "candidates": (candidates, 1), "batch_size": (batch_size, 1), "seed": (seed, 0)})
        self.examples = _examples(examples)
        _check_template(template, chat)
        if device not in ("auto", "cpu", "cuda"):
            raise ValueError(f"optimizer 'greater': device expects 'auto', 'cpu' or 'cuda', got {device!r}")
        if dtype is not None and not isinstance(getattr(torch, str(dtype), None), torch.dtype):
            raise ValueError(f"optimizer 'greater': dtype expects a torch dtype name such as 'float32', "
                             f"or None, got {dtype!r}")
        if model is not None and not (isinstance(model, (tuple, list)) and len(model) == 2):
            raise ValueError(f"optimizer 'greater': model expects None (the embedded model) or a "
                             f"(model, tokenizer) pair, got {type(model).__name__}")
        super().__init__(params, {"topk": topk, "lm_topk": lm_topk, "positions_per_step": positions_per_step,
                                  "candidates": candidates}, plugin_manager=plugin_manager)
        self.template = template
        self.chat = chat
        self.device = device
        self.batch_size = batch_size
        self.dtype = dtype
        self.model = tuple(model) if model is not None else None
        self.seed = seed
        self.iteration = 0
        self.generator = torch.Generator().manual_seed(seed)
        self.last_step: dict[str, dict[str, Any]] = {}
        self._loss: PromptLoss | None = None

    def prompt_loss(self) -> PromptLoss:
        """The loss function over prompt tokens (loading the embedded model on first use)."""
        import torch

        if self._loss is None:
            if self.model is None:
                # Here, not at the top: loading this plugin's entry point must not pull in the LLM
                # layer (graphopt loads it lazily) for processes that never use the embedded model.
                from graphopt_gradients.embedded import embedded_model

                self.model = embedded_model(self.device)
            module, tokenizer = self.model
            wanted = getattr(torch, self.dtype) if self.dtype is not None else None
            if wanted is not None and next(module.parameters()).dtype != wanted:
                # A copy: the embedded model is shared with the local backend, which keeps bf16.
                module = copy.deepcopy(module).to(wanted)
            device = next(module.parameters()).device
            self._loss = PromptLoss(module, tokenizer, self.examples, template=self.template, chat=self.chat,
                                    device=device, batch_size=self.batch_size)
        return self._loss

    def propose(self, closure: Callable[[], Any] | None = None) -> dict[Param, Any]:
        if not any(self.feedback().values()):
            return {}
        loss_fn = self.prompt_loss()
        proposal: dict[Param, Any] = {}
        report: dict[str, dict[str, Any]] = {}
        for group in self.param_groups:
            for target in group["params"]:
                name = self.param_names[target]
                value, row = self._search(loss_fn, target.value, group)
                report[name] = row
                if value is not None:
                    proposal[target] = value
        self.iteration += 1
        self.last_step = report
        return proposal

    def _search(self, loss_fn: PromptLoss, text: str, group: Mapping[str, Any]) -> tuple[str | None, dict[str, Any]]:
        """One search step on one prompt: the improved text (or ``None``) and the step's report."""
        rows_before = loss_fn.forward_rows
        ids = loss_fn.encode(text)
        if not ids:
            return None, {"loss_before": None, "loss_after": None, "candidates": 0, "tokens_changed": 0,
                          "forward_rows": 0}
        loss, grad, next_logits = loss_fn.gradient(ids)
        candidates = self._candidates(loss_fn, ids, grad, next_logits, group)
        losses = loss_fn.losses([ids, *candidates]).tolist() if candidates else [loss]
        current = losses[0]
        finite = [i for i in range(1, len(losses)) if math.isfinite(losses[i])]
        best = min(finite, key=lambda i: (losses[i], i), default=None)
        improved = best is not None and (not math.isfinite(current) or losses[best] < current)
        chosen = candidates[best - 1] if improved and best is not None else ids
        row = {"loss_before": _number(current), "loss_after": _number(losses[best] if improved else current),
               "candidates": len(candidates), "tokens_changed": sum(a != b for a, b in zip(ids, chosen)),
               "forward_rows": loss_fn.forward_rows - rows_before}
        return (loss_fn.decode(chosen) if improved else None), row

    def _candidates(self, loss_fn: PromptLoss, ids: list[int], grad: torch.Tensor,
                    next_logits: torch.Tensor | None, group: Mapping[str, Any]) -> list[list[int]]:
        """Single-token substitutions: gradient-ranked among the model's next-token candidates."""
        import torch

        vocab = min(grad.shape[1], len(loss_fn.tokenizer))
        order = torch.randperm(len(ids), generator=self.generator).tolist()
        positions = order[:group["positions_per_step"]]
        scored: list[tuple[float, int, int]] = []
        for position in positions:
            allowed = torch.zeros(grad.shape[1], dtype=torch.bool, device=grad.device)
            allowed[:vocab] = True
            allowed[loss_fn.forbidden.to(grad.device)] = False
            allowed[ids[position]] = False
            if next_logits is not None and group["lm_topk"] is not None:
                likely = next_logits[position].to(grad.device).masked_fill(~allowed, -math.inf)
                pool = likely.topk(min(group["lm_topk"], int(allowed.sum()))).indices
            else:
                pool = allowed.nonzero().squeeze(1)
            # First-order change of the loss when the one-hot moves from the current token to v.
            gain = grad[position, ids[position]] - grad[position, pool]
            top = gain.topk(min(group["topk"], len(pool)))
            scored += [(float(g), position, int(pool[i])) for g, i in zip(top.values, top.indices)]
        scored.sort(key=lambda item: (-item[0], item[1], item[2]))
        chosen: list[list[int]] = []
        for _, position, token in scored:
            edited = [*ids[:position], token, *ids[position + 1:]]
            # Keep edits whose text reads back as the same tokens: the prompt is stored as text.
            if edited not in chosen and loss_fn.encode(loss_fn.decode(edited)) == edited:
                chosen.append(edited)
            if len(chosen) >= group["candidates"]:
                break
        return chosen

    def extra_state_dict(self) -> dict[str, Any]:
        return {"iteration": self.iteration, "generator": self.generator.get_state().tolist(),
                "last_step": self.last_step}

    def check_extra_state_dict(self, data: Mapping[str, Any]) -> None:
        if not isinstance(data.get("iteration"), int) or not isinstance(data.get("generator"), list):
            raise ParamValidationError("optimizer 'greater': state dict extra expects an int iteration and "
                                       f"a generator state list, got {sorted(data)}")

    def load_extra_state_dict(self, data: Mapping[str, Any]) -> None:
        import torch

        self.iteration = data["iteration"]
        self.generator.set_state(torch.tensor(data["generator"], dtype=torch.uint8))
        self.last_step = {k: dict(v) for k, v in data.get("last_step", {}).items()}


def _number(value: float) -> float | None:
    return value if math.isfinite(value) else None


def _examples(examples: Sequence[Any]) -> list[tuple[str, str]]:
    if isinstance(examples, (str, bytes)) or not isinstance(examples, Sequence) or not examples:
        raise ValueError("optimizer 'greater': examples expects a non-empty list of (input, target) pairs")
    pairs = []
    for index, example in enumerate(examples):
        pair = (example.get("input"), example.get("target")) if isinstance(example, Mapping) else example
        if not (isinstance(pair, (tuple, list)) and len(pair) == 2 and all(isinstance(s, str) for s in pair)):
            raise ValueError(f"optimizer 'greater': example {index} expects an (input, target) pair of "
                             f"strings or a dict with 'input' and 'target', got {example!r}")
        pairs.append((pair[0], pair[1]))
    return pairs


def _check_template(template: str, chat: str | None) -> None:
    if chat not in CHATS:
        raise ValueError(f"optimizer 'greater': chat expects 'system', 'user' or None, got {chat!r}")
    wants_prompt = chat != "system"
    if not isinstance(template, str) or (PROMPT_FIELD in template) != wants_prompt \
            or (wants_prompt and template.count(PROMPT_FIELD) != 1):
        where = "exactly once" if wants_prompt else "not at all (the prompt is the system message)"
        raise ValueError(f"optimizer 'greater': template must hold {PROMPT_FIELD} {where} "
                         f"with chat={chat!r}, got {template!r}")
