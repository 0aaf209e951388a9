"""``mcts``: PromptAgent-style Monte Carlo tree search over prompt states.

As in PromptAgent (Wang et al., ICLR 2024): each tree node is a set of values; an iteration
selects a path from the root by UCT (mean reward plus ``exploration * sqrt(ln N / n)``), expands
the node it reaches with ``width`` children the model writes from the failed runs (error
feedback), scores each child on a minibatch (its reward) and backs the rewards up the path.
Depth is bounded by ``depth``; a node at full depth is re-visited with its own reward. The best
path follows the children with the highest mean reward from the root; the step commits the
node on it with the highest reward.
"""

from __future__ import annotations

import json
import math
import random
from typing import Any, Callable, Mapping

from graphopt.errors import ParamValidationError
from graphopt.graph.node import Param
from graphopt.llm.client import Client
from graphopt.optim import rewrite
from graphopt.optim.evaluation import Evaluation, require_evaluation
from graphopt.optim.objective import distinct_feedback
from graphopt.optim.optimizer import Optimizer, ParamsArg, require_ints
from graphopt.plugins import PluginManager

from graphopt_promptsearch.common import (
    Values, error_request, failures, finite_or_none, from_json_score, mean, rewrite_value, rng_state,
    score_values, set_rng_state,
)


class TreeNode:
    """A prompt state: its values, parent, depth, own minibatch reward, and visit statistics."""

    __slots__ = ("id", "parent", "values", "depth", "reward", "visits", "total")

    def __init__(self, id: int, parent: int | None, values: Values, depth: int, reward: float,
                 visits: int = 0, total: float = 0.0) -> None:
        self.id = id
        self.parent = parent
        self.values = values
        self.depth = depth
        self.reward = reward
        self.visits = visits
        self.total = total

    @property
    def q(self) -> float:
        """Mean reward backed up through this node."""
        return self.total / self.visits if self.visits else -math.inf

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "parent": self.parent, "values": self.values, "depth": self.depth,
                "reward": finite_or_none(self.reward), "visits": self.visits,
                "total": finite_or_none(self.total)}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> TreeNode:
        return cls(int(data["id"]), data["parent"], dict(data["values"]), int(data["depth"]),
                   from_json_score(data["reward"]), int(data["visits"]), from_json_score(data["total"]))


def uct(child: TreeNode, parent_visits: int, exploration: float) -> float:
    """Upper confidence bound of ``child``: its mean reward plus the exploration bonus."""
    if child.visits == 0:
        return math.inf
    return child.q + exploration * math.sqrt(math.log(max(parent_visits, 1)) / child.visits)


