"""``gepa``: Pareto parent selection, reflective mutation behind a minibatch gate, merges, budget."""

from __future__ import annotations

import json
import random
from typing import Any, Callable, Mapping, Sequence

import pytest

import graphopt as go
from graphopt import testing
from graphopt.graph.node import Param
from graphopt.llm.scripted import scripted_client
from graphopt.optim.gepa import Candidate, merge_values, pareto_frontier, select_parent


class TableEvaluation:
    """Scores candidate values by ``score(values, example)``; counts every example scored."""

    def __init__(self, score: Callable[[dict[str, Any], int], float], size: int = 4) -> None:
        self.score = score
        self.size = size
        self.scored: list[tuple[str, int]] = []

    def __call__(self) -> go.Feedback:
        return go.Feedback(score=0.0)

    def scores(self, values: Mapping[Param, Any], indices: Sequence[int]) -> list[float]:
        named = {p.name: v for p, v in values.items()}
        self.scored.extend((json.dumps(named, sort_keys=True), i) for i in indices)
        return [self.score(named, i) for i in indices]


@go.op
def answer(system: str, question: str) -> str:
    """Answers the question following the system prompt."""
    return f"{system} -> {question}"


def fence(text: str) -> str:
    return f"```text\n{text}\n```"


def quoted(messages: list[dict]) -> str:
    """The value a rewrite request quotes as current (its first fenced block)."""
    return messages[-1]["content"].split("```", 2)[1].split("\n", 1)[1].rstrip("\n")


def feed(*params: Param, text: str = "wrong answer") -> None:
    go.backward(answer(params[0], "What is 2+2?"), go.Feedback(score=0.0, text=text))


# -- the Pareto frontier ------------------------------------------------------------------------
def test_pareto_frontier_keeps_specialists_and_drops_the_dominated():
    specialist_a = [1.0, 1.0, 0.0, 0.0]
    specialist_b = [0.0, 0.0, 1.0, 1.0]
    generalist = [0.6, 0.6, 0.6, 0.6]      # best mean, but best on no example
    dominated = [1.0, 0.0, 0.0, 0.0]       # every front it is on also holds specialist_a
    counts = pareto_frontier([specialist_a, specialist_b, generalist, dominated])
    assert counts == {0: 2, 1: 2}


def test_pareto_selection_picks_specialists_and_current_best_the_generalist():
    pool = [Candidate(0, {"p": "a"}, [], "seed", 0, [1.0, 1.0, 0.0, 0.0]),
            Candidate(1, {"p": "b"}, [], "mutation:p", 0, [0.0, 0.0, 1.0, 1.0]),
            Candidate(2, {"p": "c"}, [], "mutation:p", 0, [0.6, 0.6, 0.6, 0.6])]
    rng = random.Random(0)
    chosen = {select_parent(pool, "pareto", rng).id for _ in range(50)}
    assert chosen == {0, 1}
    assert select_parent(pool, "current_best", rng).id == 2
    greedy = [select_parent(pool, "epsilon_greedy", rng, epsilon=0.5).id for _ in range(200)]
    assert greedy.count(2) > 100 and {0, 1} <= set(greedy)


def test_merge_takes_each_param_from_the_descendant_that_changed_it():
    ancestor = {"system": "S", "format": "F", "tone": "T"}
    first = {"system": "S2", "format": "F", "tone": "T1"}
    second = {"system": "S", "format": "F2", "tone": "T2"}
    assert merge_values(ancestor, first, second, prefer_first=True) == \
        {"system": "S2", "format": "F2", "tone": "T1"}
    assert merge_values(ancestor, first, second, prefer_first=False)["tone"] == "T2"


