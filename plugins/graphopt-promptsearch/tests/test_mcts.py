"""``mcts``: UCT selection, error-driven expansions, depth and width limits, the best path."""

from __future__ import annotations

import itertools
from typing import Any, Mapping, Sequence

import pytest

import graphopt as go
from graphopt.graph.node import Param
from graphopt.llm.scripted import scripted_client
from graphopt_promptsearch.mcts import TreeNode, uct


class TableEvaluation:
    def __init__(self, score, size: int = 4) -> None:
        self.score = score
        self.size = size

    def __call__(self) -> go.Feedback:
        return go.Feedback(score=0.0)

    def scores(self, values: Mapping[Param, Any], indices: Sequence[int]) -> list[float]:
        named = {p.name: v for p, v in values.items()}
        return [self.score(named, i) for i in indices]


@go.op
def answer(system: str, question: str) -> str:
    return f"{system} -> {question}"


def quoted(messages) -> str:
    return messages[-1]["content"].split("```", 2)[1].split("\n", 1)[1].rstrip("\n")


def good_then_bad():
    """A model whose rewrites alternate: the quoted value plus ' good', then plus ' bad'."""
    words = itertools.cycle(["good", "bad"])
    return scripted_client(lambda messages, params: f"```text\n{quoted(messages)} {next(words)}\n```")


def reward(values, example) -> float:
    text = values["system"]
    return float(text.count("good") - text.count("bad"))


def test_uct_prefers_unvisited_then_balances_reward_and_exploration():
    fresh = TreeNode(1, 0, {}, 1, 0.0)
    assert uct(fresh, 10, 1.0) == float("inf")
    strong = TreeNode(2, 0, {}, 1, 1.0, visits=5, total=5.0)
    weak = TreeNode(3, 0, {}, 1, 0.0, visits=1, total=0.0)
    assert uct(weak, 6, 0.0) < uct(strong, 6, 0.0)
    assert uct(weak, 6, 2.0) > uct(strong, 6, 2.0)


def test_search_visits_the_rewarding_branch_most_and_returns_its_path():
    system = go.param("Answer", name="system")
    opt = go.optimizer("mcts", [system], llm=good_then_bad(), iterations=6, width=2, depth=3,
                       exploration=1.0, seed=0)
    go.backward(answer(system, "2+2?"), go.Feedback(score=0.0, text="expected 4"))
    committed = opt.step(TableEvaluation(reward))
    root = opt.nodes[0]
    good, bad = opt.children(root)
    assert (good.values["system"], bad.values["system"]) == ("Answer good", "Answer bad")
    assert good.visits > bad.visits >= 1
    assert all(len(opt.children(n)) <= 2 and n.depth <= 3 for n in opt.nodes)
    path = [n.values["system"] for n in opt.best_path()]
    assert path[:3] == ["Answer", "Answer good", "Answer good good"]
    assert committed == {"system": opt.best().values["system"]}
    assert opt.best().reward == max(n.reward for n in opt.best_path())
    assert "good good" in system.value


def test_visits_add_up_along_paths():
    system = go.param("Answer", name="system")
    opt = go.optimizer("mcts", [system], llm=good_then_bad(), iterations=4, width=2, depth=2,
                       exploration=1.0, seed=0)
    go.backward(answer(system, "2+2?"), go.Feedback(score=0.0, text="expected 4"))
    opt.step(TableEvaluation(reward))
    assert len(opt.nodes) > 3
    for node in opt.nodes:
        children = opt.children(node)
        if children:
            # its own first backup, then one for every reward backed up through a child
            # (only childless nodes at full depth are revisited on their own)
            assert node.visits == 1 + sum(c.visits for c in children)


def test_expansions_are_written_from_failed_runs():
    system = go.param("Answer", name="system")
    client = good_then_bad()
    opt = go.optimizer("mcts", [system], llm=client, iterations=1, width=1, seed=0)
    go.backward(answer(system, "2+2?"), go.Feedback(score=0.0, text="expected 4, got words"))
    go.backward(answer(system, "3+3?"), go.Feedback(score=1.0))
    opt.step(TableEvaluation(reward))
    prompt = client.backend.prompts()[0]
    assert "These runs went wrong" in prompt
    assert prompt.index("expected 4, got words") < prompt.index("score=1")


def test_depth_limit_stops_growth_and_revisits_leaves():
    system = go.param("Answer", name="system")
    opt = go.optimizer("mcts", [system], llm=good_then_bad(), iterations=10, width=1, depth=2, seed=0)
    go.backward(answer(system, "2+2?"), go.Feedback(score=0.0, text="wrong"))
    opt.step(TableEvaluation(reward))
    assert max(n.depth for n in opt.nodes) == 2 and len(opt.nodes) == 3
    assert opt.nodes[-1].visits == 9   # expanded once, then selected again every iteration


def test_a_step_continues_the_tree_of_the_committed_node():
    system = go.param("Answer", name="system")
    opt = go.optimizer("mcts", [system], llm=good_then_bad(), iterations=2, width=2, seed=0)
    for _ in range(2):
        go.backward(answer(system, "2+2?"), go.Feedback(score=0.0, text="wrong"))
        opt.step(TableEvaluation(reward))
        opt.zero_feedback()
    assert opt.nodes[0].values == {"system": "Answer"} and len(opt.nodes) > 3


def test_options_are_checked():
    with pytest.raises(ValueError, match="width"):
        go.optimizer("mcts", [go.param("A", name="system")], width=0)
    with pytest.raises(ValueError, match="exploration"):
        go.optimizer("mcts", [go.param("A", name="system")], exploration=-1.0)


def test_scaffolding_echoes_are_dead_ends_never_scored():
    system = go.param("Answer", name="system")
    replies = iter(["These runs went wrong:", "system", "Answer", "Answer in digits"])
    client = scripted_client(lambda messages, params: f"```text\n{next(replies)}\n```")
    scored = []
    opt = go.optimizer("mcts", [system], llm=client, iterations=4, width=1, depth=1, seed=0)
    go.backward(answer(system, "2+2?"), go.Feedback(score=0.0, text="expected 4"))
    opt.step(TableEvaluation(lambda values, i: scored.append(values["system"]) or 0.0))
    assert opt.dead_ends == 3
    assert set(scored) == {"Answer", "Answer in digits"}
