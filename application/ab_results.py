"""How an A/B test stands: each variant's rate on the goal, the probability that it is the best,
and whether the test has a winner.

The model: each variant converts (purchases, replies or opens, per message sent) at an unknown
rate p_i, with a uniform Beta(1, 1) prior; after s_i successes in n_i sends its posterior is
Beta(1 + s_i, 1 + n_i - s_i). The probability that variant i is the best is

    P(i best) = integral of f_i(x) * prod_{j != i} F_j(x) dx

(f: posterior density, F: its distribution function), computed by deterministic numerical
integration rather than by sampling: the same counts give the same answer on every call and
in every worker, so a winner never flickers in and out with Monte Carlo noise, and no seed has
to be agreed. The grid is dense around each posterior (where its mass is) plus a coarse grid
over the whole span, so a posterior a thousand times narrower than the span between variants
is still resolved; each density is normalised on the grid itself, which cancels most of the
discretisation error. Against 200,000 seeded draws the two agree to within the draws' own
noise (tests/unit/test_ab_results.py).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import msgspec

from domain.variants import AbTest

# Points per posterior (over its mean +- _SPREAD standard deviations) and across the span.
_LOCAL_POINTS = 400
_SPAN_POINTS = 400
_SPREAD = 9.0


class VariantCounts(msgspec.Struct, frozen=True, kw_only=True):
    sent: int = 0
    opened: int = 0
    replied: int = 0
    purchased: int = 0
    revenue_cents: int = 0

    def successes(self, goal: str) -> int:
        hits = {"purchase": self.purchased, "reply": self.replied, "open": self.opened}[goal]
        return min(hits, self.sent)


class Standing(msgspec.Struct, frozen=True, kw_only=True):
    """Per variant (in the test's order): the goal's rate and the probability of being the
    best; and the winner's index, if the stop rule is met."""

    conversion: list[float]
    probability_best: list[float]
    winner: int | None


def standing(counts: Sequence[VariantCounts], rule: AbTest) -> Standing:
    trials = [(c.successes(rule.goal), c.sent) for c in counts]
    best = probability_best(trials)
    winner = None
    if all(sent >= rule.min_per_variant for _, sent in trials):
        top = max(range(len(best)), key=best.__getitem__)
        if best[top] >= rule.threshold:
            winner = top
    return Standing(
        conversion=[s / n if n else 0.0 for s, n in trials],
        probability_best=best,
        winner=winner,
    )


def probability_best(trials: Sequence[tuple[int, int]]) -> list[float]:
    """For (successes, trials) per variant: the probability that each has the highest rate."""
    params = [(1.0 + s, 1.0 + n - s) for s, n in trials]
    if len(params) < 2:
        return [1.0] * len(params)
    grid = _grid(params)
    densities = [_density(a, b, grid) for a, b in params]
    cdfs = [_cumulative(d, grid) for d in densities]
    # prod_{j != i} F_j as (product of those before i) * (product of those after i): each
    # variant's integrand in one pass over the grid, not one per other variant.
    ones = [1.0] * len(grid)
    before = [ones]
    for cdf in cdfs[:-1]:
        before.append([p * f for p, f in zip(before[-1], cdf, strict=True)])
    after = [ones]
    for cdf in reversed(cdfs[1:]):
        after.append([p * f for p, f in zip(after[-1], cdf, strict=True)])
    after.reverse()
    raw = [
        _cumulative(
            [d * p * q for d, p, q in zip(density, before[i], after[i], strict=True)], grid
        )[-1]
        for i, density in enumerate(densities)
    ]
    total = sum(raw)
    return [r / total for r in raw] if total > 0 else [1 / len(raw)] * len(raw)


def _grid(params: Sequence[tuple[float, float]]) -> list[float]:
    points: set[float] = {0.0, 1.0}
    lows, highs = [], []
    for a, b in params:
        mean = a / (a + b)
        sd = math.sqrt(a * b / ((a + b) ** 2 * (a + b + 1)))
        low, high = max(0.0, mean - _SPREAD * sd), min(1.0, mean + _SPREAD * sd)
        lows.append(low)
        highs.append(high)
        points.update(low + (high - low) * k / _LOCAL_POINTS for k in range(_LOCAL_POINTS + 1))
    low, high = min(lows), max(highs)
    points.update(low + (high - low) * k / _SPAN_POINTS for k in range(_SPAN_POINTS + 1))
    return sorted(points)


def _density(a: float, b: float, grid: Sequence[float]) -> list[float]:
    """Beta(a, b)'s density on the grid, normalised to integrate to 1 on it."""
    logs = [_log_kernel(a, b, x) for x in grid]
    top = max(logs)
    values = [math.exp(v - top) if v > -math.inf else 0.0 for v in logs]
    area = _cumulative(values, grid)[-1]
    return [v / area for v in values]


def _log_kernel(a: float, b: float, x: float) -> float:
    # x^(a-1) (1-x)^(b-1), with 0^0 = 1 (a or b is 1 when a variant has no success or failure).
    def part(exponent: float, base: float) -> float:
        if exponent == 0:
            return 0.0
        return exponent * math.log(base) if base > 0 else -math.inf

    return part(a - 1, x) + part(b - 1, 1 - x)


def _cumulative(values: Sequence[float], grid: Sequence[float]) -> list[float]:
    """The running trapezoid integral of ``values`` over ``grid``."""
    total = 0.0
    out = [0.0]
    for k in range(1, len(grid)):
        total += (values[k] + values[k - 1]) * (grid[k] - grid[k - 1]) / 2
        out.append(total)
    return out
