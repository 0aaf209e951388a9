import pytest
import torch

import graphopt as go
from graphopt.feedback import ParamFeedback, received


def test_feedback_coerces_common_values():
    assert go.Feedback.coerce("wrong").text == "wrong"
    assert go.Feedback.coerce(0.5).score == 0.5
    assert go.Feedback.coerce(True).score == 1.0
    assert go.Feedback.coerce(ValueError("boom")).error.type == "ValueError"
    assert go.Feedback.coerce({"text": "t", "score": 1}).score == 1.0
    loss = torch.tensor(2.0)
    assert go.Feedback.coerce(loss).loss is loss
    with pytest.raises(TypeError, match="cannot make feedback from object"):
        go.Feedback.coerce(object())


def test_feedback_carries_named_metrics():
    feedback = go.Feedback(score=0.5, metrics={"cost": 0.02, "latency": 1.5})
    assert feedback.metrics == {"cost": 0.02, "latency": 1.5}
    assert feedback.describe() == "score=0.5; cost=0.02; latency=1.5"
    assert go.Feedback(metrics={"cost": 1}).metrics == {"cost": 1.0}


def test_feedback_needs_something_and_a_scalar_loss():
    with pytest.raises(ValueError, match="at least one of"):
        go.Feedback()
    with pytest.raises(ValueError, match="scalar tensor"):
        go.Feedback(loss=torch.ones(3))
    with pytest.raises(ValueError, match="torch.Tensor"):
        go.Feedback(loss=1.0)


def test_backward_reaches_every_trainable_param_with_shared_subgraph():
    prompt = go.param("Answer:", name="prompt")
    suffix = go.param("!", name="suffix")
    frozen = go.param("ignored", name="frozen", trainable=False)
    out = prompt + " yes" + suffix + frozen
    go.backward(out, "too short")
    (fp,), (fs,) = received(prompt), received(suffix)
    assert isinstance(fp, ParamFeedback) and fp.feedback.text == "too short"
    assert fp.output is out and fp.subgraph is fs.subgraph
    assert frozen.feedback == []


def test_repeated_backward_accumulates_without_asserting_equality():
    prompt = go.param("p", name="prompt")
    for gold in ("a", "b", "c"):
        out = prompt + gold
        out.backward(f"expected {gold}")
    assert [f.feedback.text for f in received(prompt)] == ["expected a", "expected b", "expected c"]


def test_two_outputs_reaching_one_param_both_arrive():
    p = go.param(1, name="p")
    go.backward(p + 1, 0.2)
    go.backward(p * 3, 0.9)
    assert [f.feedback.score for f in received(p)] == [0.2, 0.9]


def test_error_output_sends_its_error_as_feedback():
    p = go.param(0, name="p")
    out = 1 / p
    go.backward(out)
    (item,) = received(p)
    assert item.feedback.error.type == "ZeroDivisionError"
    assert "ZeroDivisionError" in item.feedback.error.traceback


def test_backward_without_feedback_on_plain_value_is_refused():
    p = go.param("x", name="p")
    with pytest.raises(go.TraceError, match="needs feedback"):
        go.backward(p + "y")
    with pytest.raises(go.TraceError, match="expects a graphopt Node"):
        go.backward("raw string", "fb")


def test_unknown_propagator_lists_available(plugin_manager):
    p = go.param(1, name="p")
    with pytest.raises(go.PluginNotFoundError, match="did you mean 'default'"):
        go.backward(p + 1, 1.0, propagator="defualt", plugin_manager=plugin_manager)


def test_custom_propagator_plugin_receives_subgraph_and_feedback(plugin_manager):
    seen = []

    class Recorder:
        name = "recorder"

        def propagate(self, subgraph, feedback):
            seen.append((list(subgraph.params), feedback.text))

    class Plugin:
        @go.plugins.hookimpl
        def graphopt_propagators(self):
            return [Recorder()]

    plugin_manager.register(Plugin(), name="recorder-plugin")
    p = go.param("a", name="p")
    go.backward(p + "b", "note", propagator="recorder", plugin_manager=plugin_manager)
    assert seen == [([p], "note")]
    assert p.feedback == []
