"""The ``atRisk`` sequence trigger end to end: the automation worker's scan enrols the fans the
account's latest churn model scores at risk (the campaigns' threshold), once per model under
the re-entry rule, never another account's fans, never a deleted or erased fan's."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx
import pytest

from adapters import bootstrap
from application.churn import AT_RISK, ChurnParameters
from application.churn_training import ChurnMetrics, FanScore, TrainedModel
from domain.enrolment import enrolment_stream_id
from projections.churn_activity import ChurnActivityProjection
from tests.support.campaigns import catch_up_all
from tests.support.catching_up import catch_up_to_head
from tests.support.churn_history import History
from tests.support.fresh_app import auth_for
from worker.automations import AutomationWorker

pytestmark = pytest.mark.timeout(60)
START = datetime(2026, 1, 1, 9, tzinfo=UTC)
SEQUENCES = "/api/crm/sequences"
# Fan 2 sits on the threshold: at risk, as the campaigns' segment counts it.
RISKS = {"a": {1: 0.9, 2: AT_RISK, 3: 0.49, 4: 0.8, 5: 0.7, 6: 0.1}, "b": {11: 0.95, 12: 0.2}}


class Clock:
    def __init__(self) -> None:
        self.at = datetime.now(UTC)

    def __call__(self) -> datetime:
        return self.at


def model(trained_at: datetime) -> TrainedModel:
    """A model as training saves one; its parameters are not read by the scan."""
    return TrainedModel(
        trained_at=trained_at,
        position=1,
        train_cutoff="2026-05-01",
        validation_cutoff="2026-05-31",
        parameters=ChurnParameters(
            features=(), means=(), scales=(), coefficients=(), intercept=0.0
        ),
        metrics=ChurnMetrics(
            train_fans=6,
            train_churn_rate=0.5,
            validation_fans=6,
            validation_churn_rate=0.5,
            auc=None,
            precision_at_10=0.0,
            recency_auc=None,
            recency_precision_at_10=0.0,
        ),
    )


async def score(fresh: bootstrap.Container, tenant: str, trained_at: datetime) -> None:
    scores = [FanScore(fan_id=f, risk=r, factors=[]) for f, r in RISKS[tenant].items()]
    await fresh.churn.save(tenant, model(trained_at), scores)


async def sequence(
    api: httpx.AsyncClient, auth: dict[str, str], reentry: str, **trigger: object
) -> int:
    response = await api.post(
        SEQUENCES,
        json={
            "name": f"Win back ({reentry})",
            "trigger": {"type": "atRisk", **trigger},
            "steps": [{"content": "We miss you {{first_name|babe}}"}],
            "reentry": reentry,
        },
        headers=auth,
    )
    assert response.status_code == 201, response.text
    assert response.json()["sequence"]["trigger"] == {"type": "atRisk"}
    return int(response.json()["sequence"]["id"])


async def scan(worker: AutomationWorker) -> int:
    """Scans until a round enrols nothing: every page of every sequence."""
    total = 0
    while started := await worker.scan_once():
        total += started
    return total


async def runs(fresh: bootstrap.Container, sequence_id: int, fans: range) -> dict[int, list[str]]:
    """Each fan's runs through the sequence: the status of entry 1, 2, ... as recorded."""
    found: dict[int, list[str]] = {}
    for fan_id in fans:
        for entry in range(1, 4):
            recorded = await fresh.events.load(enrolment_stream_id(sequence_id, fan_id, entry))
            if not recorded:
                break
            run = None
            for item in recorded:
                run = item.event.mutate(run)
            found.setdefault(fan_id, []).append(run.status)  # type: ignore[attr-defined]
    return found


async def test_the_fans_scored_at_risk_enter_once_per_model_under_the_re_entry_rule(
    fresh: bootstrap.Container, api: httpx.AsyncClient
) -> None:
    for tenant, risks in RISKS.items():
        history = History(fresh, tenant)
        for fan_id in risks:
            history.fan(fan_id, START)
        await history.flush()
    await catch_up_to_head(fresh, [ChurnActivityProjection()])
    auth = {tenant: await auth_for(fresh, tenant) for tenant in RISKS}
    # An extra field is dropped, as other triggers' are; a misspelt type is refused.
    once = await sequence(api, auth["a"], "never", days=30)
    always = await sequence(api, auth["a"], "always")
    theirs = await sequence(api, auth["b"], "never")
    misspelt = await api.post(
        SEQUENCES,
        json={"name": "x", "trigger": {"type": "atrisk"}, "steps": [{"content": "x"}]},
        headers=auth["a"],
    )
    assert misspelt.status_code == 400, misspelt.text
    await catch_up_all(fresh)  # the scan finds its sequences in their view

    clock = Clock()
    worker = AutomationWorker(fresh, now=clock)
    assert await scan(worker) == 0  # no model yet: nobody is at risk

    await score(fresh, "a", clock.at - timedelta(hours=2))
    await score(fresh, "b", clock.at - timedelta(hours=2))
    # Fan 4 erased, its score deleted by the projector; fan 5 deleted while the projector
    # lags, its score still there: the scan looks at the fan's stream too.
    erased = await api.delete("/api/crm/fans/4", params={"erase": "true"}, headers=auth["a"])
    assert erased.status_code == 200, erased.text
    await catch_up_to_head(fresh, [ChurnActivityProjection()])
    deleted = await api.delete("/api/crm/fans/5", headers=auth["a"])
    assert deleted.status_code == 200, deleted.text
    assert not await fresh.pool.fetchval("SELECT count(*) FROM churn_scores WHERE fan_id = 4")
    assert await fresh.pool.fetchval("SELECT count(*) FROM churn_scores WHERE fan_id = 5")

    assert await scan(worker) == 2 + 2 + 1
    assert await runs(fresh, once, range(1, 13)) == {1: ["active"], 2: ["active"]}
    assert await runs(fresh, always, range(1, 13)) == {1: ["active"], 2: ["active"]}
    assert await runs(fresh, theirs, range(1, 13)) == {11: ["active"]}
    assert await scan(worker) == 0  # scanned again: the runs it started are found

    # A retrain scoring them at risk again is a new trigger: "always" starts another run
    # (ending the one under way), "never" does not.
    clock.at += timedelta(hours=1)
    await score(fresh, "a", clock.at - timedelta(minutes=1))
    assert await scan(worker) == 2
    assert await runs(fresh, once, range(1, 13)) == {1: ["active"], 2: ["active"]}
    reentered = ["exited", "active"]
    assert await runs(fresh, always, range(1, 13)) == {1: reentered, 2: reentered}
    assert await runs(fresh, theirs, range(1, 13)) == {11: ["active"]}
