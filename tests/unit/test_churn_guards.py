"""Guards around churn training found in review: a bad interval, a day in the future, one
account's failure, an empty tenant filter."""

from __future__ import annotations

import argparse
import contextlib
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, timedelta
from types import SimpleNamespace
from typing import Any

import pytest
from eventsourcing.persistence import InfrastructureFactoryError

from adapters import analytics
from adapters.cli_models import _as_of_day
from adapters.config import Settings
from adapters.postgres.eventsourcing_log import Factory
from application.churn_training import Trained
from worker import churn as churn_worker

DB = {"DATABASE_URL": "postgresql://localhost/fancrm"}


@pytest.mark.parametrize("value", ["0", "-5", "nan", "inf"])
def test_a_retrain_interval_that_is_not_a_positive_number_of_seconds_is_refused(
    value: str,
) -> None:
    with pytest.raises(SystemExit, match="CRM_CHURN_RETRAIN_SECONDS"):
        Settings.from_env({**DB, "CRM_CHURN_RETRAIN_SECONDS": value})
    assert Settings.from_env({**DB, "CRM_CHURN_RETRAIN_SECONDS": "60"}).churn_retrain_seconds == 60


def test_training_as_of_a_day_takes_past_days_and_refuses_the_future_and_nonsense() -> None:
    today = datetime.now(UTC).date()
    assert _as_of_day("2026-05-31") == date(2026, 5, 31)
    assert _as_of_day(today.isoformat()) == today
    for text in ((today + timedelta(days=1)).isoformat(), "9999-12-31", "0001-01-01", "may"):
        with pytest.raises(argparse.ArgumentTypeError):
            _as_of_day(text)


class _Churn:
    @contextlib.asynccontextmanager
    async def training_turn(self, tenant: str) -> AsyncIterator[bool]:
        yield True

    async def tenants(self) -> list[str]:
        return ["a-broken", "b", "c"]

    async def latest_model(self, tenant: str) -> None:
        return None


async def test_one_accounts_failure_does_not_stop_the_others_being_retrained(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async def train(store: Any, fit: Any, tenant: str, *, now: datetime) -> Trained:
        if tenant == "a-broken":
            raise TimeoutError("statement timeout")
        return Trained(version=7, model=None, scored=0)  # type: ignore[arg-type]

    monkeypatch.setattr(churn_worker, "train_churn", train)
    container: Any = SimpleNamespace(churn=_Churn())
    outcomes = await churn_worker.retrain_due(
        container, every=86_400, now=lambda: datetime.now(UTC)
    )
    assert outcomes == {"a-broken": "failed: TimeoutError", "b": 7, "c": 7}


@pytest.mark.parametrize("tenant", ["", "  "])
def test_an_empty_tenant_filter_is_refused_not_read_as_every_tenant(tenant: str) -> None:
    with pytest.raises(ValueError, match="tenant"):
        analytics.replay(lambda event: None, tenant=tenant, env=DB)


def test_the_log_module_refuses_a_tenant_filter_set_but_empty() -> None:
    factory = Factory({**DB, "FANCRM_TENANT": ""})
    with pytest.raises(InfrastructureFactoryError, match="FANCRM_TENANT"):
        factory.application_recorder()
    factory.close()
