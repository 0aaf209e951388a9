import asyncio
import threading

import pytest
import torch

import graphopt as go
from graphopt.graph.node import Error, Message


@go.op
def add(a, b=1):
    """Add two numbers."""
    return a + b


def test_op_call_records_message_with_inputs_by_argument_name():
    x = go.param(2, name="x")
    out = add(x, b=3)
    assert isinstance(out, Message) and out.value == 5
    assert out.op.name == "add" and out.op.doc == "Add two numbers."
    assert out.inputs == {"a": x}
    assert out.constants == {"b": 3}


def test_op_with_only_constants_still_returns_a_node():
    out = add(1, 2)
    assert isinstance(out, Message) and out.parents == () and out.value == 3


def test_op_raising_becomes_error_node_not_a_crash():
    @go.op
    def explode(value):
        raise RuntimeError(f"bad {value}")

    x = go.param(1, name="x")
    out = explode(x)
    assert isinstance(out, Error)
    assert str(out.exception) == "bad 1" and out.parents == (x,)
    follow = add(out)
    assert isinstance(follow, Error) and follow.parents == (out,)


def test_no_trace_returns_raw_values_and_nests():
    x = go.param(2, name="x")
    with go.no_trace():
        assert add(x) == 3
        assert x + 1 == 3
        with go.no_trace():
            assert go.graph.is_tracing() is False
        assert go.graph.is_tracing() is False
    assert go.graph.is_tracing() is True
    assert isinstance(add(x), Message)


def test_nested_ops_keep_inner_params_reachable():
    prompt = go.param("Answer briefly.", name="prompt")

    @go.op
    def inner(question):
        return prompt + " " + question  # a param used inside through an operator

    @go.op
    def outer(question):
        return inner(question).value.upper()  # returns a plain value

    out = outer("why?")
    assert out.value == "ANSWER BRIEFLY. WHY?"
    reachable = go.graph.topological_order([out])
    assert prompt in reachable
    assert prompt in go.graph.minimal_subgraph([out]).params


def test_op_returning_inner_node_links_it():
    p = go.param(3, name="p")

    @go.op
    def wrapper():
        return add(p, 4)

    out = wrapper()
    assert out.value == 7 and isinstance(out.value, int)
    assert go.graph.minimal_subgraph([out]).params == [p]


def test_methods_are_traced_without_self():
    class Agent:
        def __init__(self):
            self.greeting = "hi"

        @go.op
        def reply(self, name):
            return f"{self.greeting} {name}"

    agent = Agent()
    name = go.param("bob", name="name")
    out = agent.reply(name)
    assert out.value == "hi bob"
    assert out.inputs == {"name": name} and out.constants is None


def test_async_ops_under_gather_trace_independently():
    @go.op
    async def slow_double(value):
        await asyncio.sleep(0.01)
        return value * 2

    @go.op
    async def pipeline(value):
        return (await slow_double(value)).value + 1

    a, b = go.param(1, name="a"), go.param(10, name="b")

    async def main():
        return await asyncio.gather(pipeline(a), pipeline(b))

    out_a, out_b = asyncio.run(main())
    assert (out_a.value, out_b.value) == (3, 21)
    assert go.graph.minimal_subgraph([out_a]).params == [a]
    assert go.graph.minimal_subgraph([out_b]).params == [b]


