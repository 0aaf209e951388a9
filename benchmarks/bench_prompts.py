"""optoprime prompt size and build time on chains of 10, 100, 1,000 and 10,000 ops.

The prompt is built from the feedback of one ``backward`` (as a step builds it) with the default
budget of 2,000 tokens (8,000 characters, spent first on the variables, their feedback and the
ops nearest to them); no model is called. Measured here: 1,170 / 5,130 / 7,109 / 7,099
characters at 10 / 100 / 1,000 / 10,000 ops (14,905 at 1,000 ops and up with the earlier
4,000-token default). Each case records the prompt's characters in
``extra_info``, so ``make bench`` shows that size stays flat while the graph grows a thousandfold.
For comparison (measured once, outside this repository, on the same chain shape): Trace's
OptoPrime prompt takes 3,253 / 8,666 / 68,170 / 214,616 / 706,069 characters at 10 / 100 /
1,000 / 3,000 / 10,000 ops.
"""

from __future__ import annotations

import pytest

import graphopt as go
from graphopt.llm.scripted import follow_schema, scripted_client

SIZES = [10, 100, 1_000, 10_000]


def chain_with_feedback(length: int) -> go.Param:
    start = go.param(0, name="start", space=go.Int(0, 1_000_000), description="the start value")
    node = start
    for _ in range(length):
        node = node + 1
    go.backward(node, "The output should be larger.")
    return start


@pytest.mark.parametrize("length", SIZES)
def test_optoprime_prompt(benchmark, length):
    start = chain_with_feedback(length)
    opt = go.optimizer("optoprime", [start], llm=scripted_client(follow_schema))
    messages = benchmark(opt.prompt)
    characters = sum(len(m["content"]) for m in messages)
    benchmark.extra_info["ops"] = length
    benchmark.extra_info["prompt_chars"] = characters
    assert characters <= opt.max_prompt_tokens * 4
