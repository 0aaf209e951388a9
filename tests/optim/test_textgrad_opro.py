"""textgrad and opro with a scripted model: calls per edge, gradients, history and commits."""

from __future__ import annotations

import json
import threading

import pytest

import graphopt as go
from graphopt.errors import BudgetExceeded
from graphopt.llm.scripted import follow_schema, scripted_client


@go.op
def answer(prompt: str, question: str) -> str:
    """Answers `question` as `prompt` says."""
    return f"{prompt} {question}"


@go.op
def combine(left: str, right: str) -> str:
    """Both texts, joined."""
    return f"{left} / {right}"


def is_json_request(messages) -> bool:
    return "JSON schema" in messages[0]["content"]


def test_textgrad_makes_one_call_per_edge_then_one_update_per_param(plugin_manager):
    prompt = go.param("Be brief.", name="system_prompt")
    top_k = go.param(3, name="top_k", space=go.Int(1, 10))
    out = combine(answer(prompt, "q"), go.ops.str(top_k))
    go.backward(out, "needs detail")
    lock = threading.Lock()
    edges, updates = [], []

    def handler(messages, params):
        with lock:
            if is_json_request(messages):
                updates.append(messages[-1]["content"])
                return json.dumps({"reasoning": "r", "system_prompt": "Explain fully.", "top_k": 6})
            edges.append(messages[-1]["content"])
            return f"gradient {len(edges)}"

    opt = go.optimizer("textgrad", [prompt, top_k], llm=scripted_client(handler),
                       plugin_manager=plugin_manager)
    assert opt.step() == {"system_prompt": "Explain fully.", "top_k": 6}
    # combine→answer, combine→str, answer→system_prompt, str→top_k
    assert len(edges) == 4 and len(updates) == 2
    first_wave = [e for e in edges if e.startswith("Operation: combine")]
    assert len(first_wave) == 2 and all("Feedback on the output:\nneeds detail" in e for e in first_wave)
    to_prompt = next(e for e in edges if e.startswith("Operation: answer"))
    assert "(the trainable variable 'system_prompt', text)" in to_prompt
    assert "How should the input prompt change?" in to_prompt


def test_textgrad_aggregates_gradients_reaching_one_node(plugin_manager):
    prompt = go.param("Be brief.", name="system_prompt")
    out = combine(answer(prompt, "a"), answer(prompt, "b"))
    go.backward(out, "too vague")
    seen = []

    def handler(messages, params):
        if is_json_request(messages):
            seen.append(messages[-1]["content"])
            return json.dumps({"reasoning": "r"})
        return "make it concrete" if "question = 'a'" in messages[-1]["content"] else "name the topic"

    opt = go.optimizer("textgrad", [prompt], llm=scripted_client(handler), plugin_manager=plugin_manager)
    opt.step()
    assert len(seen) == 1
    assert "- make it concrete" in seen[0] and "- name the topic" in seen[0]
    assert opt.last_step["reason"] == "system_prompt: no valid change suggested"


def test_textgrad_momentum_keeps_the_last_k_gradients(plugin_manager):
    prompt = go.param("Be brief.", name="system_prompt")
    count = iter(range(100))

    def handler(messages, params):
        if is_json_request(messages):
            return json.dumps({"reasoning": "r"})
        return f"gradient {next(count)}"

    opt = go.optimizer("textgrad", [prompt], llm=scripted_client(handler), momentum=2,
                       plugin_manager=plugin_manager)
    for _ in range(3):
        go.backward(answer(prompt, "q"), "worse")
        opt.step()
        opt.zero_feedback()
    assert opt.state[prompt]["gradients"] == ["gradient 1", "gradient 2"]
    saved = json.loads(json.dumps(opt.state_dict()))
    assert saved["state"]["system_prompt"]["gradients"] == ["gradient 1", "gradient 2"]


