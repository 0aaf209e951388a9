"""Rendering subgraphs as code lines and values, within a character budget."""

from __future__ import annotations

import pytest

import graphopt as go
from graphopt.graph.render import (
    MIN_VALUE_CHARS, estimate_tokens, render_run, render_variables, show, truncate,
)
from graphopt.graph.walk import minimal_subgraph


@go.op
def greet(prompt: str, name: str) -> str:
    """Greets `name` as `prompt` says."""
    return f"{prompt}, {name}"


@go.op
def shout(text: str) -> str:
    """`text` in capitals."""
    return text.upper()


@go.op
def fail(text: str) -> str:
    """Always raises."""
    raise ValueError(f"cannot handle {text!r}")


def chain(length: int) -> tuple[go.Param, go.Node]:
    start = go.param(0, name="start")
    node = start
    for _ in range(length):
        node = node + 1
    return start, node


@pytest.mark.parametrize(("keep", "expected_start", "expected_end"), [
    ("middle", "a", "z"), ("head", "a", "]…"), ("tail", "…[", "z")])
def test_truncate_marks_the_cut_and_respects_the_limit(keep, expected_start, expected_end):
    text = "a" + "m" * 500 + "z"
    cut = truncate(text, 60, keep=keep)
    assert len(cut) <= 60
    assert "502 chars, cut" in cut
    assert cut.startswith(expected_start) and cut.endswith(expected_end)


def test_truncate_leaves_short_text_alone():
    assert truncate("short", 10) == "short"


def test_show_bounds_large_values():
    assert len(show(list(range(10_000)), 80)) <= 80
    assert show("it's", 20) == repr("it's")


def test_estimate_tokens_rounds_up():
    assert estimate_tokens("") == 0 and estimate_tokens("abcde") == 2


def test_run_renders_code_lines_documentation_once_and_values():
    prompt = go.param("Hello", name="greeting")
    out = shout(greet(prompt, "Ada"))
    shout(out)  # not part of the subgraph behind `out`
    text = render_run(minimal_subgraph([out]), names={prompt: "greeting"}, max_chars=4_000).text()
    assert "# Code\ngreet0 = greet(prompt=greeting, name='Ada')\nshout0 = shout(text=greet0)" in text
    assert text.count("Greets `name` as `prompt` says.") == 1
    assert "# Intermediate values\ngreet0 = 'Hello, Ada'" in text
    assert "# Outputs\nshout0 = 'HELLO, ADA'" in text


def test_repeated_op_documented_once():
    prompt = go.param("a", name="p")
    out = shout(shout(shout(prompt)))
    run = render_run(minimal_subgraph([out]), names={prompt: "p"}, max_chars=4_000)
    assert run.documentation == ["[shout] `text` in capitals."]
    assert len(run.code) == 3


def test_inputs_are_nodes_outside_the_subgraph():
    prompt = go.param("Hi", name="p")
    who = go.param("Grace", name="who", trainable=False)
    out = greet(prompt, who)
    run = render_run(minimal_subgraph([out]), names={prompt: "p"}, max_chars=4_000)
    assert run.inputs == ["who = 'Grace'"]
    assert run.code == ["greet0 = greet(prompt=p, name=who)"]


def test_errors_show_the_first_failure_with_its_traceback():
    prompt = go.param("x", name="p")
    out = shout(fail(prompt))
    run = render_run(minimal_subgraph([out]), names={prompt: "p"}, max_chars=4_000)
    assert run.errors[0].startswith("fail0: ValueError: cannot handle 'x'\nTraceback")
    assert "passed on from an input" in run.errors[1]


@go.op(trainable=True)
def last_word(text: str) -> str:
    return text.split()[-1]


@go.op(trainable=True)
def double(x: int) -> int:
    return 2 * x


def test_trainable_op_names_its_code_parameter():
    out = last_word("a b")
    run = render_run(minimal_subgraph([out]), names={last_word.code: "last_word.code"}, max_chars=2_000)
    assert run.code == ["last_word0 = last_word(text='a b')  # runs the code of last_word.code"]


def test_values_are_cut_to_the_per_value_limit():
    prompt = go.param("word " * 400, name="p")
    out = shout(prompt)
    run = render_run(minimal_subgraph([out]), names={prompt: "p"}, max_chars=10_000, max_value_chars=100)
    assert all(len(line) <= 100 + len("shout0 = ") for line in run.outputs)
    assert "chars, cut" in run.outputs[0]


@pytest.mark.parametrize("length", [100, 1_000, 10_000])
def test_long_chain_fits_the_budget_keeping_both_ends(length):
    start, out = chain(length)
    run = render_run(minimal_subgraph([out]), names={start: "start"}, max_chars=3_000)
    text = run.text()
    assert len(text) <= 3_000
    assert run.kept + run.omitted == length and run.omitted > 0
    assert "add0 = add(left=start, right=1)" in text  # nearest the parameter
    assert f"add{length - 1} = {length}" in text       # the output
    assert f"ops omitted (add ×{run.omitted})" in text  # the chain collapsed into one line


def test_prompt_size_is_flat_as_the_graph_grows():
    sizes = []
    for length in (1_000, 10_000):
        start, out = chain(length)
        sizes.append(len(render_run(minimal_subgraph([out]), names={start: "start"},
                                    max_chars=4_000).text()))
    assert abs(sizes[0] - sizes[1]) < 200


def test_small_graph_is_rendered_whole():
    start, out = chain(10)
    run = render_run(minimal_subgraph([out]), names={start: "start"}, max_chars=4_000)
    assert run.omitted == 0 and run.kept == 10


def test_tiny_budget_still_holds():
    prompt = go.param("long " * 1_000, name="p")
    out = shout(greet(prompt, "x" * 5_000))
    text = render_run(minimal_subgraph([out]), names={prompt: "p"}, max_chars=300).text()
    assert len(text) <= 300
    assert MIN_VALUE_CHARS < 300


def test_variables_show_kind_constraints_description_and_code_blocks():
    top_k = go.param(3, name="top_k", space=go.Int(1, 10), description="documents retrieved")
    mode = go.param("fast", name="mode", space=go.Choice(["fast", "slow"]))
    names = {top_k: "top_k", mode: "mode", double.code: "double.code"}
    text = render_variables([top_k, mode, double.code], names)
    assert "top_k (int in Int(1, 10)): documents retrieved = 3" in text
    assert "mode (choice in Choice(['fast', 'slow'])) = 'fast'" in text
    assert "double.code (code: def double(x)): source code of op 'double', value:\ndef double(x: int)" in text


@go.op
def add(a: float, b: float) -> float:
    """`a` plus `b`."""
    return a + b


def test_param_and_input_with_equal_values_are_told_apart_by_identity():
    # ``==`` on nodes is a traced op comparing values: a list ``in`` would confuse the two 0.0s.
    weight = go.param(0.0, name="p0")
    offset = go.param(0.0, name="x", trainable=False)
    out = add(weight, offset)
    run = render_run(minimal_subgraph([out]), names={weight: "p0"}, max_chars=2_000)
    assert "add0 = add(a=p0, b=x)" in run.code
    assert run.inputs == ["x = 0.0"]
