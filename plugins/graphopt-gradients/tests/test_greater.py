"""``greater`` on a tiny Llama built from a config: gradients over one-hot tokens, candidates, the gate."""

from __future__ import annotations

import json

import pytest
import torch

import graphopt as go
from graphopt.errors import ParamValidationError
from graphopt_gradients.prompt_loss import PromptLoss, render
from graphopt_gradients.testing import byte_tokenizer, plant, tiny_model

EXAMPLES = [(x, "z") for x in "abcd"]


@pytest.fixture(scope="module")
def planted():
    """A tiny model in which '!' read last before the answer makes it 'z'."""
    model, tokenizer = tiny_model(seed=0)
    plant(model, tokenizer, "!", "z")
    return model, tokenizer


def greater(prompt, model, **options):
    config = {"examples": EXAMPLES, "template": "{input}{prompt}", "chat": None, "model": model,
              "topk": 2, "lm_topk": None, "positions_per_step": 2, "candidates": 4, **options}
    return go.optimizer("greater", [prompt], **config)


def judged(prompt):
    go.backward(prompt, go.Feedback(score=0.0))


def test_finds_the_planted_token_in_one_step(planted):
    prompt = go.param("hk", name="prompt")
    opt = greater(prompt, planted)
    judged(prompt)
    committed = opt.step()
    assert committed == {"prompt": "h!"}
    report = opt.last_step["prompt"]
    assert report["tokens_changed"] == 1 and report["candidates"] == 4
    assert report["loss_after"] < 0.01 < 1.0 < report["loss_before"]
    assert report["forward_rows"] == 4 * (1 + 1 + 4)  # examples x (gradient pass + current + candidates)


def test_the_gradient_matches_finite_differences_of_the_embedding(planted):
    model, tokenizer = planted
    loss_fn = PromptLoss(model, tokenizer, EXAMPLES, template="{input}{prompt}", chat=None,
                         device=torch.device("cpu"), batch_size=3)
    ids = loss_fn.encode("hk")
    loss, grad, _ = loss_fn.gradient(ids)
    assert loss == pytest.approx(float(loss_fn.losses([ids])[0]), rel=1e-5)
    # d loss / d one_hot[i, v] = embedding[v] . d loss / d embeds[i]: check along token '!'.
    weight = model.get_input_embeddings().weight
    [cue] = loss_fn.encode("!")
    step = 1e-3
    with torch.no_grad():
        original = weight[ids[1]].clone()
        weight[ids[1]] += step * weight[cue]
        moved = float(loss_fn.losses([ids])[0])
        weight[ids[1]] = original
    assert (moved - loss) / step == pytest.approx(float(grad[1, cue]), rel=0.05)


def test_candidates_come_from_the_models_likeliest_next_tokens(planted):
    model, tokenizer = planted
    prompt = go.param("hk", name="prompt")
    opt = greater(prompt, planted, lm_topk=3, topk=3, candidates=10)
    loss_fn = opt.prompt_loss()
    ids = loss_fn.encode("hk")
    _, grad, next_logits = loss_fn.gradient(ids)
    found = opt._candidates(loss_fn, ids, grad, next_logits, opt.param_groups[0])
    for position in (0, 1):
        likely = next_logits[position].clone()
        likely[ids[position]] = -float("inf")
        likely[loss_fn.forbidden] = -float("inf")
        allowed = set(likely.topk(3).indices.tolist())
        edits = [c[position] for c in found if c[position] != ids[position]]
        assert edits and set(edits) <= allowed


def test_keeps_the_prompt_when_no_candidate_lowers_the_loss(planted):
    prompt = go.param("!", name="prompt")  # already the best: every single edit is worse
    opt = greater(prompt, planted)
    judged(prompt)
    assert opt.step() == {}
    assert prompt.value == "!"
    report = opt.last_step["prompt"]
    assert report["loss_after"] == report["loss_before"] and report["tokens_changed"] == 0
    assert 1 <= report["candidates"] <= 2  # topk at the one position, less edits that do not read back


