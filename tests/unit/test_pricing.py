"""The PPV pricing bandit: snapping, posteriors, the fan/account basis, convergence."""

from __future__ import annotations

import math
import random
from collections import Counter

import pytest

from application.pricing import (
    FAN_MIN_OFFERS,
    GRID,
    PSEUDO_OFFERS,
    PriceCounts,
    recommend,
    seeded,
    snap,
)


def test_grid_prices_snap_to_themselves() -> None:
    assert [snap(p) for p in GRID] == list(GRID)


def test_a_price_near_a_grid_point_snaps_to_the_nearest_in_ratio() -> None:
    assert snap(1000) == 1200  # 1000/800 = 1.25 > 1200/1000 = 1.2
    assert snap(900) == 800
    assert snap(5999) == 5000


def test_free_messages_and_prices_far_from_the_grid_are_not_offers() -> None:
    assert snap(0) is None
    assert snap(20_000) is None
    assert snap(10_000) is None


def test_with_no_history_every_price_has_the_uniform_prior_mean() -> None:
    rec = recommend([], random.Random(1))
    assert rec.basis == "account"
    assert [p.mean_rate for p in rec.prices] == [0.5] * len(GRID)
    assert [p.expected_revenue_cents for p in rec.prices] == [p * 0.5 for p in GRID]
    assert rec.price_cents in GRID


def test_offers_and_purchases_update_the_beta_posterior_of_their_price() -> None:
    rec = recommend([PriceCounts(800, 10, 3)], random.Random(1))
    at_800 = next(p for p in rec.prices if p.price_cents == 800)
    assert (at_800.offers, at_800.purchases) == (10, 3)
    assert at_800.mean_rate == pytest.approx(4 / 12)
    assert at_800.expected_revenue_cents == pytest.approx(800 * 4 / 12)


def test_counts_at_prices_off_the_grid_are_ignored() -> None:
    rec = recommend([PriceCounts(1000, 50, 50)], random.Random(1))
    assert all(p.offers == 0 for p in rec.prices)


def test_a_fan_with_few_offers_is_priced_from_the_account() -> None:
    fan = [PriceCounts(300, FAN_MIN_OFFERS - 1, 0)]
    rec = recommend([PriceCounts(300, 100, 50)], random.Random(1), fan)
    assert rec.basis == "account"
    assert rec.prices[0].offers == 100


def test_a_fan_with_enough_offers_is_shrunk_towards_the_account_mean() -> None:
    account = [PriceCounts(300, 98, 48)]  # posterior mean 49/100
    fan = [PriceCounts(300, FAN_MIN_OFFERS, FAN_MIN_OFFERS)]
    rec = recommend(account, random.Random(1), fan)
    assert rec.basis == "fan"
    at_300 = rec.prices[0]
    assert (at_300.offers, at_300.purchases) == (FAN_MIN_OFFERS, FAN_MIN_OFFERS)
    prior_alpha = 0.49 * PSEUDO_OFFERS
    assert at_300.mean_rate == pytest.approx(
        (prior_alpha + FAN_MIN_OFFERS) / (PSEUDO_OFFERS + FAN_MIN_OFFERS)
    )


def test_the_same_seed_recommends_the_same_price() -> None:
    counts = [PriceCounts(p, 5, 2) for p in GRID]
    picks = {recommend(counts, seeded("a message id")).price_cents for _ in range(5)}
    assert len(picks) == 1


def test_a_price_that_clearly_earns_most_is_recommended_almost_always() -> None:
    counts = [PriceCounts(p, 1000, 100) for p in GRID if p != 2000] + [PriceCounts(2000, 1000, 400)]
    rng = random.Random(7)
    picks = Counter(recommend(counts, rng).price_cents for _ in range(200))
    assert picks[2000] == 200


def test_the_bandit_converges_to_the_best_grid_price_on_a_known_curve() -> None:
    # Buying rate 0.6·e^(-p/1500): revenue peaks at 1500, so 1200 is the best grid price.
    def rate(price: int) -> float:
        return 0.6 * math.exp(-price / 1500)

    best = max(GRID, key=lambda p: p * rate(p))
    assert best == 1200
    rng = random.Random(20261206)
    counts = {p: [0, 0] for p in GRID}
    late: Counter[int] = Counter()
    for offer in range(4000):
        price = recommend([PriceCounts(p, o, b) for p, (o, b) in counts.items()], rng).price_cents
        counts[price][0] += 1
        counts[price][1] += rng.random() < rate(price)
        if offer >= 3000:
            late[price] += 1
    assert late.most_common(1)[0][0] == best
    assert max(counts, key=lambda p: counts[p][0]) == best
