"""Churn prediction end to end: a model trained on one cut-off and validated on a later one,
GET /api/analytics/churn over HTTP (409 before a model, pages riskiest first, tenants apart,
roles), the `atRisk` segment, erasure, and `crm models train churn`."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from adapters import bootstrap
from adapters.churn_fit import fit_logistic
from adapters.postgres.api_keys import create_api_key
from application.churn import AT_RISK
from application.churn_training import train_churn
from projections.churn_activity import ChurnActivityProjection
from projections.conversations import ConversationsProjection
from projections.fans import FansProjection
from tests.support.catching_up import catch_up_to_head
from tests.support.churn_history import History
from tests.support.fresh_app import auth_for
from tests.support.settings import TEST_MASTER_KEY
from worker.churn import retrain_due

pytestmark = pytest.mark.timeout(120)
NOW = datetime(2026, 6, 30, 12, tzinfo=UTC)
START = datetime(2026, 1, 1, 9, tzinfo=UTC)
FANS = 56
CHURN = "/api/analytics/churn"


@pytest.fixture
async def history(fresh: bootstrap.Container) -> History:
    """Tenant "a": 56 fans who write every 7 days and buy every 21 until the day they stop:
    fans 1-36 one every 4 days from February on, the 20 others never."""
    log = History(fresh, "a")
    for fan_id in range(1, FANS + 1):
        log.fan(fan_id, START)
        stop = START + timedelta(days=20 + 4 * fan_id) if fan_id <= 36 else NOW
        day = 0
        while (when := START + timedelta(days=day, hours=fan_id % 5)) < stop:
            log.fan_wrote(fan_id, when)
            if day % 21 == 0:
                log.bought(fan_id, when + timedelta(hours=1), 1500)
            day += 7
    await log.flush()
    await catch_up_to_head(
        fresh, [ChurnActivityProjection(), FansProjection(), ConversationsProjection()]
    )
    return log


async def test_a_model_validated_on_a_later_window_ranks_the_account_s_fans_riskiest_first(
    fresh: bootstrap.Container, api: httpx.AsyncClient, history: History
) -> None:
    auth = await auth_for(fresh, "a")
    before = await api.get(CHURN, headers=auth)
    assert before.status_code == 409
    assert before.json()["type"].endswith("/model-not-trained")
    trained = await train_churn(fresh.churn, fit_logistic, "a", now=NOW)
    model = trained.model
    assert (model.train_cutoff, model.validation_cutoff) == ("2026-05-01", "2026-05-31")
    assert model.metrics.train_fans == model.metrics.validation_fans == FANS
    assert 0 < model.metrics.validation_churn_rate < 1
    assert model.metrics.auc is not None
    assert model.metrics.auc > 0.9
    assert model.position > 0
    assert trained.version == 1
    assert trained.scored == FANS

    first = (await api.get(CHURN, headers=auth)).json()
    assert first["model"]["version"] == 1
    assert first["model"]["position"] == model.position
    assert len(first["fans"]) == 50
    assert first["nextCursor"]
    second = (await api.get(CHURN, params={"cursor": first["nextCursor"]}, headers=auth)).json()
    assert second["nextCursor"] is None
    fans = first["fans"] + second["fans"]
    assert sorted(f["fanId"] for f in fans) == list(range(1, FANS + 1))
    risks = [f["risk"] for f in fans]
    assert risks == sorted(risks, reverse=True)
    # The early stoppers are the riskiest; the fans who never stopped, the safest.
    assert {f["fanId"] for f in fans[:10]} <= set(range(1, 37))
    assert {f["fanId"] for f in fans[-20:]} == set(range(37, FANS + 1))
    assert all(len(f["factors"]) == 3 for f in fans)
    assert set(fans[0]["factors"][0]) == {"feature", "value", "impact"}

    for role in ("auditor", "admin"):
        key, _ = await create_api_key(fresh.pool, user_id="a", role=role)
        seen = await api.get(CHURN, headers={"Authorization": f"Bearer {key}"})
        assert seen.status_code == 200
        assert seen.json()["fans"] == first["fans"]
    other = await auth_for(fresh, "b")
    assert (await api.get(CHURN, headers=other)).status_code == 409
    await train_churn(fresh.churn, fit_logistic, "a", now=NOW)
    again = (await api.get(CHURN, headers=auth)).json()
    assert again["model"]["version"] == 2
    # Page 2 of the model retrained since would walk another ranking: start again instead.
    stale = await api.get(CHURN, params={"cursor": first["nextCursor"]}, headers=auth)
    assert stale.status_code == 409
    assert stale.json()["type"].endswith("/churn-model-changed")
    fresh_page = await api.get(CHURN, params={"cursor": again["nextCursor"]}, headers=auth)
    assert fresh_page.json()["model"]["version"] == 2
    bad = await api.get(CHURN, params={"cursor": "not-a-cursor"}, headers=auth)
    assert bad.status_code == 422


async def test_the_at_risk_segment_picks_the_fans_scored_at_risk_and_erasure_forgets_one(
    fresh: bootstrap.Container, api: httpx.AsyncClient, history: History
) -> None:
    await train_churn(fresh.churn, fit_logistic, "a", now=NOW)
    at_risk = {
        row["fan_id"]
        for row in await fresh.pool.fetch(
            "SELECT fan_id FROM churn_scores WHERE tenant_id = 'a' AND risk >= $1", AT_RISK
        )
    }
    assert 0 < len(at_risk) < FANS
    sent = await api.post(
        "/api/messages/bulk",
        json={"segment": {"atRisk": True}, "content": "We miss you {{name|babe}}"},
        headers=await auth_for(fresh, "a"),
    )
    assert sent.status_code == 202, sent.text
    assert sent.json()["totalRecipients"] == len(at_risk)
    recipients = await fresh.pool.fetch(
        "SELECT DISTINCT (data->>'fan_id')::bigint AS fan_id FROM events"
        " WHERE event_type = 'MessageQueued' AND (data->>'campaign_id')::bigint = $1",
        sent.json()["campaignId"],
    )
    assert {row["fan_id"] for row in recipients} == at_risk
    # Another account's at-risk segment holds none of these fans.
    other = await api.post(
        "/api/messages/bulk",
        json={"segment": {"atRisk": True}, "content": "Hi"},
        headers=await auth_for(fresh, "b"),
    )
    assert other.status_code == 422

    # Erased: no row of the fan stays anywhere, and the model never held one.
    auth = await auth_for(fresh, "a")
    erased = await api.delete("/api/crm/fans/7", params={"erase": "true"}, headers=auth)
    assert erased.status_code == 200, erased.text
    deleted = await api.delete("/api/crm/fans/8", headers=auth)
    assert deleted.status_code == 200, deleted.text
    await catch_up_to_head(fresh, [ChurnActivityProjection()])
    # Deleted, not erased: no score any more, its history stays for training.
    assert not await fresh.pool.fetchval("SELECT count(*) FROM churn_scores WHERE fan_id = 8")
    assert await fresh.pool.fetchval("SELECT count(*) FROM churn_fan_days WHERE fan_id = 8")
    for table in ("churn_fans", "churn_fan_days", "churn_scores"):
        assert not await fresh.pool.fetchval(
            f"SELECT count(*) FROM {table} WHERE tenant_id = 'a' AND fan_id = 7"
        ), table
    stored = await fresh.pool.fetchval("SELECT parameters::text FROM churn_models")
    assert set(json.loads(stored)) == {"features", "means", "scales", "coefficients", "intercept"}
    page = (await api.get(CHURN, headers=auth)).json()
    assert {7, 8}.isdisjoint(f["fanId"] for f in page["fans"])


async def test_crm_models_train_churn_trains_from_the_shell_and_the_worker_retrains_when_due(
    fresh: bootstrap.Container, fresh_database_url: str, history: History
) -> None:
    env = {**os.environ, "DATABASE_URL": fresh_database_url, "CRM_MASTER_KEY": TEST_MASTER_KEY}
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        "from adapters.cli import main; main()",
        *("models", "train", "churn", "--user", "a", "--as-of", NOW.date().isoformat()),
        env=env,
        cwd=Path(__file__).resolve().parents[2],
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await process.communicate()
    assert process.returncode == 0, err.decode()
    line = json.loads(out.decode().strip().splitlines()[-1])
    assert line["trained"] is True
    assert line["version"] == 1
    assert line["scored"] == FANS
    assert line["validationCutoff"] == "2026-05-31"
    assert line["metrics"]["auc"] > 0.9
    assert await fresh.pool.fetchval("SELECT count(*) FROM churn_scores") == FANS

    # The worker's pass: the model trained an hour ago is not due; two days later it is.
    assert await retrain_due(fresh, every=86_400, now=lambda: NOW + timedelta(hours=1)) == {}
    later = await retrain_due(fresh, every=86_400, now=lambda: NOW + timedelta(days=2))
    assert later == {"a": 2}
    # Two replicas' passes at once: one trains, the other finds it trained or in training.
    due = NOW + timedelta(days=4)
    passes = [retrain_due(fresh, every=86_400, now=lambda: due) for _ in range(2)]
    assert sorted(map(str, await asyncio.gather(*passes))) == ["{'a': 3}", "{}"]
