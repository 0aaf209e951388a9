import copy
import pickle

import pytest

import graphopt as go
from graphopt.graph.node import Error, Message, Node


def test_operators_produce_messages_with_parents_in_argument_order():
    a = go.param(3, name="a")
    b = go.param(4, name="b")
    out = a * b + 1
    assert isinstance(out, Message)
    assert out.value == 13
    product = out.parents[0]
    assert product.op.name == "mul"
    assert product.parents == (a, b)
    assert product.inputs == {"left": a, "right": b}
    assert out.constants == {"right": 1}


def test_reflected_operator_keeps_the_constant_on_the_left():
    a = go.param(2, name="a")
    out = 10 - a
    assert out.value == 8
    assert out.constants == {"left": 10}
    assert out.parents == (a,)


@pytest.mark.parametrize("expr, expected", [
    (lambda x: x + 2, 7), (lambda x: x - 2, 3), (lambda x: x * 2, 10), (lambda x: x / 2, 2.5),
    (lambda x: x // 2, 2), (lambda x: x % 2, 1), (lambda x: x ** 2, 25), (lambda x: -x, -5),
    (lambda x: abs(-x), 5), (lambda x: x < 6, True), (lambda x: x >= 6, False),
    (lambda x: x == 5, True), (lambda x: x != 5, False), (lambda x: x & 4, 4), (lambda x: x | 2, 7),
    (lambda x: x ^ 1, 4), (lambda x: x << 1, 10), (lambda x: x >> 1, 2), (lambda x: ~x, -6),
])
def test_arithmetic_and_comparisons_are_traced(expr, expected):
    x = go.param(5, name="x")
    out = expr(x)
    assert isinstance(out, Message)
    assert out.value == expected


def test_getitem_getattr_and_call_are_traced():
    text = go.param("  Hello  ", name="text")
    stripped = text.strip()
    assert isinstance(stripped, Message) and stripped.value == "Hello"
    assert stripped.op.name == "call"
    method = stripped.parents[0]
    assert method.op.name == "getattr" and method.parents == (text,)
    first = stripped[0]
    assert first.value == "H" and first.op.name == "getitem"


def test_calling_a_node_holding_a_callable_traces_node_arguments():
    function = go.graph.Node(lambda a, b=0: a + b, name="adder")
    x = go.param(1, name="x")
    out = function(x, b=2)
    assert out.value == 3
    assert out.parents == (function, x)
    assert out.arg_names == ("function", "arg0")
    assert out.constants == {"b": 2}


def test_missing_attribute_raises_attribute_error_naming_the_node():
    x = go.param(5, name="x")
    with pytest.raises(AttributeError, match="x: value of type int has no attribute 'nope'"):
        x.nope
    assert not hasattr(x, "_private")


def test_iteration_yields_traced_items():
    items = go.param(["a", "b", "c"], name="items")
    parts = list(items)
    assert [p.value for p in parts] == ["a", "b", "c"]
    assert all(isinstance(p, Message) and p.parents == (items,) for p in parts)
    assert [p.constants["index"] for p in parts] == [0, 1, 2]


def test_iteration_over_a_set_materializes_items():
    items = go.graph.Node({3})
    (only,) = list(items)
    assert only.value == 3 and only.parents == (items,)


def test_bool_len_str_format_return_raw_values():
    x = go.param("abc", name="x")
    assert bool(x) is True
    assert len(x) == 3
    assert str(x) == "abc"
    assert f"{x:>5}" == "  abc"
    assert "b" in x
    n = go.param(2.5, name="n")
    assert float(n) == 2.5 and int(n) == 2


def test_traced_len_str_format():
    x = go.param(["a", "b"], name="x")
    assert go.ops.len(x).value == 2
    assert go.ops.len(x).parents == (x,)
    template = go.param("Q: {q}", name="template")
    out = go.ops.format(template, q="why?")
    assert out.value == "Q: why?" and out.parents == (template,)
    assert go.ops.str(x).value == "['a', 'b']"


def test_equality_yields_a_node_but_nodes_are_identity_keyed():
    a = go.param(1, name="a")
    b = go.param(1, name="b")
    assert isinstance(a == b, Message)
    table = {a: "a", b: "b"}
    assert table[a] == "a" and table[b] == "b"
    assert len({a, b}) == 2


def test_ids_increase_and_nodes_use_slots():
    a = go.param(1, name="a")
    b = a + 1
    assert b.id > a.id
    with pytest.raises(AttributeError):
        object.__setattr__(a, "unexpected", 1)
    assert not hasattr(b, "__dict__")


def test_exception_in_an_operator_becomes_an_error_node():
    x = go.param(1, name="x")
    out = x / 0
    assert isinstance(out, Error)
    assert isinstance(out.exception, ZeroDivisionError)
    assert "ZeroDivisionError" in out.traceback
    downstream = out + 1
    assert isinstance(downstream, Error) and downstream.parents == (out,)
    assert isinstance(downstream.exception, ZeroDivisionError)
    with pytest.raises(ZeroDivisionError):
        downstream.reraise()


def test_nodes_pickle_and_copy():
    x = go.param(2, name="x")
    y = x * 3
    restored = pickle.loads(pickle.dumps(y))
    assert restored.value == 6 and restored.parents[0].name == "x"
    assert copy.copy(x).value == 2


def test_plain_node_is_not_trainable_and_has_no_feedback():
    constant = Node(3, name="c")
    assert constant.label == "c" and constant.parents == () and constant.op is None