def test_does_nothing_without_feedback(planted):
    prompt = go.param("hk", name="prompt")
    opt = greater(prompt, planted)
    assert opt.step() == {} and opt.iteration == 0 and prompt.value == "hk"


def test_an_edit_that_does_not_read_back_as_the_same_tokens_is_skipped(planted):
    model, tokenizer = planted
    prompt = go.param("hk", name="prompt")
    opt = greater(prompt, planted, topk=258, candidates=1000)  # every byte at both positions
    loss_fn = opt.prompt_loss()
    ids = loss_fn.encode("hk")
    _, grad, next_logits = loss_fn.gradient(ids)
    found = opt._candidates(loss_fn, ids, grad, next_logits, opt.param_groups[0])
    # A lone continuation byte (0x80..0xBF) does not decode to itself; ASCII edits do.
    assert all(loss_fn.encode(loss_fn.decode(c)) == c for c in found)
    assert 0 < len(found) < 2 * 255


def test_state_dict_restores_the_search_position(planted):
    prompt = go.param("qk", name="prompt")
    opt = greater(prompt, planted, positions_per_step=1)
    judged(prompt)
    opt.step()
    saved = json.loads(json.dumps(opt.state_dict()))
    twin = go.param(prompt.value, name="prompt")
    restored = greater(twin, planted, positions_per_step=1)
    restored.load_state_dict(saved)
    assert restored.iteration == 1 and restored.last_step == opt.last_step
    for target, optimizer in ((prompt, opt), (twin, restored)):
        judged(target)
        optimizer.step()
    assert twin.value == prompt.value


def test_renders_the_prompt_as_the_system_message():
    tokenizer = byte_tokenizer().__class__(tokenizer_object=byte_tokenizer().backend_tokenizer)
    tokenizer.chat_template = ("{% for m in messages %}<{{ m.role }}>{{ m.content }}</{{ m.role }}>{% endfor %}"
                               "{% if add_generation_prompt %}<assistant>{% endif %}")
    before, after = render("Q: {input}", "system", "2+2", tokenizer)
    assert (before, after) == ("<system>", "</system><user>Q: 2+2</user><assistant>")
    before, after = render("{prompt} Q: {input}", "user", "2+2", tokenizer)
    assert (before, after) == ("<user>", " Q: 2+2</user><assistant>")


@pytest.mark.parametrize("options, message", [
    ({"examples": []}, "examples expects a non-empty list"),
    ({"examples": [("a", 1)]}, "example 0 expects an \\(input, target\\) pair"),
    ({"template": "{input}", "chat": None}, "template must hold \\{prompt\\} exactly once"),
    ({"template": "{prompt} {input}", "chat": "system"}, "template must hold \\{prompt\\} not at all"),
    ({"chat": "assistant"}, "chat expects 'system', 'user' or None"),
    ({"topk": 0}, "topk expects an int >= 1"),
    ({"device": "tpu"}, "device expects 'auto', 'cpu' or 'cuda'"),
])
def test_bad_options_are_refused(planted, options, message):
    with pytest.raises(ValueError, match=message):
        greater(go.param("hk", name="prompt"), planted, **options)


def test_only_text_params(planted):
    with pytest.raises(ParamValidationError, match="cannot optimize param 'n'"):
        greater(go.param(3, name="n", space=go.Int(0, 5)), planted)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.gpu
def test_runs_on_the_models_device():
    model, tokenizer = tiny_model(seed=0, device="cuda")
    plant(model, tokenizer, "!", "z")
    prompt = go.param("hk", name="prompt")
    opt = greater(prompt, (model, tokenizer))
    judged(prompt)
    assert opt.step() == {"prompt": "h!"}


def test_the_acceptance_gate_can_still_refuse_a_lower_loss(planted):
    prompt = go.param("hk", name="prompt")
    opt = greater(prompt, planted)
    judged(prompt)
    # The workflow's own metric prefers the old prompt: step(closure) scores both, keeps the old.
    assert opt.step(lambda: go.Feedback(score=float(prompt.value == "hk"))) == {}
    assert prompt.value == "hk" and opt.last_rejection is not None
    assert opt.last_step["prompt"]["loss_after"] < opt.last_step["prompt"]["loss_before"]