def test_textgrad_invalid_update_is_resent_then_dropped(plugin_manager):
    top_k = go.param(3, name="top_k", space=go.Int(1, 10))
    go.backward(go.ops.str(top_k), "more")

    def handler(messages, params):
        return json.dumps({"reasoning": "r", "top_k": 50}) if is_json_request(messages) else "raise it"

    client = scripted_client(handler)
    opt = go.optimizer("textgrad", [top_k], llm=client, plugin_manager=plugin_manager)
    assert opt.step() == {}
    assert top_k.value == 3 and "top_k" in opt.last_step["errors"]
    assert len(client.backend.calls) == 3  # one edge, one update, one resend
    assert client.ledger.by_tag()["textgrad"]["calls"] == 3


def test_textgrad_respects_budgets(plugin_manager):
    prompt = go.param("Be brief.", name="system_prompt")
    go.backward(answer(prompt, "q"), "worse")
    opt = go.optimizer("textgrad", [prompt], llm=scripted_client(follow_schema),
                       plugin_manager=plugin_manager)
    with go.budget(max_calls=0), pytest.raises(BudgetExceeded):
        opt.step()
    assert prompt.value == "Be brief."


def test_opro_shows_the_best_k_sorted_by_score(plugin_manager):
    top_k = go.param(1, name="top_k", space=go.Int(1, 10))
    client = scripted_client(follow_schema)
    opt = go.optimizer("opro", [top_k], llm=client, top_k=2, plugin_manager=plugin_manager)
    for value, score in ((1, 0.1), (4, 0.9), (7, 0.5)):
        top_k.assign(value)
        go.backward(go.ops.str(top_k), score)
        opt.step()
        opt.zero_feedback()
    assert [r["score"] for r in opt.history] == [0.1, 0.9, 0.5]
    text = client.backend.calls[-1][0][-1]["content"]
    assert "# Solutions so far, lower score first" in text
    assert text.index("top_k = 7\nscore: 0.5") < text.index("top_k = 4\nscore: 0.9")
    assert "score: 0.1" not in text


def test_opro_needs_scores_not_text(plugin_manager):
    prompt = go.param("Be brief.", name="system_prompt")
    go.backward(answer(prompt, "q"), "worse")
    client = scripted_client(follow_schema)
    opt = go.optimizer("opro", [prompt], llm=client, plugin_manager=plugin_manager)
    assert opt.step() == {}
    assert "opro needs scores" in opt.last_step["reason"] and client.backend.calls == []


def test_opro_commits_valid_code_and_hyperparameters(plugin_manager):
    mode = go.param("fast", name="mode", space=go.Choice(["fast", "slow"]))
    prompt = go.param("Be brief.", name="system_prompt")
    go.backward(answer(prompt, go.ops.str(mode)), 0.3)
    reply = {"reasoning": "r", "mode": "slow", "system_prompt": "Explain."}
    opt = go.optimizer("opro", [mode, prompt], llm=scripted_client(lambda m, p: json.dumps(reply)),
                       plugin_manager=plugin_manager)
    assert opt.step() == {"mode": "slow", "system_prompt": "Explain."}
    assert opt.best() == {"values": {"mode": "fast", "system_prompt": "Be brief."}, "score": 0.3}


def test_opro_history_round_trips_and_keeps_the_best(plugin_manager):
    top_k = go.param(1, name="top_k", space=go.Int(1, 10))
    opt = go.optimizer("opro", [top_k], llm=scripted_client(follow_schema), max_history=2,
                       plugin_manager=plugin_manager)
    for value, score in ((2, 0.5), (3, 0.1), (4, 0.9)):
        top_k.assign(value)
        go.backward(go.ops.str(top_k), score)
        opt.step()
        opt.zero_feedback()
    assert [r["score"] for r in opt.history] == [0.5, 0.9]
    fresh = go.optimizer("opro", [top_k], llm=scripted_client(follow_schema), max_history=2,
                         plugin_manager=plugin_manager)
    fresh.load_state_dict(json.loads(json.dumps(opt.state_dict())))
    assert fresh.history == opt.history


