"""Low-rank adapters built with torch alone: a no-op at start, trainable by ``mezo`` with forward passes."""

from __future__ import annotations

import pytest
import torch

import graphopt as go
from graphopt_gradients.lora import add_lora
from graphopt_gradients.prompt_loss import PromptLoss
from graphopt_gradients.testing import tiny_model

EXAMPLES = [("ab", "c"), ("bc", "d"), ("cd", "e")]


@pytest.fixture
def model():
    return tiny_model(seed=2, hidden=32)


def loss_of(model, tokenizer) -> float:
    loss_fn = PromptLoss(model, tokenizer, EXAMPLES, template="{prompt}{input}", chat=None,
                         device=torch.device("cpu"))
    return float(loss_fn.losses([loss_fn.encode(">")])[0])


def loss_function(model, tokenizer):
    loss_fn = PromptLoss(model, tokenizer, EXAMPLES, template="{prompt}{input}", chat=None,
                         device=torch.device("cpu"))
    prompt = [loss_fn.encode(">")]
    return lambda: float(loss_fn.losses(prompt)[0])


def test_adapters_start_as_a_no_op_and_remove_cleanly(model):
    module, tokenizer = model
    before = loss_of(module, tokenizer)
    adapters = add_lora(module, rank=2)
    assert [p.name for p in adapters][:2] == ["lora.model.layers.0.self_attn.q_proj.A",
                                              "lora.model.layers.0.self_attn.q_proj.B"]
    assert loss_of(module, tokenizer) == before  # B starts at zero
    with torch.no_grad():
        for target in adapters:
            target.value.add_(0.5)
    assert loss_of(module, tokenizer) != before
    adapters.remove()
    assert loss_of(module, tokenizer) == before


def test_mezo_fine_tunes_the_adapters_with_forward_passes_only(model):
    module, tokenizer = model
    adapters = add_lora(module, rank=4, targets=("q_proj", "v_proj", "down_proj"))
    loss = loss_function(module, tokenizer)
    start = loss()
    opt = go.optimizer("mezo", list(adapters), lr=0.05, eps=1e-2, seed=0)
    for _ in range(40):
        opt.step(loss)
    assert loss() < start - 0.05
    assert all(p.value.grad is None for p in adapters)


def test_no_matching_layer_is_an_error(model):
    with pytest.raises(ValueError, match="no nn.Linear named like nope"):
        add_lora(model[0], targets=("nope",))
