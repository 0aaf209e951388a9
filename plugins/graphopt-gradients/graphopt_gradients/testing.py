"""A tiny randomly initialized causal LM with a byte-level tokenizer, for fast tests of ``greater``.

Built from a config in memory: no download, no weights on disk. The tokenizer has one token per
byte (256) plus ``<pad>`` and ``<s>``, so any text encodes and most edits decode back to the same
tokens. ``plant`` makes one token a strong cue for a target token, a known better edit to find.
"""

from __future__ import annotations

import functools
from typing import Any

import torch


@functools.cache
def byte_tokenizer() -> Any:
    """A transformers fast tokenizer with one token per byte (ids 2..257), ``<pad>`` 0, ``<s>`` 1."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {"<pad>": 0, "<s>": 1}
    for symbol in sorted(pre_tokenizers.ByteLevel.alphabet()):
        vocab[symbol] = len(vocab)
    inner = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    inner.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    inner.decoder = decoders.ByteLevel()
    return PreTrainedTokenizerFast(tokenizer_object=inner, pad_token="<pad>", bos_token="<s>")


def tiny_model(*, seed: int = 0, hidden: int = 32, layers: int = 1, device: str = "cpu") -> tuple[Any, Any]:
    """``(model, tokenizer)``: a Llama of ``layers`` layers and width ``hidden``, random weights."""
    from transformers import LlamaConfig, LlamaForCausalLM

    tokenizer = byte_tokenizer()
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=hidden, intermediate_size=2 * hidden,
                         num_hidden_layers=layers, num_attention_heads=4, num_key_value_heads=2,
                         max_position_embeddings=256, pad_token_id=0, bos_token_id=1, eos_token_id=1,
                         tie_word_embeddings=False)
    torch.manual_seed(seed)
    model = LlamaForCausalLM(config).to(device).eval()
    return model, tokenizer


@torch.no_grad()
def plant(model: Any, tokenizer: Any, cue: str, target: str, *, strength: float = 3.0) -> None:
    """Make token ``cue``, read last before the answer, predict ``target`` strongly.

    The cue's input embedding and the target's output row are set along one unit direction, so
    through the residual stream the cue alone lifts the target's logit by about
    ``strength * sqrt(hidden)``.
    """
    [cue_id] = tokenizer(cue, add_special_tokens=False)["input_ids"]
    [target_id] = tokenizer(target, add_special_tokens=False)["input_ids"]
    embeddings = model.get_input_embeddings().weight
    head = model.get_output_embeddings().weight
    generator = torch.Generator().manual_seed(1234)
    direction = torch.randn(embeddings.shape[1], generator=generator).to(embeddings)
    direction /= direction.norm()
    embeddings[cue_id] = direction
    head[target_id] = strength * direction