class MCTS(rewrite.RewriteClient, Optimizer):
    """Tree search over text and code values, expansions written from failed runs.

    ``step(closure)`` needs feedback on the params (the failures guide expansions) and a closure
    or a trainer's ``Evaluation`` (rewards are mean scores on ``minibatch_size`` of its examples).
    ``iterations``: selections per step. ``width``: children per expansion. ``depth``: the
    deepest node. ``exploration``: the UCT constant (PromptAgent uses 2.5).
    """

    name = "mcts"
    kinds = frozenset({"text", "code"})

    def __init__(self, params: ParamsArg, *, llm: str | Client | None = None, iterations: int = 1,
                 width: int = 2, depth: int = 3, exploration: float = 2.5, minibatch_size: int = 4,
                 max_prompt_chars: int = 6_000, temperature: float = 0.7, max_tokens: int = 512,
                 seed: int = 0, plugin_manager: PluginManager | None = None) -> None:
        require_ints(self.name, {"iterations": (iterations, 1), "width": (width, 1),
                                 "depth": (depth, 1), "minibatch_size": (minibatch_size, 1),
                                 "max_prompt_chars": (max_prompt_chars, 400)})
        if not exploration >= 0:
            raise ValueError(f"optimizer 'mcts': exploration expects a number >= 0, got {exploration!r}")
        super().__init__(params, {}, plugin_manager=plugin_manager)
        self.llm = llm
        self.iterations = iterations
        self.width = width
        self.depth = depth
        self.exploration = exploration
        self.minibatch_size = minibatch_size
        self.max_prompt_chars = max_prompt_chars
        self.temperature = temperature
        self.max_tokens = max_tokens
        self.rng = random.Random(seed)
        self.nodes: list[TreeNode] = []
        self.expansions = 0
        self.dead_ends = 0

    # -- the tree -----------------------------------------------------------------------------
    def children(self, node: TreeNode) -> list[TreeNode]:
        return [n for n in self.nodes if n.parent == node.id]

    def path(self, node: TreeNode) -> list[TreeNode]:
        """From the root down to ``node``."""
        path = [node]
        while path[-1].parent is not None:
            path.append(self.nodes[path[-1].parent])
        return path[::-1]

    def select(self) -> TreeNode:
        """Walk down by UCT until a node that can still grow (or one at full depth)."""
        node = self.nodes[0]
        while node.depth < self.depth:
            children = self.children(node)
            if len(children) < self.width:
                return node
            node = max(children, key=lambda c: (uct(c, node.visits, self.exploration), -c.id))
        return node

    def backup(self, node: TreeNode, reward: float) -> None:
        for member in self.path(node):
            member.visits += 1
            member.total += reward if math.isfinite(reward) else 0.0

    def best_path(self) -> list[TreeNode]:
        """From the root, each time the child with the highest mean reward."""
        if not self.nodes:
            return []
        path = [self.nodes[0]]
        while True:
            children = [c for c in self.children(path[-1]) if c.visits]
            if not children:
                return path
            path.append(max(children, key=lambda c: (c.q, -c.id)))

    def best(self) -> TreeNode:
        """The node on the best path with the highest own reward (the root among equals)."""
        return max(self.best_path(), key=lambda n: (n.reward, -n.id))

    # -- one step -----------------------------------------------------------------------------
    def propose(self, closure: Callable[[], Any] | None = None) -> dict[Param, Any]:
        feedback = distinct_feedback(self.params)
        if not feedback:
            return {}
        evaluation = require_evaluation(self, closure)
        by_name = {n: p for p, n in self.param_names.items()}
        current = {self.param_names[p]: p.value for p in self.params}
        if all(n.values != current for n in self.nodes):
            # A new root: the values in use, which the tree (if any) never reached.
            reward = mean(score_values(evaluation, by_name, current, self._minibatch(evaluation)))
            self.nodes = [TreeNode(0, None, current, 0, reward)]
            self.backup(self.nodes[0], reward)
        errors = failures(feedback)
        for _ in range(self.iterations):
            leaf = self.select()
            if leaf.depth >= self.depth:
                self.backup(leaf, leaf.reward)
                continue
            for child in self._expand(leaf, errors, evaluation, by_name):
                self.backup(child, child.reward)
        best = self.best()
        return {by_name[n]: v for n, v in best.values.items() if v != current[n]}

    def _minibatch(self, evaluation: Evaluation) -> list[int]:
        return sorted(self.rng.sample(range(evaluation.size), min(self.minibatch_size, evaluation.size)))

    def _expand(self, leaf: TreeNode, errors: list[str], evaluation: Evaluation,
                by_name: Mapping[str, Param]) -> list[TreeNode]:
        self.expansions += 1
        grown = []
        known = {_key(n.values) for n in self.nodes}
        for _ in range(self.width - len(self.children(leaf))):
            target = self.rng.choice(self.params)
            name = self.param_names[target]
            request = error_request(target, name, str(leaf.values[name]), errors, [leaf.reward],
                                    max_chars=self.max_prompt_chars)
            values = rewrite_value(self.client, target, name, leaf.values, request=request,
                                   max_tokens=self.max_tokens, temperature=self.temperature,
                                   seed=self.rng.randrange(2**31))
            if values is None or _key(values) in known:
                self.dead_ends += 1  # the slot stays open: a later iteration asks again
                continue
            known.add(_key(values))
            reward = mean(score_values(evaluation, by_name, values, self._minibatch(evaluation)))
            node = TreeNode(len(self.nodes), leaf.id, values, leaf.depth + 1, reward)
            self.nodes.append(node)
            grown.append(node)
        return grown

    # -- state --------------------------------------------------------------------------------
    def extra_state_dict(self) -> dict[str, Any]:
        return {"rng": rng_state(self.rng), "expansions": self.expansions,
                "dead_ends": self.dead_ends,
                "nodes": [n.to_json() for n in self.nodes],
                "best_path": [n.id for n in self.best_path()]}

    def check_extra_state_dict(self, data: Mapping[str, Any]) -> None:
        names = set(self.param_names.values())
        for node in data.get("nodes", []):
            if set(node.get("values", {})) != names:
                raise ParamValidationError(f"optimizer 'mcts': tree node {node.get('id')!r} has params "
                                           f"{sorted(node.get('values', {}))}, expected {sorted(names)}")

    def load_extra_state_dict(self, data: Mapping[str, Any]) -> None:
        set_rng_state(self.rng, data["rng"])
        self.expansions = int(data["expansions"])
        self.dead_ends = int(data["dead_ends"])
        self.nodes = [TreeNode.from_json(n) for n in data["nodes"]]


def _key(values: Values) -> str:
    return json.dumps(values, sort_keys=True, default=str)
