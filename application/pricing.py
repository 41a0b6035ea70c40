"""PPV pricing: Thompson sampling over a fixed grid of prices.

Each price point has a Beta posterior of "an offer at this price is bought". The expected
revenue of a price is the price times its buying rate; the recommendation is the price whose
*sampled* rate earns most, so prices with few offers are still tried while their posterior is
wide (exploration), and the best one wins more and more often as the evidence grows.

Pure: counts in, a recommendation out; the randomness is the caller's seeded ``random.Random``.

A fan with ``FAN_MIN_OFFERS`` offers or more is priced from its own posterior, whose prior is
the account's mean rate at each price worth ``PSEUDO_OFFERS`` offers: the fan's offers move it
away from the account's figures only as far as they outweigh that prior, and a fan with many
offers is priced mostly on its own. Fewer offers: the account's pooled posterior, since a
handful of a fan's answers says less than thousands of the account's.

Why 20 and 20, not a few: a fan's posterior starts wide at every price, so Thompson sampling
explores again for each fan that switches to it. With a weak prior (4 pseudo-offers, from 5
offers) that re-exploration cost more than per-fan prices earned when fans had ~20 offers each
(bench/pricing.py: 91% of the oracle against 95% with 20/20; with ~200 offers per fan both
earn about the same, above the account-only bandit). Figures: bench/MEASUREMENTS.md.
"""

from __future__ import annotations

import math
import random
from typing import Literal

import msgspec

# Roughly evenly spaced in log-price: a buyer's sensitivity is to ratios, not to cents.
GRID: tuple[int, ...] = (300, 500, 800, 1200, 2000, 3000, 5000)
# How far (as a ratio) a price may lie from its nearest grid point and still count as an offer
# at that point; further (e.g. 20,000 cents) says nothing about any grid price.
SNAP_RATIO = 1.3
FAN_MIN_OFFERS = 20
PSEUDO_OFFERS = 20.0

Basis = Literal["fan", "account"]


class PriceCounts(msgspec.Struct, frozen=True):
    price_cents: int
    offers: int
    purchases: int


class PricePosterior(msgspec.Struct, frozen=True, kw_only=True, rename="camel"):
    price_cents: int
    offers: int
    purchases: int
    mean_rate: float
    expected_revenue_cents: float


class Recommendation(msgspec.Struct, frozen=True, kw_only=True):
    price_cents: int
    basis: Basis
    prices: tuple[PricePosterior, ...]


def snap(price_cents: int) -> int | None:
    """The grid point an offer at ``price_cents`` counts for; None: free, or too far from any."""
    if price_cents <= 0:
        return None
    nearest = min(GRID, key=lambda point: abs(math.log(price_cents / point)))
    ratio = max(price_cents, nearest) / min(price_cents, nearest)
    return nearest if ratio <= SNAP_RATIO else None


def _by_price(counts: list[PriceCounts]) -> dict[int, tuple[int, int]]:
    table = dict.fromkeys(GRID, (0, 0))
    for c in counts:
        if c.price_cents in table:
            offers, purchases = table[c.price_cents]
            table[c.price_cents] = (offers + c.offers, purchases + min(c.purchases, c.offers))
    return table


def _posteriors(
    counts: dict[int, tuple[int, int]], priors: dict[int, tuple[float, float]]
) -> dict[int, tuple[float, float]]:
    return {
        point: (priors[point][0] + purchases, priors[point][1] + offers - purchases)
        for point, (offers, purchases) in counts.items()
    }


def _uniform() -> dict[int, tuple[float, float]]:
    return dict.fromkeys(GRID, (1.0, 1.0))


def _shrunk_towards(account: dict[int, tuple[float, float]]) -> dict[int, tuple[float, float]]:
    priors = {}
    for point, (alpha, beta) in account.items():
        mean = alpha / (alpha + beta)
        priors[point] = (mean * PSEUDO_OFFERS, (1 - mean) * PSEUDO_OFFERS)
    return priors


def recommend(
    account: list[PriceCounts],
    rng: random.Random,
    fan: list[PriceCounts] | None = None,
) -> Recommendation:
    """The price to offer now (sampled) and each price's posterior, for the fan if it has
    enough offers, else for the account."""
    account_counts = _by_price(account)
    account_post = _posteriors(account_counts, _uniform())
    counts, posterior, basis = account_counts, account_post, "account"
    if fan is not None:
        fan_counts = _by_price(fan)
        if sum(offers for offers, _ in fan_counts.values()) >= FAN_MIN_OFFERS:
            counts, basis = fan_counts, "fan"
            posterior = _posteriors(fan_counts, _shrunk_towards(account_post))
    best, best_revenue = GRID[0], -1.0
    for point in GRID:
        alpha, beta = posterior[point]
        revenue = point * rng.betavariate(alpha, beta)
        if revenue > best_revenue:
            best, best_revenue = point, revenue
    prices = tuple(
        PricePosterior(
            price_cents=point,
            offers=counts[point][0],
            purchases=counts[point][1],
            mean_rate=posterior[point][0] / sum(posterior[point]),
            expected_revenue_cents=point * posterior[point][0] / sum(posterior[point]),
        )
        for point in GRID
    )
    return Recommendation(price_cents=best, basis=basis, prices=prices)  # type: ignore[arg-type]


def seeded(key: str) -> random.Random:
    """A generator seeded by ``key`` (a message id): the same offer samples the same prices."""
    return random.Random(key)  # noqa: S311 - reproducible, not secret
