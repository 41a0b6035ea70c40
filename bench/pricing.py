"""PPV pricing: the bandit's revenue as a share of the best fixed price's (the oracle).

Fans' willingness to pay is the simulator's own (adapters/onlyfans/fan_model.py, the fans the
simulator and the simulated histories use): fan f buys an offer at price p with probability
``a_f * exp(-p / v_f)``, ``a_f`` ~ U(0.3, 0.8) (how keen it is at all) and ``v_f`` lognormal
around ``--scale`` cents (the price it is most profitable to offer it: revenue p·a·e^(-p/v)
peaks at p = v). The oracle knows every curve and offers everyone the one fixed price with the
highest expected revenue (searched over every legal price, not just the grid); today's practice
is one fixed price (``--fixed``). The bandit (application/pricing.py, the code the API runs)
sees only offers and purchases. Each offer goes to a fan drawn at random; revenue is counted in
expectation (price times the fan's true probability) so luck does not blur the comparison, and
the bandit learns from a drawn purchase.

    uv run python bench/pricing.py [--offers 10000] [--fans 500] [--seeds 5]
        [--fan-min-offers N --pseudo-offers K]   (the model's fan settings, for comparison)
"""

from __future__ import annotations

import argparse
import random
from collections import defaultdict

from adapters.onlyfans import fan_model
from adapters.onlyfans.fan_model import FanTraits
from application import pricing
from application.pricing import GRID, PriceCounts, recommend, snap
from domain.message import MAX_PRICE_CENTS, MIN_PRICE_CENTS


def rate(fan: FanTraits, price: int) -> float:
    return fan.buy_probability(price)


def mean_revenue(population: list[FanTraits], price: int) -> float:
    return price * sum(rate(f, price) for f in population) / len(population)


def run(seed: int, offers: int, fan_count: int, scale: float, fixed: int) -> dict[str, float]:
    rng = random.Random(seed)
    population = fan_model.population(seed, fan_count, value_scale=scale)
    oracle_price = max(
        range(MIN_PRICE_CENTS, MAX_PRICE_CENTS + 1, 10), key=lambda p: mean_revenue(population, p)
    )
    best_grid = max(GRID, key=lambda p: mean_revenue(population, p))
    account: dict[int, list[int]] = defaultdict(lambda: [0, 0])
    per_fan: dict[int, dict[int, list[int]]] = defaultdict(lambda: defaultdict(lambda: [0, 0]))
    earned = oracle = today = grid = 0.0
    chosen: dict[int, int] = defaultdict(int)
    for _ in range(offers):
        index = rng.randrange(fan_count)
        fan = population[index]
        oracle += oracle_price * rate(fan, oracle_price)
        today += fixed * rate(fan, fixed)
        grid += best_grid * rate(fan, best_grid)
        counts = [PriceCounts(p, o, b) for p, (o, b) in account.items()]
        mine = [PriceCounts(p, o, b) for p, (o, b) in per_fan[index].items()]
        price = recommend(counts, rng, mine).price_cents
        chosen[price] += 1
        probability = rate(fan, price)
        earned += price * probability
        bought = rng.random() < probability
        point = snap(price)
        assert point is not None
        for cell in (account[point], per_fan[index][point]):
            cell[0] += 1
            cell[1] += bought
    return {
        "oracle_price": oracle_price,
        "best_grid": best_grid,
        "bandit": earned / oracle,
        "fixed": today / oracle,
        "grid": grid / oracle,
        "last_choice": max(chosen, key=lambda p: chosen[p]),
        "oracle_cents": oracle,
        "bandit_cents": earned,
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--offers", type=int, default=10_000)
    parser.add_argument("--fans", type=int, default=500)
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--scale", type=float, default=1_800.0)
    parser.add_argument("--fixed", type=int, default=1_000)
    parser.add_argument("--fan-min-offers", type=int, default=pricing.FAN_MIN_OFFERS)
    parser.add_argument("--pseudo-offers", type=float, default=pricing.PSEUDO_OFFERS)
    args = parser.parse_args()
    # Only to compare settings: the model reads these module constants.
    pricing.FAN_MIN_OFFERS = args.fan_min_offers
    pricing.PSEUDO_OFFERS = args.pseudo_offers
    results = []
    for seed in range(args.seeds):
        r = run(seed, args.offers, args.fans, args.scale, args.fixed)
        results.append(r)
        print(
            f"seed {seed}: oracle price {r['oracle_price']:.0f} (best grid {r['best_grid']:.0f})"
            f" earned {r['oracle_cents'] / 100:,.0f} $; bandit {r['bandit']:.1%}"
            f" ({r['bandit_cents'] / 100:,.0f} $, most offered {r['last_choice']:.0f});"
            f" fixed {args.fixed}: {r['fixed']:.1%}"
        )
    bandit = sorted(r["bandit"] for r in results)
    fixed = sorted(r["fixed"] for r in results)
    grid = sum(r["grid"] for r in results) / len(results)
    print(
        f"{args.offers} offers, {args.fans} fans, {args.seeds} seeds: bandit"
        f" {sum(bandit) / len(bandit):.1%} of the oracle"
        f" (min {bandit[0]:.1%}, max {bandit[-1]:.1%});"
        f" fixed {args.fixed} cents {sum(fixed) / len(fixed):.1%};"
        f" the best grid price, known in advance, {grid:.1%}"
        f" (fan settings: from {args.fan_min_offers} offers, {args.pseudo_offers:g} pseudo-offers)"
    )


if __name__ == "__main__":
    main()
