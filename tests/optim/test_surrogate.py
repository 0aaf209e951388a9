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