# -- reflective mutation ------------------------------------------------------------------------
def test_mutation_is_kept_only_when_it_beats_its_parent_on_the_minibatch():
    system = go.param("Answer.", name="system")
    replies = iter(["Answer tersely.", "Answer step by step."])
    client = scripted_client(lambda messages, params: fence(next(replies)))
    opt = go.optimizer("gepa", [system], llm=client, iterations=2, minibatch_size=4, seed=0)
    feed(system)
    evaluation = TableEvaluation(lambda v, i: float("step by step" in v["system"]))
    committed = opt.step(evaluation)
    assert committed == {"system": "Answer step by step."}
    assert [c.values["system"] for c in opt.pool] == ["Answer.", "Answer step by step."]
    assert opt.last_step["accepted"] == [1] and opt.last_step["rejected"] == 1
    # seed on 4 examples, the rejected child on its minibatch (4), the kept one on 4: each once.
    assert len(evaluation.scored) == len(set(evaluation.scored)) == 12 == opt.evaluations


def test_reflection_prompt_shows_the_traced_run_its_feedback_and_minibatch_scores():
    system = go.param("Answer.", name="system")
    client = scripted_client(lambda messages, params: fence("Answer with a number."))
    opt = go.optimizer("gepa", [system], llm=client, minibatch_size=2, seed=0)
    feed(system, text="expected 4, got a sentence")
    opt.step(TableEvaluation(lambda v, i: 0.0))
    prompt = client.backend.prompts()[0]
    assert quoted(client.backend.calls[0][0]) == "Answer."
    assert "expected 4, got a sentence" in prompt
    assert "answer(" in prompt and "What is 2+2?" in prompt     # the traced op and its input
    assert "Scores of this candidate on a minibatch" in prompt and "example" in prompt


def test_prompt_stays_within_its_character_budget():
    system = go.param("Answer. " * 400, name="system")
    client = scripted_client(lambda messages, params: fence("Short."))
    opt = go.optimizer("gepa", [system], llm=client, max_prompt_tokens=400, seed=0)
    for _ in range(5):
        feed(system, text="wrong " * 300)
    opt.step(TableEvaluation(lambda v, i: 0.0))
    assert len(client.backend.prompts()[0]) <= 400 * 4 + 200


def test_params_are_rewritten_round_robin_per_candidate():
    system = go.param("S", name="system")
    style = go.param("F", name="style")
    asked: list[str] = []

    def handler(messages, params):
        content = messages[-1]["content"]
        asked.append("system" if "text 'system'" in content else "style")
        return fence(quoted(messages) + "+")

    opt = go.optimizer("gepa", [system, style], llm=handler and scripted_client(handler),
                       iterations=2, selection="current_best", merge=False, minibatch_size=2, seed=0)
    feed(system, style)
    opt.step(TableEvaluation(lambda v, i: 0.0))   # no child improves: the seed is parent twice
    assert asked == ["system", "style"]


def test_scaffolding_echoes_are_refused_before_any_evaluation():
    system = go.param("Answer.", name="system")
    replies = iter(["Traced runs (with the values in use when they ran)", "system", "Answer.",
                    "Answer in digits."])
    client = scripted_client(lambda messages, params: fence(next(replies)))
    opt = go.optimizer("gepa", [system], llm=client, iterations=4, minibatch_size=2, seed=0)
    feed(system)
    evaluation = TableEvaluation(lambda v, i: float("digits" in v["system"]))
    opt.step(evaluation)
    assert len(opt.last_step["refused"]) == 3
    assert {values for values, _ in evaluation.scored} == {'{"system": "Answer."}',
                                                           '{"system": "Answer in digits."}'}
    assert system.value == "Answer in digits."


# -- merge --------------------------------------------------------------------------------------
def score_two_params(values: dict[str, Any], example: int) -> float:
    """Examples 0-1 reward system 'S2', examples 2-3 reward format 'F2'."""
    if example < 2:
        return 1.0 if values["system"] == "S2" else 0.5
    return 1.0 if values["format"] == "F2" else 0.5


