"""Nested-op frames: swapped in place per thread, handed to threads that run inside an op."""

import asyncio
import contextvars
import threading
from concurrent.futures import ThreadPoolExecutor

import graphopt as go
from graphopt.graph import context
from graphopt.graph.node import Error, Message


@go.op
def shout(text):
    return text.upper()


def test_a_nested_op_run_in_a_thread_with_the_callers_context_stays_reachable():
    prompt = go.param("hi", name="prompt")

    @go.op
    def outer(question):
        ctx = contextvars.copy_context()
        with ThreadPoolExecutor(1) as pool:
            return pool.submit(ctx.run, lambda: shout(prompt).value + question).result()

    out = outer("?")
    assert out.value == "HI?"
    assert go.graph.minimal_subgraph([out]).params == [prompt]


def test_a_thread_running_in_a_copied_context_gets_a_state_of_its_own():
    ctx = contextvars.copy_context()
    before = context.current()
    seen = []

    def work():
        seen.append(shout(go.param("a", name="a")))
        seen.append(context.current())

    thread = threading.Thread(target=ctx.run, args=(work,))
    thread.start()
    thread.join()
    node, state = seen
    assert isinstance(node, Message) and node.value == "A"
    assert state.owner == thread.ident and state is not before
    assert context.current() is before  # the caller's context is untouched


def test_the_frame_is_put_back_after_an_op_that_raises_or_is_nested():
    p = go.param("x", name="p")

    @go.op
    def fails(text):
        shout(text)
        raise ValueError("no")

    @go.op
    def outer(text):
        return fails(text)

    out = outer(p)
    assert type(out) is Error
    state = context.current()
    assert state.frame is None  # back at top level: nothing collects nodes now
    assert isinstance(shout(p), Message)


def test_an_op_with_a_timeout_links_the_nested_ops_its_worker_thread_ran():
    prompt = go.param("slow", name="prompt")

    @go.op(trainable=True, timeout=5.0, sandbox=False)
    def answer(question):
        return shout(prompt).value + question

    out = answer("!")
    assert out.value == "SLOW!"
    assert prompt in go.graph.minimal_subgraph([out]).params


def test_concurrent_threads_never_collect_each_others_nested_nodes():
    barrier = threading.Barrier(2)
    results = {}

    def worker(key):
        p = go.param(key, name=key)

        @go.op
        def outer():
            barrier.wait()  # both threads are inside their op when the nested ones run
            return shout(p).value

        results[key] = outer()

    threads = [threading.Thread(target=worker, args=(k,)) for k in ("a", "b")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for key, out in results.items():
        assert out.value == key.upper()
        assert [p.name for p in go.graph.minimal_subgraph([out]).params] == [key]


def test_sync_ops_inside_gathered_async_ops_keep_their_own_parents():
    a, b = go.param("a", name="a"), go.param("b", name="b")

    @go.op
    async def fetch(value):
        await asyncio.sleep(0.01)
        return shout(value).value  # a sync nested op between the awaits of another task

    async def main():
        return await asyncio.gather(fetch(a), fetch(b))

    out_a, out_b = asyncio.run(main())
    assert (out_a.value, out_b.value) == ("A", "B")
    assert go.graph.minimal_subgraph([out_a]).params == [a]
    assert go.graph.minimal_subgraph([out_b]).params == [b]
