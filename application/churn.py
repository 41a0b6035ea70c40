"""Churn prediction: a fan's features as of a day, the label, and scoring by a linear model.

Churned (the cohorts' definition): no message from the fan and no purchase in the 30 days
from the cut-off. A feature as of day D reads only the days before D (see
projections/churn_activity.py), so nothing that happens from D on can change it.

The model is a logistic regression on standardised features: its risk is
``sigmoid(intercept + sum(coef_i * z_i))`` with ``z_i = (x_i - mean_i) / scale_i``, so each
term ``coef_i * z_i`` is that feature's share of the fan's log-odds against an average fan:
the factors answered are the largest of those terms, exact and additive, with no attribution
method to justify. The parameters are a few numbers per feature, no fan's data.
"""

from __future__ import annotations

import math
from datetime import UTC, date, datetime, timedelta

import msgspec

CHURN_DAYS = 30
# More likely than not to churn in the next 30 days: the `atRisk` segment.
AT_RISK = 0.5
FACTORS = 3

FEATURES = (
    "daysSinceLastPurchase",
    "neverPurchased",
    "purchases",
    "spendDollars",
    "purchases30d",
    "spendTrend",
    "daysSinceLastMessage",
    "fanMessages",
    "fanMessages30d",
    "accountMessages30d",
    "campaignMessages30d",
    "reads30d",
    "fanReplies30d",
    "answerHours",
    "unansweredHours",
    "subscriptionDays",
    "activeDays30d",
)

# Enter the model as they are; the others as log1p (model_inputs).
_AS_IS = frozenset({"neverPurchased", "spendTrend", "activeDays30d"})


class FanActivity(msgspec.Struct, frozen=True, kw_only=True):
    """What the activity view sums for one fan over the days before a cut-off (and, for a
    label, the fan's messages and purchases in the 30 days from it)."""

    fan_id: int
    first_day: date  # subscribed, first seen or first purchase, whichever is earliest
    purchases: int = 0
    spend_cents: int = 0
    purchases_30: int = 0
    spend_30: int = 0
    spend_prev_30: int = 0
    fan_messages: int = 0
    fan_messages_30: int = 0
    account_messages_30: int = 0
    campaign_messages_30: int = 0
    reads_30: int = 0
    fan_replies_30: int = 0
    answers: int = 0
    answer_seconds: float = 0.0
    active_days_30: int = 0
    last_purchase_at: datetime | None = None
    last_fan_message_at: datetime | None = None
    last_account_message_at: datetime | None = None
    activity_after: int | None = None  # None: the window after the cut-off is not asked

    @property
    def churned(self) -> bool:
        return self.activity_after == 0


def cutoffs(today: date) -> tuple[date, date, date]:
    """(train, validation, score) cut-offs for a model trained on ``today``: the validation
    window is the last complete 30 days, the training one the 30 days before it, so the
    model never saw a day it is validated on; scores read everything up to now."""
    validation = today - timedelta(days=CHURN_DAYS)
    return validation - timedelta(days=CHURN_DAYS), validation, today + timedelta(days=1)


def features(fan: FanActivity, as_of: date) -> list[float]:
    """The fan's features as of ``as_of`` as a person reads them (days, counts, dollars)."""
    start = datetime(as_of.year, as_of.month, as_of.day, tzinfo=UTC)
    age = max((as_of - fan.first_day).days, 0)

    def days_since(moment: datetime | None) -> float:
        return age if moment is None else max((start - moment).total_seconds() / 86400, 0.0)

    unanswered = 0.0
    last_in, last_out = fan.last_fan_message_at, fan.last_account_message_at
    if last_in is not None and (last_out is None or last_in > last_out):
        unanswered = (start - last_in).total_seconds() / 3600
    answer_hours = float(fan.answer_seconds) / 3600 / fan.answers if fan.answers else 0.0
    return [
        days_since(fan.last_purchase_at),
        1.0 if fan.purchases == 0 else 0.0,
        float(fan.purchases),
        fan.spend_cents / 100,
        float(fan.purchases_30),
        math.log1p(fan.spend_30 / 100) - math.log1p(fan.spend_prev_30 / 100),
        days_since(fan.last_fan_message_at),
        float(fan.fan_messages),
        float(fan.fan_messages_30),
        float(fan.account_messages_30),
        float(fan.campaign_messages_30),
        float(fan.reads_30),
        float(fan.fan_replies_30),
        answer_hours,
        max(unanswered, 0.0),
        float(age),
        float(fan.active_days_30),
    ]


def model_inputs(values: list[float]) -> list[float]:
    """Counts and durations enter the model as log1p: the tenth purchase says less than the
    first, and a linear model needs the scale to say so."""
    return [
        value if name in _AS_IS else math.log1p(value)
        for name, value in zip(FEATURES, values, strict=True)
    ]


def recency_days(fan: FanActivity, as_of: date) -> float:
    """The baseline: days since the fan last wrote or bought (since joining if never)."""
    moments = [m for m in (fan.last_purchase_at, fan.last_fan_message_at) if m is not None]
    start = datetime(as_of.year, as_of.month, as_of.day, tzinfo=UTC)
    if not moments:
        return float(max((as_of - fan.first_day).days, 0))
    return max((start - max(moments)).total_seconds() / 86400, 0.0)


class Factor(msgspec.Struct, frozen=True, kw_only=True, rename="camel"):
    feature: str
    value: float  # the feature as ``features`` reads it (days, counts, dollars)
    # Its term in the fan's log-odds against an average fan: > 0 raises the risk.
    impact: float


class ChurnParameters(msgspec.Struct, frozen=True, kw_only=True):
    features: tuple[str, ...]
    means: tuple[float, ...]
    scales: tuple[float, ...]
    coefficients: tuple[float, ...]
    intercept: float


def score(parameters: ChurnParameters, values: list[float]) -> tuple[float, list[Factor]]:
    """The fan's risk and its main factors, largest impact (either way) first. ``values``:
    as ``features`` answers them."""
    terms = [
        coef * (value - mean) / scale
        for value, mean, scale, coef in zip(
            model_inputs(values),
            parameters.means,
            parameters.scales,
            parameters.coefficients,
            strict=True,
        )
    ]
    logit = parameters.intercept + sum(terms)
    risk = 1 / (1 + math.exp(-logit)) if logit > -700 else 0.0
    ranked = sorted(range(len(terms)), key=lambda i: abs(terms[i]), reverse=True)[:FACTORS]
    return risk, [
        Factor(
            feature=parameters.features[i],
            value=round(float(values[i]), 4),
            impact=round(terms[i], 4),
        )
        for i in ranked
    ]
