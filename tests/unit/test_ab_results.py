"""The Beta-Binomial comparison of an A/B test's variants, and its stop rule."""

from __future__ import annotations

import random

import pytest

from application.ab_results import VariantCounts, probability_best, standing
from domain.variants import AbTest


def test_variants_with_equal_results_are_each_best_with_equal_probability() -> None:
    for n in (2, 3, 5, 10):
        best = probability_best([(30, 300)] * n)
        assert best == pytest.approx([1 / n] * n, abs=1e-6)


def test_variants_with_no_sends_are_each_best_with_equal_probability() -> None:
    assert probability_best([(0, 0), (0, 0)]) == pytest.approx([0.5, 0.5], abs=1e-6)


def test_a_clearly_better_variant_is_almost_surely_the_best() -> None:
    best = probability_best([(40, 200), (80, 200)])
    assert best[1] > 0.99
    assert sum(best) == pytest.approx(1)


def test_more_evidence_makes_the_better_variant_more_surely_best() -> None:
    small = probability_best([(2, 10), (4, 10)])[1]
    large = probability_best([(20, 100), (40, 100)])[1]
    assert 0.5 < small < large


def test_the_probabilities_agree_with_seeded_sampling_of_the_posteriors() -> None:
    # Narrow and wide posteriors together: the grid must resolve both.
    trials = [(500, 10_000), (52, 1000), (3, 40)]
    draws = 200_000
    rng = random.Random(19)
    wins = [0, 0, 0]
    for _ in range(draws):
        sample = [rng.betavariate(1 + s, 1 + n - s) for s, n in trials]
        wins[sample.index(max(sample))] += 1
    sampled = [w / draws for w in wins]
    # Sampling's own standard error is below 0.0012 here; four of them.
    assert probability_best(trials) == pytest.approx(sampled, abs=0.005)


def test_the_answer_is_the_same_on_every_call() -> None:
    trials = [(17, 150), (25, 160), (21, 149)]
    assert probability_best(trials) == probability_best(list(trials))


def test_a_winner_needs_enough_sends_of_every_variant() -> None:
    counts = [VariantCounts(sent=99, purchased=10), VariantCounts(sent=99, purchased=60)]
    assert standing(counts, AbTest()).winner is None
    enough = [VariantCounts(sent=100, purchased=10), VariantCounts(sent=100, purchased=60)]
    result = standing(enough, AbTest())
    assert result.winner == 1
    assert result.conversion == [0.1, 0.6]


def test_a_winner_needs_its_probability_to_reach_the_threshold() -> None:
    close = [VariantCounts(sent=500, purchased=100), VariantCounts(sent=500, purchased=105)]
    result = standing(close, AbTest(threshold=0.95))
    assert result.winner is None
    assert 0.5 < result.probability_best[1] < 0.95


def test_the_goal_decides_which_counts_are_compared() -> None:
    counts = [
        VariantCounts(sent=300, purchased=90, replied=10),
        VariantCounts(sent=300, purchased=10, replied=90),
    ]
    assert standing(counts, AbTest(goal="purchase")).winner == 0
    assert standing(counts, AbTest(goal="reply")).winner == 1
