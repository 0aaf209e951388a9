import pytest
import torch

import graphopt as go
from graphopt.graph.kinds import CodeKind


def test_kind_is_read_off_the_value():
    assert go.param("hi", name="p").kind.name == "text"
    assert go.param(3, name="p").kind.name == "int"
    assert go.param(0.5, name="p").kind.name == "float"
    assert go.param(torch.zeros(2), name="p").kind.name == "tensor"
    assert go.param({"a": [1]}, name="p").kind.name == "object"
    assert go.param(3, name="p", space=go.Int(1, 10)).kind.name == "int"
    assert go.param("b", name="p", space=go.Choice(["a", "b"])).kind.name == "choice"


def test_out_of_space_value_is_refused_with_name_expected_and_got():
    with pytest.raises(go.ParamValidationError, match=r"param 'top_k' expects Int\(1, 10\), got 12"):
        go.param(12, name="top_k", space=go.Int(1, 10))
    k = go.param(3, name="top_k", space=go.Int(1, 10))
    with pytest.raises(go.ParamValidationError) as info:
        k.assign(0)
    assert info.value.param is k
    assert k.value == 3


def test_wrong_kind_is_refused():
    p = go.param("text", name="prompt")
    with pytest.raises(go.ParamValidationError, match="param 'prompt' expects text"):
        p.assign(5)
    with pytest.raises(go.ParamValidationError, match="JSON-serializable"):
        go.param(object(), name="thing")


def test_float_space_log_and_choice():
    lr = go.param(1e-3, name="lr", space=go.Float(1e-5, 1e-1, log=True))
    lr.assign(0.01)
    assert lr.value == 0.01
    with pytest.raises(go.ParamValidationError):
        lr.assign(float("nan"))
    model = go.param("small", name="model", space=go.Choice(["small", "large"]))
    with pytest.raises(go.ParamValidationError, match="expects one of"):
        model.assign("medium")


def test_bad_space_definitions_are_refused():
    with pytest.raises(ValueError, match="low < high"):
        go.Int(5, 1)
    with pytest.raises(ValueError, match="log=True needs low > 0"):
        go.Float(0.0, 1.0, log=True)
    with pytest.raises(ValueError, match="at least one option"):
        go.Choice([])


def test_tensor_assign_copies_in_place_and_checks_shape():
    tensor = torch.zeros(3, requires_grad=True)
    w = go.param(tensor, name="w")
    w.assign(torch.ones(3))
    assert w.value is tensor and torch.equal(tensor.detach(), torch.ones(3))
    with pytest.raises(go.ParamValidationError, match=r"shape \(3,\)"):
        w.assign(torch.ones(4))


@pytest.mark.parametrize("value, space", [
    ("text", None), (7, None), (2.5, None), ({"k": [1, 2]}, None), (4, go.Int(1, 10)),
    (0.3, go.Float(0.0, 1.0)), ("b", go.Choice(["a", "b"])),
])
def test_kinds_round_trip_through_json(value, space):
    p = go.param(value, name="p", space=space)
    assert p.kind.from_json(p.to_json()) == value


def test_tensor_round_trips_through_json():
    w = go.param(torch.arange(6, dtype=torch.float32).reshape(2, 3), name="w")
    back = w.kind.from_json(w.to_json())
    assert back.dtype == torch.float32 and torch.equal(back, w.value)


def test_space_json_round_trip_and_unit_mapping():
    for space in (go.Int(1, 10), go.Float(1e-4, 1.0, log=True), go.Choice([1, "a"])):
        assert go.graph.Space.from_json(space.to_json()) == space
    space = go.Float(1e-4, 1.0, log=True)
    assert space.from_unit(space.to_unit(0.01)) == pytest.approx(0.01)
    assert go.Int(1, 10).from_unit(2.0) == 10


def test_code_kind_checks_compile_name_and_signature():
    kind = CodeKind("parse", ("reply",))
    assert kind.validate("def parse(reply):\n    return reply\n", None)
    with pytest.raises(ValueError, match="does not compile"):
        kind.validate("def parse(reply)\n", None)
    with pytest.raises(ValueError, match="must define function 'parse'"):
        kind.validate("def other(reply):\n    return 1\n", None)
    with pytest.raises(ValueError, match=r"signature must stay parse\(reply\)"):
        kind.validate("def parse(reply, extra):\n    return 1\n", None)


def test_param_exposes_its_space():
    assert go.param(3, name="k", space=go.Int(1, 5)).space == go.Int(1, 5)
    assert go.param("text", name="t").space is None
