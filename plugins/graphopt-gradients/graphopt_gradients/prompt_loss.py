"""The task loss of a prompt through a causal language model, as a function of the prompt's tokens.

For each example ``(input, target)`` the model reads ``before + prompt + after`` (the template
around the prompt, with the input filled in, wrapped in the chat template when asked) and is
teacher-forced on ``target``; the loss is the mean cross-entropy of the target tokens, averaged
over examples. ``PromptLoss`` gives that loss for many prompts of one length in batched forward
passes, and its gradient with respect to the one-hot encoding of the prompt's tokens
(``one_hot @ W_embed`` fed as ``inputs_embeds``), which is what GReaTer ranks token edits by.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Sequence

if TYPE_CHECKING:
    import torch

PROMPT_FIELD = "{prompt}"
INPUT_FIELD = "{input}"
_MARK = "\u2063GRAPHOPT_PROMPT\u2063"  # stands in for the prompt while the template is rendered


@dataclass(frozen=True, slots=True)
class Example:
    """One example as token ids: what comes before and after the prompt, and the target."""

    before: tuple[int, ...]
    after: tuple[int, ...]
    target: tuple[int, ...]


def render(template: str, chat: str | None, input_text: str, tokenizer: Any) -> tuple[str, str]:
    """The text before and after the prompt for one input.

    ``chat=None``: ``template`` is the whole text (``{prompt}`` and ``{input}`` in it).
    ``chat="system"``: the prompt is the system message, ``template`` (with ``{input}``) the user's.
    ``chat="user"``: ``template`` (with both fields) is the user message.
    The chat forms end with the assistant's turn opening, where the target follows.
    """
    if chat is None:
        text = template.replace(INPUT_FIELD, input_text).replace(PROMPT_FIELD, _MARK)
    else:
        if chat == "system":
            messages = [{"role": "system", "content": _MARK},
                        {"role": "user", "content": template.replace(INPUT_FIELD, input_text)}]
        else:
            messages = [{"role": "user",
                         "content": template.replace(INPUT_FIELD, input_text).replace(PROMPT_FIELD, _MARK)}]
        text = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    before, found, after = text.partition(_MARK)
    if not found:
        raise ValueError(f"template {template!r} does not place the prompt (expects {PROMPT_FIELD})")
    return before, after


class PromptLoss:
    """Teacher-forced loss of ``examples`` through ``model`` as a function of the prompt's token ids.

    ``model`` is a transformers causal LM (anything taking ``input_ids`` or ``inputs_embeds``,
    ``attention_mask``, ``position_ids`` and returning ``.logits``); ``tokenizer`` its tokenizer.
    Rows are left-padded so every target ends at the last column. ``batch_size`` bounds the rows
    of one forward pass.
    """

    __slots__ = ("model", "tokenizer", "examples", "device", "batch_size", "forward_rows", "forbidden")

    def __init__(self, model: Any, tokenizer: Any, examples: Sequence[tuple[str, str]], *, template: str,
                 chat: str | None, device: torch.device, batch_size: int = 32) -> None:
        import torch

        self.model = model
        self.tokenizer = tokenizer
        self.device = device
        self.batch_size = batch_size
        self.forward_rows = 0  # rows (sequences) run through the model so far, for budgets and reports
        self.examples = [self._example(template, chat, x, y) for x, y in examples]
        special = set(getattr(tokenizer, "all_special_ids", []) or [])
        # Chat markers such as <|im_end|> are added tokens that all_special_ids may not list.
        special |= {i for i, token in (getattr(tokenizer, "added_tokens_decoder", {}) or {}).items()
                    if getattr(token, "special", False)}
        self.forbidden = torch.tensor(sorted(special), dtype=torch.long, device=device)

    def _example(self, template: str, chat: str | None, input_text: str, target: str) -> Example:
        before, after = render(template, chat, input_text, self.tokenizer)
        ids = self.encode
        target_ids = ids(target)
        if not target_ids:
            raise ValueError(f"example target {target!r} has no tokens")
        return Example(tuple(ids(before)), tuple(ids(after)), tuple(target_ids))

    def encode(self, text: str) -> list[int]:
        """Token ids of ``text``, no special tokens added."""
        return list(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def decode(self, ids: Sequence[int]) -> str:
        return self.tokenizer.decode(list(ids))

    @property
    def vocab_size(self) -> int:
        return int(self.model.get_input_embeddings().weight.shape[0])

    # -- rows -------------------------------------------------------------------------------
    def _rows(self, prompts: Sequence[Sequence[int]]) -> list[tuple[list[int], int, int]]:
        """For each prompt and example: the row's ids, where the prompt starts, the target length."""
        rows = []
        for prompt in prompts:
            for example in self.examples:
                ids = [*example.before, *prompt, *example.after, *example.target]
                rows.append((ids, len(example.before), len(example.target)))
        return rows

    def _padded(self, rows: Sequence[tuple[list[int], int, int]]) -> tuple[torch.Tensor, torch.Tensor]:
        import torch

        width = max(len(ids) for ids, _, _ in rows)
        pad = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else 0
        input_ids = torch.full((len(rows), width), pad, dtype=torch.long)
        mask = torch.zeros((len(rows), width), dtype=torch.long)
        for row, (ids, _, _) in enumerate(rows):
            input_ids[row, width - len(ids):] = torch.tensor(ids)
            mask[row, width - len(ids):] = 1
        return input_ids.to(self.device), mask.to(self.device)

    def _losses(self, logits: torch.Tensor, input_ids: torch.Tensor,
                rows: Sequence[tuple[list[int], int, int]]) -> torch.Tensor:
        """Mean target cross-entropy per row; ``logits`` are the last ``T + 1`` columns' logits."""
        import torch

        keep = logits.shape[1]
        log_probs = torch.log_softmax(logits[:, :-1].float(), dim=-1)
        targets = input_ids[:, -keep + 1:]
        token_loss = -log_probs.gather(-1, targets.unsqueeze(-1)).squeeze(-1)
        lengths = torch.tensor([t for _, _, t in rows], device=token_loss.device)
        columns = torch.arange(keep - 1, device=token_loss.device)
        in_target = columns.unsqueeze(0) >= (keep - 1 - lengths).unsqueeze(1)
        return (token_loss * in_target).sum(dim=1) / lengths

    def _forward(self, mask: torch.Tensor, keep: int, **inputs: torch.Tensor) -> torch.Tensor:
        positions = (mask.cumsum(dim=1) - 1).clamp(min=0)
        self.forward_rows += mask.shape[0]
        return self.model(attention_mask=mask, position_ids=positions, logits_to_keep=keep, **inputs).logits

    # -- public -----------------------------------------------------------------------------
    def losses(self, prompts: Sequence[Sequence[int]]) -> torch.Tensor:
        """The loss of each prompt (mean over examples), in batched forward passes without gradients."""
        import torch

        with torch.no_grad():
            rows = self._rows(prompts)
            per_row = []
            for start in range(0, len(rows), self.batch_size):
                chunk = rows[start:start + self.batch_size]
                input_ids, mask = self._padded(chunk)
                keep = max(t for _, _, t in chunk) + 1
                logits = self._forward(mask, keep, input_ids=input_ids)
                per_row.append(self._losses(logits, input_ids, chunk))
            return torch.cat(per_row).view(len(prompts), len(self.examples)).mean(dim=1).cpu()

    def gradient(self, prompt: Sequence[int]) -> tuple[float, torch.Tensor, torch.Tensor | None]:
        """``(loss, grad, next_token_logits)`` at ``prompt``.

        ``grad[i, v]`` is the loss's derivative with respect to the one-hot entry of token ``v`` at
        prompt position ``i``; ``next_token_logits[i]`` is the model's distribution for prompt
        position ``i`` given what precedes it in the first example (``None`` when nothing does).
        """
        import torch

        weight = self.model.get_input_embeddings().weight
        one_hot = torch.zeros(len(prompt), weight.shape[0], dtype=weight.dtype, device=weight.device)
        one_hot[torch.arange(len(prompt)), torch.tensor(list(prompt), device=weight.device)] = 1
        one_hot.requires_grad_(True)
        rows = self._rows([prompt])
        total = torch.zeros((), device=self.device)
        grad = torch.zeros(one_hot.shape, dtype=torch.float32, device=self.device)
        next_token: torch.Tensor | None = None
        with torch.enable_grad():
            for start in range(0, len(rows), self.batch_size):
                chunk = rows[start:start + self.batch_size]
                input_ids, mask = self._padded(chunk)
                embeds = self._embeds(input_ids, chunk, one_hot @ weight, weight)
                first = start == 0 and chunk[0][1] > 0
                keep = 0 if first else max(t for _, _, t in chunk) + 1
                logits = self._forward(mask, keep, inputs_embeds=embeds)
                if first:
                    offset = input_ids.shape[1] - len(chunk[0][0]) + chunk[0][1]
                    next_token = logits[0, offset - 1: offset - 1 + len(prompt)].detach().float()
                    logits = logits[:, -(max(t for _, _, t in chunk) + 1):]
                chunk_loss = self._losses(logits, input_ids, chunk).sum() / len(rows)
                (chunk_grad,) = torch.autograd.grad(chunk_loss, one_hot)
                grad += chunk_grad.float()
                total += chunk_loss.detach()
        return float(total), grad, next_token

    @staticmethod
    def _embeds(input_ids: torch.Tensor, rows: Sequence[tuple[list[int], int, int]],
                prompt_embeds: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
        """Row embeddings with each row's prompt span taken from ``prompt_embeds`` (so it carries grad)."""
        import torch

        plain = weight.detach()[input_ids]
        width = input_ids.shape[1]
        stacked = []
        for row, (ids, start, _) in enumerate(rows):
            at = width - len(ids) + start
            stacked.append(torch.cat([plain[row, :at], prompt_embeds, plain[row, at + prompt_embeds.shape[0]:]]))
        return torch.stack(stacked)