def test_threads_trace_independently():
    results = {}

    def worker(key):
        p = go.param(key, name=f"p{key}")
        if key == 1:
            with go.no_trace():
                results[key] = add(p)
        else:
            results[key] = add(p)

    threads = [threading.Thread(target=worker, args=(k,)) for k in (1, 2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results[1] == 2
    assert isinstance(results[2], Message)


@go.op(trainable=True)
def parse(reply: str) -> str:
    """Last word of the reply."""
    return reply.strip().split()[-1]


def test_trainable_op_exposes_its_source_as_a_code_param():
    code = parse.code
    assert code.kind.name == "code"
    assert code.value.startswith("def parse(reply: str) -> str:")
    assert "@go.op" not in code.value
    out = parse("the answer is 42")
    assert out.value == "42"
    assert out.parents[0] is code and out.arg_names[0] == "__code__"


def test_trainable_op_runs_the_assigned_candidate_compiled_once_per_hash():
    original = parse.code.value
    try:
        parse.code.assign("def parse(reply):\n    return reply.strip().split()[0]\n")
        assert parse("the answer").value == "the"
        first = parse.implementation()
        assert parse.implementation() is first
        assert len(parse._compiled) == 1
    finally:
        parse.code.assign(original)
    assert parse("a b").value == "b"


def test_candidate_that_fails_or_raises_becomes_an_error_node():
    original = parse.code.value
    try:
        parse.code.value = "def parse(reply):\n    return undefined_name\n"
        out = parse("x")
        assert isinstance(out, Error) and isinstance(out.exception, NameError)
        assert out.parents[0] is parse.code
        parse.code.value = "def parse(reply):\n    return (\n"
        broken = parse("x")
        assert isinstance(broken, Error) and isinstance(broken.exception, SyntaxError)
    finally:
        parse.code.value = original


def test_trainable_op_timeout_turns_runaway_candidates_into_errors():
    @go.op(trainable=True, timeout=0.2)
    def spin(n):
        return n

    spin.code.value = "def spin(n):\n    import time\n    time.sleep(5)\n    return n\n"
    out = spin(1)
    assert isinstance(out, Error) and isinstance(out.exception, TimeoutError)


def test_trainable_op_sees_closure_variables():
    factor = 3

    @go.op(trainable=True)
    def scale(x):
        return x * factor

    scale.code.assign("def scale(x):\n    return x * factor + 1\n")
    assert scale(2).value == 7


def test_builtin_functions_can_be_traced():
    matmul = go.op(torch.matmul)
    w = go.param(torch.ones(2), name="w")
    out = matmul(torch.eye(2), w)
    assert out.arg_names == ("arg1",) and out.op.name.endswith("matmul")
    assert torch.equal(out.value, torch.ones(2))


def test_ops_defined_in_functions_are_named_without_locals():
    @go.op
    def double(x):
        return 2 * x

    assert double.op.name == "test_ops_defined_in_functions_are_named_without_locals.double"


def test_budget_exceeded_inside_an_op_stops_the_run():
    @go.op
    def spend(x):
        raise go.BudgetExceeded("max_calls=0 reached")

    with pytest.raises(go.BudgetExceeded):
        spend(go.param(1, name="x"))
    with pytest.raises(go.BudgetExceeded):
        go.graph.Node(lambda: spend(1))()


def test_lookup_finds_a_traced_key_by_value_and_records_the_edge():
    tools = {"capital": lambda q: f"Paris ({q})", "math": lambda q: "4"}
    route = go.op(name="route")(lambda q: "capital")
    key = route("France?")
    assert key == "capital"  # a node: true by value ...
    with pytest.raises(KeyError):
        tools[key]  # ... but a dict looks the node itself up
    tool = go.ops.lookup(tools, key)
    assert tool.parents == (key,)
    assert tool("France?").value == "Paris (France?)"


def test_lookup_of_a_missing_key_is_an_error_node_naming_the_keys():
    missing = go.ops.lookup({"a": 1, "b": 2}, go.param("c", name="which"))
    assert isinstance(missing, go.Error)
    assert "'c' is not a key; the keys are: 'a', 'b'" in str(missing.value)


def test_calling_a_looked_up_traced_op_gives_its_value_not_a_nested_node():
    tools = {"double": go.op(name="double")(lambda x: 2 * x)}
    tool = go.ops.lookup(tools, go.param("double", name="which"))
    out = tool(21)
    assert out.value == 42 and not isinstance(out.value, go.Node)
    assert out.parents[0] is tool
