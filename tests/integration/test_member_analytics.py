"""/api/analytics/members: per member and per account, what members sent and earned, the
replies they drew and how long fans waited for an answer; built from the log by the
analytics_members projection, the same whether it applies events one by one or in batches."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, timedelta
from typing import Any

import httpx
import pytest

from adapters import bootstrap
from projections.analytics_members import MemberAnalyticsProjection, answer_bucket, bucket_seconds
from projections.runner import ProjectionRunner
from tests.support.catching_up import catch_up_to_head
from tests.support.fresh_app import auth_for
from tests.support.members import member as _member
from tests.support.message_log import Log

pytestmark = pytest.mark.timeout(60)

DAY = date(2025, 3, 4)
T0 = datetime(2025, 3, 4, 10, 0, tzinfo=UTC)
FIGURES = "/api/analytics/members"


def _at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


async def _history(log: Log, ann: str, bob: str) -> None:
    """One morning of two members in two conversations."""
    await log.sent(ann, 1, _at(0))
    await log.fan_wrote(1, _at(5))  # a reply to Ann: the fan waits from 10:05
    await log.fan_wrote(1, _at(6))  # Ann's again; still waiting from 10:05
    await log.sent(bob, 1, _at(15))  # Bob answers both: 600 s
    ppv = await log.sent(ann, 2, _at(20), price=900)
    await log.bought(ppv, _at(25))
    await log.sent(ann, 2, _at(60), campaign=7)  # a campaign's: draws replies, answers none
    await log.fan_wrote(2, _at(90))  # a reply to Ann's campaign message, waiting from 11:30
    await log.sent(ann, 2, _at(100), campaign=7)  # not an answer
    await log.sent(bob, 2, _at(130))  # Bob answers: 40 min
    await log.sent(None, 3, _at(140))  # a key of the first release: nobody's
    await log.fan_wrote(3, _at(150))  # unanswered


async def _catch_up(container: bootstrap.Container) -> None:
    await catch_up_to_head(container, bootstrap.all_projections())


async def test_members_are_credited_with_what_they_sent_earned_drew_and_answered(
    fresh: bootstrap.Container, api: httpx.AsyncClient
) -> None:
    tenant = f"agency-{uuid.uuid4().hex[:8]}"
    owner = await auth_for(fresh, tenant)
    ann, _ = await _member(api, owner, "chatter")
    bob, _ = await _member(api, owner, "manager")
    await _history(Log(fresh, tenant), ann, bob)
    await _catch_up(fresh)

    answer = await api.get(
        FIGURES, params={"from": "2025-03-01", "to": "2025-03-31"}, headers=owner
    )
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert (body["from"], body["to"]) == ("2025-03-01", "2025-03-31")
    members = {m["memberId"]: m for m in body["members"]}
    assert set(members) == {ann, bob, None}
    assert (members[ann]["role"], members[bob]["role"]) == ("chatter", "manager")
    assert _counts(members[ann]["totals"]) == {
        "messagesSent": 4,
        "ppvSent": 1,
        "ppvBought": 1,
        "revenueCents": 900,
        "replies": 3,
        "conversationsHandled": 2,
        "answers": 0,
    }
    assert members[ann]["totals"]["medianAnswerSeconds"] is None
    assert _counts(members[bob]["totals"]) == {
        "messagesSent": 2,
        "ppvSent": 0,
        "ppvBought": 0,
        "revenueCents": 0,
        "replies": 0,
        "conversationsHandled": 2,
        "answers": 2,
    }
    # Two answers, 600 s and 2400 s: the median is the first's bucket (the lower middle).
    assert members[bob]["totals"]["medianAnswerSeconds"] == round(
        bucket_seconds(answer_bucket(600)), 1
    )
    assert abs(members[bob]["totals"]["medianAnswerSeconds"] - 600) <= 600 * 0.09
    assert [d["date"] for d in members[bob]["days"]] == [DAY.isoformat()]
    # The day's median, kept on its row by the projection, is the span's here (one day).
    assert (
        members[bob]["days"][0]["medianAnswerSeconds"]
        == members[bob]["totals"]["medianAnswerSeconds"]
    )
    assert _counts(members[None]["totals"])["messagesSent"] == 1
    assert _counts(members[None]["totals"])["replies"] == 1
    (account,) = body["accounts"]
    assert account["accountId"] == tenant
    totals = account["totals"]
    assert totals["messagesSent"] == 7
    assert totals["revenueCents"] == 900
    assert totals["replies"] == 4
    assert totals["answers"] == 2


async def test_a_replay_in_one_batch_equals_the_projection_applied_event_by_event(
    fresh: bootstrap.Container,
) -> None:
    tenant = f"agency-{uuid.uuid4().hex[:8]}"
    await _history(Log(fresh, tenant), "ann", "bob")
    projection = MemberAnalyticsProjection()
    pool = fresh.pool
    tables: dict[int, dict[str, list[dict[str, Any]]]] = {}
    for batch_size in (1, 1000):
        schema = f"members_{batch_size}_{uuid.uuid4().hex[:6]}"
        await pool.execute(f'CREATE SCHEMA "{schema}"')
        for table in projection.tables:
            await pool.execute(
                f'CREATE TABLE "{schema}"."{table}" (LIKE public."{table}" INCLUDING ALL)'
            )
        await ProjectionRunner(
            fresh.projection_store, projection, schema=schema, batch_size=batch_size
        ).catch_up()
        tables[batch_size] = {
            table: [
                dict(r)
                for r in await pool.fetch(f'SELECT * FROM "{schema}".{table} ORDER BY 1, 2, 3')
            ]
            for table in projection.tables
        }
    assert tables[1]["analytics_member_daily"], "nothing was projected"
    for table in projection.tables:
        one, many = tables[1][table], tables[1000][table]
        key = sorted if table != "analytics_member_daily" else list
        assert key(map(repr, one)) == key(map(repr, many)), table


async def test_a_chatter_sees_its_own_figures_and_only_its_accounts(
    fresh: bootstrap.Container, api: httpx.AsyncClient
) -> None:
    tenant = f"agency-{uuid.uuid4().hex[:8]}"
    owner = await auth_for(fresh, tenant)
    other = await api.post("/api/workspace/accounts", json={"name": "B"}, headers=owner)
    assert other.status_code == 201, other.text
    account_b = other.json()["accountId"]
    ann, ann_key = await _member(api, owner, "chatter", [tenant])
    bob, _ = await _member(api, owner, "chatter")
    await _history(Log(fresh, tenant), ann, bob)
    await Log(fresh, account_b).sent(bob, 9, _at(0), price=500)
    await _catch_up(fresh)
    span = {"from": "2025-03-01", "to": "2025-03-31"}

    own = (await api.get(FIGURES, params=span, headers=ann_key)).json()
    assert [m["memberId"] for m in own["members"]] == [ann]
    assert [a["accountId"] for a in own["accounts"]] == [tenant]
    assert own["accounts"][0]["totals"]["messagesSent"] == 4  # Ann's share of the account
    refused = await api.get(FIGURES, params={**span, "memberId": bob}, headers=ann_key)
    assert refused.status_code == 403
    assert refused.json()["status"] == 403
    outside = await api.get(FIGURES, params={**span, "accountId": account_b}, headers=ann_key)
    assert outside.status_code == 422
    assert "accountId" in outside.text

    everyone = (await api.get(FIGURES, params=span, headers=owner)).json()
    assert sorted(a["accountId"] for a in everyone["accounts"]) == sorted([tenant, account_b])
    only_b = (await api.get(FIGURES, params={**span, "accountId": account_b}, headers=owner)).json()
    assert [(m["memberId"], m["totals"]["ppvSent"]) for m in only_b["members"]] == [(bob, 1)]


async def test_bad_spans_are_refused_with_a_problem(
    fresh: bootstrap.Container, api: httpx.AsyncClient
) -> None:
    owner = await auth_for(fresh, f"agency-{uuid.uuid4().hex[:8]}")
    for params, status in (
        ({"from": "2025-03-02", "to": "2025-03-01"}, 422),
        ({"from": "2024-01-01", "to": "2025-03-01"}, 422),
        ({"from": "March"}, 400),
    ):
        answer = await api.get(FIGURES, params=params, headers=owner)
        assert answer.status_code == status, (params, answer.text)
        assert answer.headers["content-type"].startswith("application/problem+json")
    # No span given: the last 30 days, ending today (UTC).
    default = (await api.get(FIGURES, headers=owner)).json()
    today = datetime.now(UTC).date()
    assert (default["from"], default["to"]) == (
        (today - timedelta(days=29)).isoformat(),
        today.isoformat(),
    )
    assert default["members"] == []
    assert default["accounts"] == []


def _counts(totals: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in totals.items() if k != "medianAnswerSeconds"}
