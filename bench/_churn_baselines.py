"""Baselines for bench/models.py (not a benchmark itself): BG/NBD's probability alive as a
maintained customer-lifetime-value library fits it, and the CDNOW purchase history that the
`lifetimes` package ships.

BG/NBD is fitted with pymc-marketing's BetaGeoModel by maximum a posteriori (its MCMC default
takes minutes per fit on 20,000 customers for the same point ranking); if pymc-marketing cannot
be imported or fails to fit, lifetimes' BetaGeoFitter (unmaintained since 2020) stands in,
and the figure says which one answered.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from application.churn import CHURN_DAYS, FanActivity

warnings.filterwarnings("ignore")


def rfm(purchase_days: Mapping[int, Sequence[date]], first_day: Mapping[int, date], as_of: date):
    """BG/NBD's inputs in days as of ``as_of``: frequency (repeat purchase days), recency (first
    to last purchase day) and T (first purchase, or joining when none, to ``as_of``)."""
    import pandas as pd

    rows = []
    for fan_id, born in first_day.items():
        days = sorted(d for d in purchase_days.get(fan_id, ()) if d < as_of)
        start = days[0] if days else born
        rows.append(
            {
                "customer_id": fan_id,
                "frequency": max(len(days) - 1, 0),
                "recency": (days[-1] - start).days if days else 0,
                "T": max((as_of - start).days, 1),
            }
        )
    return pd.DataFrame(rows)


def bg_nbd(data) -> tuple[list[float], list[float], str]:
    """Each customer's P(alive) and expected purchases in the next 30 days, in ``data``'s
    order, and which library fitted them."""
    try:
        from pymc_marketing.clv import BetaGeoModel

        model = BetaGeoModel(data=data)
        model.fit(method="map", progressbar=False)
        alive = model.expected_probability_alive(data).mean(("chain", "draw"))
        expected = model.expected_purchases(data, future_t=CHURN_DAYS).mean(("chain", "draw"))
        return (
            [float(v) for v in alive.values],
            [float(v) for v in expected.values],
            "pymc-marketing BetaGeoModel (MAP)",
        )
    except Exception as error:  # any failure: the other library
        print(f"  pymc-marketing failed ({type(error).__name__}: {error}); lifetimes instead")
    from lifetimes import BetaGeoFitter

    f, r, t = data["frequency"], data["recency"], data["T"]
    fitter = BetaGeoFitter(penalizer_coef=0.001).fit(f, r, t)
    alive = fitter.conditional_probability_alive(f, r, t)
    expected = fitter.conditional_expected_number_of_purchases_up_to_time(CHURN_DAYS, f, r, t)
    return [float(v) for v in alive], [float(v) for v in expected], "lifetimes BetaGeoFitter"


def cdnow() -> dict[int, list[tuple[date, int]]]:
    """CDNOW_master.txt (23,570 customers' CD purchases, Jan 1997 - Jun 1998): per customer,
    its purchase days and what each day's purchases cost in cents."""
    import importlib.util

    # The file, not lifetimes.datasets: that module needs pkg_resources (setuptools).
    spec = importlib.util.find_spec("lifetimes")
    assert spec is not None
    assert spec.submodule_search_locations
    path = Path(spec.submodule_search_locations[0]) / "datasets" / "CDNOW_master.txt"
    days: dict[int, dict[date, int]] = {}
    for line in path.read_text().splitlines()[1:]:  # after the header
        customer, day, _, dollars = line.split()
        moment = date(int(day[:4]), int(day[4:6]), int(day[6:]))
        per_day = days.setdefault(int(customer), {})
        per_day[moment] = per_day.get(moment, 0) + round(float(dollars) * 100)
    return {c: sorted(d.items()) for c, d in days.items()}


def purchase_activity(
    customer: int, purchases: Sequence[tuple[date, int]], as_of: date
) -> FanActivity | None:
    """A customer's purchases as the churn view would sum them as of ``as_of`` (no messages:
    CDNOW has none), labelled by the 30 days after; None before its first purchase."""
    before = [(d, c) for d, c in purchases if d < as_of]
    if not before:
        return None
    recent = [(d, c) for d, c in before if d >= as_of - timedelta(days=CHURN_DAYS)]
    previous = [
        (d, c) for d, c in before if as_of - timedelta(days=60) <= d < as_of - timedelta(days=30)
    ]
    last = before[-1][0]
    after = [d for d, _ in purchases if as_of <= d < as_of + timedelta(days=CHURN_DAYS)]
    return FanActivity(
        fan_id=customer,
        first_day=before[0][0],
        purchases=len(before),
        spend_cents=sum(c for _, c in before),
        purchases_30=len(recent),
        spend_30=sum(c for _, c in recent),
        spend_prev_30=sum(c for _, c in previous),
        active_days_30=len(recent),
        last_purchase_at=datetime(last.year, last.month, last.day, 12, tzinfo=UTC),
        activity_after=len(after),
    )