def test_opro_prompt_stays_within_budget_with_long_history(plugin_manager):
    prompt = go.param("Be brief.", name="system_prompt")
    opt = go.optimizer("opro", [prompt], llm=scripted_client(follow_schema), top_k=50,
                       max_prompt_tokens=500, plugin_manager=plugin_manager)
    history = [{"values": {"system_prompt": f"variant {i} " * 30}, "score": i / 100} for i in range(50)]
    text = "".join(m["content"] for m in opt.prompt(history))
    assert len(text) <= 500 * 4
    assert "score: 0.49" in text and "score: 0.0\n" not in text


def test_textgrad_refuses_an_update_echoing_its_instruction(plugin_manager):
    prompt = go.param("Be brief.", name="system_prompt")
    go.backward(answer(prompt, "q"), "too short")

    def handler(messages, params):
        if is_json_request(messages):
            return json.dumps({"reasoning": "r",
                               "system_prompt": "Suggest an improved value for the variable."})
        return "Be more detailed."

    opt = go.optimizer("textgrad", [prompt], llm=scripted_client(handler),
                       plugin_manager=plugin_manager)
    assert opt.step() == {}
    assert "copies the optimizer's instructions" in opt.last_step["errors"]["system_prompt"]
    assert prompt.value == "Be brief."


def test_opro_refuses_the_current_value_back(plugin_manager):
    prompt = go.param("Be brief.", name="system_prompt")
    go.backward(answer(prompt, "q"), 0.4)
    reply = {"reasoning": "r", "system_prompt": " Be brief. "}
    opt = go.optimizer("opro", [prompt], llm=scripted_client(lambda m, p: json.dumps(reply)),
                       plugin_manager=plugin_manager)
    assert opt.step() == {}
    assert "same as the current value" in opt.last_step["errors"]["system_prompt"]


def test_opro_does_not_propose_a_solution_already_tried(plugin_manager):
    prompt = go.param("Be brief.", name="system_prompt")
    reply = {"reasoning": "r", "system_prompt": "Explain."}
    opt = go.optimizer("opro", [prompt], llm=scripted_client(lambda m, p: json.dumps(reply)),
                       plugin_manager=plugin_manager)
    opt.history = [{"values": {"system_prompt": "Explain."}, "score": 0.1}]
    go.backward(answer(prompt, "q"), 0.4)
    assert opt.step() == {}
    assert opt.last_step["reason"] == ("the suggested values were already tried (score 0.1); "
                                       "nothing new to commit")


def test_opro_history_keeps_one_entry_per_solution(plugin_manager):
    prompt = go.param("Be brief.", name="system_prompt")
    opt = go.optimizer("opro", [prompt], llm=scripted_client(lambda m, p: '{"reasoning": "r"}'),
                       plugin_manager=plugin_manager)
    for score in (0.2, 0.3):
        go.backward(answer(prompt, "q"), score)
        opt.step()
        opt.zero_feedback()
    assert opt.history == [{"values": {"system_prompt": "Be brief."}, "score": 0.3}]


def test_opro_records_a_rejected_candidate_with_its_score(plugin_manager):
    prompt = go.param("Be brief.", name="system_prompt")
    go.backward(answer(prompt, "q"), 0.4)
    reply = {"reasoning": "r", "system_prompt": "Explain."}
    opt = go.optimizer("opro", [prompt], llm=scripted_client(lambda m, p: json.dumps(reply)),
                       plugin_manager=plugin_manager)

    def closure():
        return go.Feedback(score=0.4 if prompt.value == "Be brief." else 0.1)

    assert opt.step(closure) == {}
    assert prompt.value == "Be brief." and opt.last_rejection is not None
    assert opt.history == [{"values": {"system_prompt": "Be brief."}, "score": 0.4},
                           {"values": {"system_prompt": "Explain."}, "score": 0.1}]
    assert "score: 0.1" in opt.prompt()[1]["content"]  # the next meta-prompt shows what failed
