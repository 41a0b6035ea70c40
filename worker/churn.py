"""The churn worker: retrains each account's churn model and rescores its fans on a schedule
(CRM_CHURN_RETRAIN_SECONDS, a day by default).

An account whose latest model is younger than the interval is left alone, so a restart or a
second replica does not retrain it again. An account without enough history is skipped
(logged) until it has some. The fit runs in a thread (application/churn_training.py): the
event loop, and with it a `crm dev` process's API, keeps serving meanwhile.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import structlog

from adapters.bootstrap import Container
from adapters.churn_fit import fit_logistic
from application.churn_training import ModelNotTrained, train_churn

log = structlog.get_logger(__name__)


async def retrain_due(
    container: Container, *, every: float, now: Callable[[], datetime]
) -> dict[str, int | str]:
    """One pass over the accounts: each one's new version, or why it was skipped."""
    outcomes: dict[str, int | str] = {}
    for tenant in await container.churn.tenants():
        try:
            outcome = await _retrain_if_due(container, tenant, every, now)
        except Exception as error:  # one account's failure must not starve the others
            log.exception("churn model training failed", tenant=tenant)
            outcome = f"failed: {type(error).__name__}"
        if outcome is not None:
            outcomes[tenant] = outcome
    return outcomes


async def _retrain_if_due(
    container: Container, tenant: str, every: float, now: Callable[[], datetime]
) -> int | str | None:
    async with container.churn.training_turn(tenant) as mine:
        if not mine:
            return None  # another process is training it
        # Read under the turn: a replica that trained it a moment ago has saved its model.
        latest = await container.churn.latest_model(tenant)
        if latest is not None and now() - latest["trained_at"] < timedelta(seconds=every):
            return None
        try:
            trained = await train_churn(container.churn, fit_logistic, tenant, now=now())
        except ModelNotTrained as reason:
            log.info("churn model not trained", tenant=tenant, reason=str(reason))
            return str(reason)
    log.info("churn model trained", tenant=tenant, version=trained.version)
    return trained.version


async def run_churn_worker(
    container: Container,
    stop: asyncio.Event,
    *,
    now: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> None:
    every = container.settings.churn_retrain_seconds
    log.info("churn worker started", every_seconds=every)
    while not stop.is_set():
        try:
            await retrain_due(container, every=every, now=now)
        except asyncio.CancelledError:
            raise
        except Exception:  # an outage or a bug: keep it visible, try again next round
            log.exception("churn retraining failed")
        with contextlib.suppress(TimeoutError):
            # Wake often enough to notice an account whose model is due before the interval.
            await asyncio.wait_for(stop.wait(), timeout=min(every, 3600.0))