def test_merge_combines_two_specialists_from_a_common_ancestor():
    system, fmt = go.param("S", name="system"), go.param("F", name="format")
    client = scripted_client(lambda messages, params: pytest.fail("a merge needs no model"))
    opt = go.optimizer("gepa", [system, fmt], llm=client, minibatch_size=4, seed=0)
    state = opt.state_dict()
    pool = [Candidate(0, {"system": "S", "format": "F"}, [], "seed", 0, [0.5] * 4),
            Candidate(1, {"system": "S2", "format": "F"}, [0], "mutation:system", 0, [1, 1, .5, .5]),
            Candidate(2, {"system": "S", "format": "F2"}, [0], "mutation:format", 0, [.5, .5, 1, 1])]
    state["extra"].update(val_size=4, merges_due=1, pool=[c.to_json() for c in pool])
    opt.load_state_dict(state)
    assert opt.merge_pairs() == [(1, 2, 0)]
    feed(system, fmt)
    committed = opt.step(TableEvaluation(score_two_params))
    merged = opt.pool[-1]
    assert (merged.origin, merged.parents, merged.scores) == ("merge", [1, 2], [1.0] * 4)
    assert committed == {"system": "S2", "format": "F2"}
    assert opt.last_step["merges"] == 1


def test_mutations_then_merge_end_to_end():
    # The model improves one parameter at a time but never both from one parent: only a merge
    # reaches the candidate that is best everywhere.
    system, fmt = go.param("S", name="system"), go.param("F", name="format")

    def handler(messages, params):
        content = messages[-1]["content"]
        current = quoted(messages)
        if "text 'system'" in content:
            return fence("S2" if "format = 'F2'" not in content else current + " again")
        return fence("F2" if "system = 'S2'" not in content else current + " again")

    def score(values, example):
        # 'S2' costs a little on examples 2-3, so the seed stays on their front beside it.
        return score_two_params(values, example) - (0.1 if example >= 2 and values["system"] == "S2" else 0)

    opt = go.optimizer("gepa", [system, fmt], llm=scripted_client(handler), iterations=8,
                       minibatch_size=4, seed=1)
    feed(system, fmt)
    opt.step(TableEvaluation(score))
    origins = {c.origin for c in opt.pool}
    assert {"mutation:system", "mutation:format", "merge"} <= origins
    assert (system.value, fmt.value) == ("S2", "F2")
    best = next(item for item in opt.lineage() if item["best"])
    assert best["origin"] == "merge" and best["score"] == pytest.approx(0.95)


# -- budget, surrogate, state -------------------------------------------------------------------
def test_max_evaluations_stops_the_search():
    system = go.param("Answer.", name="system")
    counter = iter(range(1000))
    client = scripted_client(lambda messages, params: fence(f"Answer {next(counter)}."))
    opt = go.optimizer("gepa", [system], llm=client, iterations=50, minibatch_size=2,
                       max_evaluations=20, seed=0)
    feed(system)
    opt.step(TableEvaluation(lambda v, i: float(len(v["system"]) % 3)))
    assert opt.evaluations <= 20
    assert "budget" in opt.last_step["reason"]
    spent = opt.evaluations
    opt.zero_feedback()
    feed(system)
    opt.step(TableEvaluation(lambda v, i: float(len(v["system"]) % 3)))
    assert opt.evaluations == spent


def test_surrogate_screens_proposals_and_reports_its_hit_rate():
    counter = iter(range(10_000))

    def handler(messages, params):
        word = "carefully" if next(counter) % 2 else "loosely"
        return fence(f"{quoted(messages)} {word}")

    def score(values, example):
        return float(values["system"].count("carefully") - values["system"].count("loosely"))

    def run(surrogate):
        system = go.param("Answer", name="system")
        opt = go.optimizer("gepa", [system], llm=scripted_client(handler), iterations=6,
                           minibatch_size=2, surrogate=surrogate, proposals=4, merge=False, seed=0)
        if surrogate:  # the planted feature, as earlier steps would have taught it
            for n in range(3):
                opt.surrogate.observe({"system": f"Answer{' carefully' * n}"}, float(n))
                opt.surrogate.observe({"system": f"Answer{' loosely' * n}"}, float(-n))
        feed(system)
        opt.step(TableEvaluation(score))
        return opt

    screened = run({"min_observations": 2})
    stats = screened.surrogate.stats()
    assert stats["let_through"] == 6 and stats["screened_out"] >= 6
    assert stats["hit_rate"] == 1.0
    assert screened.best().values["system"] == "Answer" + " carefully" * 6
    plain = run(False)
    assert plain.best().mean < screened.best().mean


