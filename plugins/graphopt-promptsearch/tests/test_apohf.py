"""``apohf``: preferences only, dueling-bandit pairs, a Bradley–Terry model that learns them."""

from __future__ import annotations

import itertools

import pytest

import graphopt as go
from graphopt.llm.scripted import scripted_client
from graphopt_promptsearch import PreferenceModel


def quoted(messages) -> str:
    return messages[-1]["content"].split("```", 2)[1].split("\n", 1)[1].rstrip("\n")


def polite_or_rude():
    """Rewrites alternate: the leader plus ' please', then the leader plus ' now!'."""
    words = itertools.cycle(["please", "now!"])
    return scripted_client(lambda messages, params: f"```text\n{quoted(messages)} {next(words)}\n```")


def prefers_please(first, second) -> float:
    a, b = first.count("please"), second.count("please")
    return 0.5 if a == b else float(a > b)


def test_preference_model_learns_a_planted_preference():
    model = PreferenceModel()
    candidates = {0: {"p": "Reply please"}, 1: {"p": "Reply now"}, 2: {"p": "Answer kindly please"},
                  3: {"p": "Answer now"}}
    duels = [(0, 1, 1.0), (2, 3, 1.0), (3, 0, 0.0), (1, 2, 0.0), (0, 3, 1.0), (2, 1, 1.0)]
    model.fit(candidates, duels)
    utilities = [model.utility(v, i) for i, v in candidates.items()]
    assert min(utilities[0], utilities[2]) > max(utilities[1], utilities[3])
    # never seen, told apart by the word it learnt
    assert model.probability({"p": "Write please"}, {"p": "Write now"}) > 0.6


def test_apohf_learns_the_judges_preference_and_commits_the_leader():
    system = go.param("Reply", name="system")
    calls = []

    def judge(first, second):
        calls.append((first, second))
        return go.Feedback(preference=prefers_please(first, second))

    opt = go.optimizer("apohf", [system], llm=polite_or_rude(), judge=judge, duels=2, seed=0)
    for _ in range(6):
        opt.step(lambda: [f"{system.value}: hello"])
    assert "please" in system.value and "now!" not in system.value
    assert len(opt.judgements) == len(calls) == 12
    leader = opt.leader()
    assert opt.candidates[leader] == {"system": system.value}
    assert opt.wins()[leader] == max(opt.wins())
    rude = [i for i, c in enumerate(opt.candidates) if "now!" in c["system"]]
    assert rude and all(opt.utilities()[i] < opt.utilities()[leader] for i in rude)
    assert opt.model.probability({"system": "Reply please"}, {"system": "Reply now!"}) > 0.5


def test_the_second_of_a_pair_is_the_most_optimistic_challenger():
    system = go.param("Reply", name="system")
    opt = go.optimizer("apohf", [system], llm=polite_or_rude(), judge=prefers_please,
                       exploration=10.0, seed=0)
    opt.candidates = [{"system": "a"}, {"system": "b"}, {"system": "c"}]
    opt.judgements = [(0, 1, 0.5), (0, 1, 0.5)]
    opt._refit()
    first, second = opt.choose_pair()
    assert second == 2 and first != 2       # never compared: the largest bonus


def test_the_judge_sees_the_same_input_from_both_candidates():
    system = go.param("Reply", name="system")
    seen = []
    opt = go.optimizer("apohf", [system], llm=polite_or_rude(),
                       judge=lambda a, b: seen.append((a, b)) or 0.5, seed=3)
    opt.step(lambda: [f"{system.value} | q{i}" for i in range(5)])
    (first, second), = seen
    assert first.split(" | ")[1] == second.split(" | ")[1] and first != second


def test_pool_is_capped_and_state_rebuilds_the_model():
    system = go.param("Reply", name="system")
    opt = go.optimizer("apohf", [system], llm=polite_or_rude(), judge=prefers_please, max_pool=3, seed=0)
    for _ in range(5):
        opt.step(lambda: [system.value])
    assert len(opt.candidates) == 3
    other = go.optimizer("apohf", [go.param("Reply", name="system")], llm=polite_or_rude(),
                         judge=prefers_please, max_pool=3, seed=0)
    other.load_state_dict(opt.state_dict())
    assert other.utilities() == opt.utilities()
    bad = opt.state_dict()
    bad["extra"]["judgements"].append([0, 7, 1.0])
    with pytest.raises(go.ParamValidationError, match="judgement"):
        other.load_state_dict(bad)


def test_options_are_checked():
    system = go.param("Reply", name="system")
    with pytest.raises(ValueError, match="judge"):
        go.optimizer("apohf", [system], judge="human")
    with pytest.raises(ValueError, match="max_pool"):
        go.optimizer("apohf", [system], max_pool=1)
