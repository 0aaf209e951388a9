"""The surrogate: hashed n-gram features, ridge regression, screening and its hit rate."""

from __future__ import annotations

import json
import random

import pytest

from graphopt.optim.surrogate import Surrogate, dot, features, make_surrogate

WORDS = ["answer", "the", "question", "briefly", "clearly", "politely", "with", "care", "now",
         "please", "reply", "user", "always", "short", "facts"]


def prompt(rng: random.Random, planted: bool) -> str:
    words = rng.sample(WORDS, 6)
    if planted:
        words.insert(rng.randrange(len(words) + 1), "step by step")
    return " ".join(words)


def test_features_are_stable_normalized_and_keep_params_apart():
    one = features({"system": "Answer step by step."})
    assert one == features({"system": "Answer step by step."})
    assert dot(one, one) == pytest.approx(1.0)
    assert dot(one, features({"other": "Answer step by step."})) == pytest.approx(0.0, abs=0.05)
    # crc32, not Python's salted hash: the same keys in any process
    assert sorted(one) == sorted(features(json.loads(json.dumps({"system": "Answer step by step."}))))


def test_surrogate_ranks_a_planted_feature_first():
    rng = random.Random(0)
    surrogate = Surrogate(alpha=0.5)
    for index in range(30):
        planted = index % 2 == 0
        surrogate.observe({"system": prompt(rng, planted)}, (1.0 if planted else 0.0) + rng.gauss(0, 0.1))
    fresh = [{"system": prompt(rng, planted)} for planted in (False, True, False, False, True, False)]
    ranked = surrogate.rank(fresh)
    assert set(ranked[:2]) == {1, 4}
    assert surrogate.predict(fresh[1]) > 0.5 > surrogate.predict(fresh[0])


def test_surrogate_does_not_screen_before_it_knows_enough():
    surrogate = Surrogate(min_observations=3)
    surrogate.observe({"p": "a"}, 1.0)
    assert surrogate.predict({"p": "a"}) is None
    assert surrogate.screen([{"p": "x"}, {"p": "y"}, {"p": "z"}], keep=1) == [0, 1, 2]
    assert surrogate.stats()["screened_out"] == 0


def test_screen_counts_and_hit_rate():
    surrogate = Surrogate(min_observations=2)
    surrogate.observe({"p": "good good"}, 1.0)
    surrogate.observe({"p": "bad bad"}, 0.0)
    kept = surrogate.screen([{"p": "bad"}, {"p": "good"}, {"p": "bad again"}], keep=1)
    assert kept == [1]
    surrogate.record(True)
    surrogate.record(False)
    assert surrogate.stats() == {"observations": 2, "screened_out": 2, "let_through": 2, "hits": 1,
                                 "hit_rate": 0.5}


def test_non_finite_scores_are_not_learnt_and_old_observations_roll_off():
    surrogate = Surrogate(max_observations=3)
    surrogate.observe({"p": "x"}, float("nan"))
    for n in range(5):
        surrogate.observe({"p": str(n)}, float(n))
    assert [v["p"] for v, _ in surrogate.observations] == ["2", "3", "4"]


def test_state_round_trips_and_predicts_the_same():
    surrogate = Surrogate(min_observations=2)
    for n in range(5):
        surrogate.observe({"p": "word " * n}, float(n))
    surrogate.record(True)
    copy = Surrogate(min_observations=2)
    copy.load_state_dict(json.loads(json.dumps(surrogate.state_dict())))
    assert copy.state_dict() == surrogate.state_dict()
    assert copy.predict({"p": "word word"}) == surrogate.predict({"p": "word word"})
    with pytest.raises(ValueError, match="observation"):
        copy.load_state_dict({"observations": [["not a dict", 1.0]]})


def test_options_are_checked():
    with pytest.raises(ValueError, match="alpha"):
        Surrogate(alpha=0)
    with pytest.raises(ValueError, match="min_observations"):
        Surrogate(min_observations=0)
    assert make_surrogate(False, "gepa") is None
    assert make_surrogate({"alpha": 2.0}, "gepa").alpha == 2.0
    with pytest.raises(ValueError, match="optimizer 'gepa': surrogate"):
        make_surrogate(3, "gepa")


# -- the surrogate option of evolution ----------------------------------------------------------
class TableEvaluation:
    """Scores values by a function of them; records the values asked about."""

    def __init__(self, score, size: int = 4) -> None:
        self.score = score
        self.size = size
        self.asked: list[str] = []

    def __call__(self):
        import graphopt as go

        return go.Feedback(score=0.0)

    def scores(self, values, indices):
        named = {p.name: v for p, v in values.items()}
        self.asked.append(named["system"])
        return [self.score(named) for _ in indices]


def alternating_rewrites():
    from graphopt.llm.scripted import scripted_client

    count = iter(range(10_000))

    def reply(messages, params):
        quoted = messages[-1]["content"].split("```", 2)[1].split("\n", 1)[1].rstrip("\n")
        return f"```text\n{quoted} {'carefully' if next(count) % 2 else 'loosely'}\n```"

    return scripted_client(reply)


def planted(values) -> float:
    return float(values["system"].count("carefully") - values["system"].count("loosely"))


def test_evolution_races_only_the_best_predicted_children():
    import graphopt as go

    system = go.param("Answer", name="system")
    opt = go.optimizer("evolution", [system], llm=alternating_rewrites(), offspring=2, population=2,
                       crossover_rate=0.0, surrogate={"min_observations": 2}, seed=0)
    for n in range(1, 3):
        opt.surrogate.observe({"system": "Answer" + " carefully" * n}, float(n))
        opt.surrogate.observe({"system": "Answer" + " loosely" * n}, float(-n))
    evaluation = TableEvaluation(planted)
    opt.step(evaluation)
    # four children bred (two of each kind, all from "Answer"), the two "carefully" ones raced
    assert set(evaluation.asked) == {"Answer", "Answer carefully"}
    stats = opt.surrogate.stats()
    assert (stats["screened_out"], stats["let_through"], stats["hits"]) == (2, 2, 2)
    assert stats["observations"] == 4 + 2          # every raced candidate was learnt from
    saved = opt.state_dict()["extra"]["surrogate"]
    other = go.optimizer("evolution", [go.param("Answer", name="system")], llm=alternating_rewrites(),
                         surrogate=True)
    other.load_state_dict(opt.state_dict())
    assert other.surrogate.state_dict() == saved


def test_evolution_without_enough_observations_breeds_as_usual():
    import graphopt as go

    system = go.param("Answer", name="system")
    client = alternating_rewrites()
    opt = go.optimizer("evolution", [system], llm=client, offspring=2, crossover_rate=0.0,
                       surrogate=True, seed=0)
    opt.step(TableEvaluation(planted))
    assert len(client.backend.calls) == 2          # no second brood
    assert opt.surrogate.stats()["let_through"] == 0 and opt.surrogate.stats()["observations"] == 3


def test_evolution_with_a_surrogate_passes_the_conformance_kit():
    from graphopt import testing
    from graphopt.llm.scripted import scripted_client

    def revise(messages, params):
        quoted = messages[-1]["content"].split("```", 2)[1].split("\n", 1)[1]
        return f"```python\n{quoted.rstrip()}\n# revised\n```"

    testing.check_optimizer("evolution", config={"llm": scripted_client(revise), "seed": 0,
                                                 "surrogate": {"min_observations": 2}},
                            plugin_manager=testing.default_plugin_manager())