def test_state_dict_holds_pool_frontier_and_lineage_and_round_trips():
    system = go.param("Answer.", name="system")
    client = scripted_client(lambda messages, params: fence("Answer step by step."))
    opt = go.optimizer("gepa", [system], llm=client, minibatch_size=4, seed=0, surrogate=True)
    feed(system)
    opt.step(TableEvaluation(lambda v, i: float("step" in v["system"])))
    extra = json.loads(json.dumps(opt.state_dict()))["extra"]
    assert [m["values"]["system"] for m in extra["pool"]] == ["Answer.", "Answer step by step."]
    assert extra["pool"][1]["parents"] == [0] and extra["frontier"] == {"1": 4}
    assert extra["surrogate"]["observations"]
    other = go.optimizer("gepa", [go.param("Answer.", name="system")], llm=client, seed=0,
                         surrogate=True)
    other.load_state_dict(opt.state_dict())
    assert other.state_dict() == opt.state_dict()
    assert other.lineage()[1]["parents"] == [0]


def test_loading_a_pool_for_other_params_is_refused():
    opt = go.optimizer("gepa", [go.param("A", name="system")], llm=scripted_client(lambda m, p: ""))
    state = opt.state_dict()
    state["extra"]["pool"] = [{"id": 0, "values": {"other": "x"}, "parents": [], "origin": "seed",
                               "step": 0, "scores": [], "next_param": 0}]
    with pytest.raises(go.ParamValidationError, match="pool member 0"):
        opt.load_state_dict(state)


def test_options_are_checked():
    system = go.param("A", name="system")
    with pytest.raises(ValueError, match="selection"):
        go.optimizer("gepa", [system], selection="best")
    with pytest.raises(ValueError, match="minibatch_size"):
        go.optimizer("gepa", [system], minibatch_size=0)
    with pytest.raises(ValueError, match="surrogate"):
        go.optimizer("gepa", [system], surrogate="yes")


@pytest.mark.parametrize("check", [testing.check_kinds, testing.check_state_dict_round_trip,
                                   testing.check_step_without_feedback,
                                   testing.check_all_or_nothing_commit], ids=lambda c: c.__name__)
@pytest.mark.parametrize("surrogate", [False, True])
def test_gepa_passes_the_conformance_kit(check, surrogate):
    def revise(messages, params):
        return f"```python\n{quoted(messages)}\n# revised\n```"

    check("gepa", config={"llm": scripted_client(revise), "seed": 0, "surrogate": surrogate},
          plugin_manager=testing.default_plugin_manager())


def test_gepa_in_the_trainer_scores_on_validation_and_keeps_lineage():
    system = go.param("Answer.", name="system")

    @go.op
    def classify(system: str, text: str) -> str:
        if "sentiment" in system:
            return "pos" if "good" in text else "neg"
        return "pos"

    data = [{"text": t, "target": y} for t, y in
            (("good film", "pos"), ("bad film", "neg"), ("good day", "pos"), ("bad day", "neg"))]
    client = scripted_client(lambda messages, params: fence("Classify the sentiment."))
    opt = go.optimizer("gepa", [system], llm=client, minibatch_size=2, seed=0, surrogate=True)
    result = go.optimize(lambda text: classify(system, text), data, val=data, optimizers=opt,
                         metric=lambda example, prediction: float(prediction == example.target),
                         batch_size=2, quiet=True)
    assert (result.initial_score, result.best_score) == (0.5, 1.0)
    assert system.value == "Classify the sentiment."
    assert [(item["origin"], item["parents"], item["score"]) for item in opt.lineage()] == [
        ("seed", [], 0.5), ("mutation:system", [0], 1.0)]
    # too few candidates scored for the surrogate to choose: it learns, screens nothing
    assert opt.surrogate.stats() == {"observations": 2, "screened_out": 0, "let_through": 0,
                                     "hits": 0, "hit_rate": None}
