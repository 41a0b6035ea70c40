"""Train an account's churn model on one cut-off, validate it on a later one, score its fans.

The training cut-off's label window (30 days) ends where the validation cut-off begins, and
the validation label window ends at the last complete UTC day: the model is judged on days it
never saw, against the recency baseline on the same fans. What is saved is the model that was
validated (not a refit on later data, which no figure would describe), with the log position
its features were read at, and every live fan's risk under it, in one transaction.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import datetime
from typing import Protocol

import msgspec

from application.churn import (
    ChurnParameters,
    Factor,
    FanActivity,
    cutoffs,
    features,
    recency_days,
    score,
)
from application.churn_metrics import precision_at, roc_auc
from application.errors import ApplicationError

MIN_FANS = 20


class ChurnModelChanged(ApplicationError):
    """A page cursor of a model that has since been replaced by a retrain."""


class ModelNotTrained(ApplicationError):
    """No churn model yet for this account (409), or not enough history to train one."""


class Snapshot(msgspec.Struct, frozen=True, kw_only=True):
    """The activity view, read at one moment, as of the three cut-offs."""

    position: int  # the churn_activity checkpoint it was read at
    train: list[FanActivity]
    validation: list[FanActivity]
    current: list[FanActivity]


class ChurnMetrics(msgspec.Struct, frozen=True, kw_only=True, rename="camel"):
    train_fans: int
    train_churn_rate: float
    validation_fans: int
    validation_churn_rate: float
    auc: float | None
    precision_at_10: float
    recency_auc: float | None
    recency_precision_at_10: float


class TrainedModel(msgspec.Struct, frozen=True, kw_only=True):
    trained_at: datetime
    position: int
    train_cutoff: str
    validation_cutoff: str
    parameters: ChurnParameters
    metrics: ChurnMetrics


class FanScore(msgspec.Struct, frozen=True, kw_only=True):
    fan_id: int
    risk: float
    factors: list[Factor]


class ChurnStore(Protocol):
    async def snapshot(self, tenant: str, train: str, validation: str, current: str) -> Snapshot:
        """Cut-offs as ISO days."""
        ...

    async def save(self, tenant: str, model: TrainedModel, scores: list[FanScore]) -> int:
        """Store the model as the account's next version and replace its scores; returns the
        version."""
        ...


# Fits a model on feature rows (as ``features`` answers them) and their labels.
Fitter = Callable[[list[list[float]], list[bool]], ChurnParameters]


class Trained(msgspec.Struct, frozen=True, kw_only=True):
    version: int
    model: TrainedModel
    scored: int


async def train_churn(store: ChurnStore, fit: Fitter, tenant: str, *, now: datetime) -> Trained:
    train_day, validation_day, score_day = cutoffs(now.date())
    snapshot = await store.snapshot(
        tenant, train_day.isoformat(), validation_day.isoformat(), score_day.isoformat()
    )
    labels = [fan.churned for fan in snapshot.train]
    if len(labels) < MIN_FANS or all(labels) or not any(labels):
        raise ModelNotTrained(
            f"not enough history to train: {len(labels)} fans as of {train_day}"
            f" ({sum(labels)} churned); at least {MIN_FANS} and both outcomes are needed"
        )
    if len(snapshot.validation) < MIN_FANS:
        raise ModelNotTrained(f"not enough fans to validate on as of {validation_day}")
    # In a thread: a fit on 100,000 fans takes seconds, and the event loop serves meanwhile.
    rows = [features(fan, train_day) for fan in snapshot.train]
    parameters = await asyncio.to_thread(fit, rows, labels)
    churned = [fan.churned for fan in snapshot.validation]
    risks = [score(parameters, features(fan, validation_day))[0] for fan in snapshot.validation]
    recency = [recency_days(fan, validation_day) for fan in snapshot.validation]
    model = TrainedModel(
        trained_at=now,
        position=snapshot.position,
        train_cutoff=train_day.isoformat(),
        validation_cutoff=validation_day.isoformat(),
        parameters=parameters,
        metrics=ChurnMetrics(
            train_fans=len(labels),
            train_churn_rate=sum(labels) / len(labels),
            validation_fans=len(churned),
            validation_churn_rate=sum(churned) / len(churned),
            auc=roc_auc(churned, risks),
            precision_at_10=precision_at(churned, risks),
            recency_auc=roc_auc(churned, recency),
            recency_precision_at_10=precision_at(churned, recency),
        ),
    )
    scores = []
    for fan in snapshot.current:
        risk, factors = score(parameters, features(fan, score_day))
        scores.append(FanScore(fan_id=fan.fan_id, risk=risk, factors=factors))
    version = await store.save(tenant, model, scores)
    return Trained(version=version, model=model, scored=len(scores))
