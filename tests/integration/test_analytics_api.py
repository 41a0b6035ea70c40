"""/api/analytics: revenue per fan per day, cohorts with spend and churn, campaign revenue per
day — empty on a store that had events before them, filled by a rebuild, scoped to a tenant."""

from __future__ import annotations

import asyncio
import dataclasses
import uuid
from datetime import UTC, date, datetime, timedelta
from typing import Any

import httpx
import pytest

from adapters import bootstrap
from adapters.postgres.rebuild import rebuild
from application.ports import EventMetadata, StreamWrite
from domain.fan import Fan
from domain.message import Message
from projections.analytics_cohorts import FanCohortsProjection
from projections.runner import ProjectionRunner
from tests.support.fresh_app import auth_for

pytestmark = pytest.mark.timeout(60)

NOW = datetime.now(UTC)
JAN_10 = datetime(2025, 1, 10, 15, tzinfo=UTC)
JAN_12 = datetime(2025, 1, 12, 23, 30, tzinfo=UTC)
FEB_01 = datetime(2025, 2, 1, 9, tzinfo=UTC)


def at(aggregate: Any, when: datetime) -> list[Any]:
    """The aggregate's pending events, as if decided at ``when``."""
    return [dataclasses.replace(e, timestamp=when) for e in aggregate.collect_events()]


def write(aggregate: Any, stream_type: str, when: datetime) -> StreamWrite:
    events = at(aggregate, when)
    return StreamWrite(
        aggregate.id,
        stream_type,
        events,
        events[0].originator_version - 1,
        metadata=EventMetadata(
            tenant=aggregate.tenant, actor="test", correlation_id="c", causation_id="c"
        ),
    )


class Shop:
    def __init__(self, container: bootstrap.Container) -> None:
        self.container = container

    async def append(self, *writes: StreamWrite) -> None:
        await self.container.events.append_all(list(writes), metadata=writes[0].metadata)  # type: ignore[arg-type]

    async def fan(self, fan_id: int, tenant: str, when: datetime) -> Fan:
        fan = Fan.register(fan_id=fan_id, tenant=tenant, name=f"Fan {fan_id}")
        fan.open_conversation(fan_id)
        await self.append(write(fan, "fan", when))
        return fan

    async def sold(
        self, fan: Fan, price: int, queued: datetime, bought: datetime, campaign: int | None
    ) -> None:
        message = Message.queue(
            message_id=str(uuid.uuid4()),
            tenant=fan.tenant,
            conversation_id=fan.fan_id,
            fan_id=fan.fan_id,
            content="for you",
            price_cents=price,
            campaign_id=campaign,
        )
        message.dispatch("normal")
        message.mark_sent("of-1")
        await self.append(write(message, "message", queued))
        message.purchase(price)
        fan.record_purchase(price, message.message_id)
        # As the purchase webhook records it: both events in one transaction.
        await self.append(write(message, "message", bought), write(fan, "fan", bought))


@pytest.fixture
async def history(fresh: bootstrap.Container) -> dict[str, dict[str, str]]:
    """Two fans of tenant a (one quiet since February, one buying yesterday), one of b."""
    shop = Shop(fresh)
    first = await shop.fan(1, "a", JAN_10)
    await shop.sold(first, 1000, JAN_10, JAN_12, campaign=5)
    await shop.sold(first, 300, JAN_10, FEB_01, campaign=None)
    recent = await shop.fan(2, "a", NOW - timedelta(days=3))
    await shop.sold(recent, 500, NOW - timedelta(days=2), NOW - timedelta(days=1), campaign=6)
    other = await shop.fan(3, "b", JAN_10)
    await shop.sold(other, 700, JAN_10, JAN_12, campaign=9)
    # The core read models are live; the analytics ones arrive after the events did.
    for projection in bootstrap.core_projections():
        await ProjectionRunner(fresh.projection_store, projection).catch_up()
    return {"a": await auth_for(fresh, "a"), "b": await auth_for(fresh, "b")}


async def test_analytics_start_empty_on_an_existing_log_and_a_rebuild_fills_them(
    fresh: bootstrap.Container, api: httpx.AsyncClient, history: dict[str, dict[str, str]]
) -> None:
    async with asyncio.timeout(50):
        empty = await api.get("/api/analytics/fans/revenue", headers=history["a"])
        assert empty.status_code == 200
        assert empty.json() == {"days": [], "nextCursor": None}

        result = await rebuild(
            fresh.pool, fresh.projection_store, bootstrap.analytics_projections()
        )
        assert result.events > 0

        revenue = await api.get("/api/analytics/fans/revenue", headers=history["a"])
        yesterday = (NOW - timedelta(days=1)).date().isoformat()
        assert revenue.json() == {
            "days": [
                {"fanId": 2, "day": yesterday, "revenueCents": 500, "purchases": 1},
                {"fanId": 1, "day": "2025-02-01", "revenueCents": 300, "purchases": 1},
                {"fanId": 1, "day": "2025-01-12", "revenueCents": 1000, "purchases": 1},
            ],
            "nextCursor": None,
        }


async def rebuilt(fresh: bootstrap.Container) -> None:
    await rebuild(fresh.pool, fresh.projection_store, bootstrap.analytics_projections())


async def test_fan_revenue_pages_filters_and_stays_in_the_tenant(
    fresh: bootstrap.Container, api: httpx.AsyncClient, history: dict[str, dict[str, str]]
) -> None:
    async with asyncio.timeout(50):
        await rebuilt(fresh)
        days, cursor = [], None
        while True:
            params = {"limit": 1} | ({"cursor": cursor} if cursor else {})
            page = (
                await api.get("/api/analytics/fans/revenue", params=params, headers=history["a"])
            ).json()
            days += page["days"]
            cursor = page["nextCursor"]
            if cursor is None:
                break
        assert [(d["fanId"], d["day"]) for d in days] == [
            (2, (NOW - timedelta(days=1)).date().isoformat()),
            (1, "2025-02-01"),
            (1, "2025-01-12"),
        ]
        january = await api.get(
            "/api/analytics/fans/revenue",
            params={"from": "2025-01-01", "to": "2025-01-31", "fanId": 1},
            headers=history["a"],
        )
        assert [d["revenueCents"] for d in january.json()["days"]] == [1000]
        theirs = await api.get("/api/analytics/fans/revenue", headers=history["b"])
        assert [(d["fanId"], d["revenueCents"]) for d in theirs.json()["days"]] == [(3, 700)]
        not_mine = await api.get(
            "/api/analytics/fans/revenue", params={"fanId": 3}, headers=history["a"]
        )
        assert not_mine.json()["days"] == []


async def test_cohorts_count_fans_by_first_month_with_spend_and_churn_after_30_quiet_days(
    fresh: bootstrap.Container, api: httpx.AsyncClient, history: dict[str, dict[str, str]]
) -> None:
    async with asyncio.timeout(50):
        await rebuilt(fresh)
        response = await api.get("/api/analytics/cohorts", headers=history["a"])
        assert response.status_code == 200
        body = response.json()
        assert body["churnAfterDays"] == 30
        assert body["cohortBy"] == ["subscribedAt", "firstSeen"]
        recent_month = (NOW - timedelta(days=3)).strftime("%Y-%m")
        assert body["cohorts"] == [
            {
                "month": "2025-01",
                "fans": 1,
                "fansBySubscribedAt": 0,
                "fansByFirstSeen": 1,
                "spendCents": 1300,
                "purchases": 2,
                "activeFans": 0,
                "churnedFans": 1,
                "churnRate": 1.0,
            },
            {
                "month": recent_month,
                "fans": 1,
                "fansBySubscribedAt": 0,
                "fansByFirstSeen": 1,
                "spendCents": 500,
                "purchases": 1,
                "activeFans": 1,
                "churnedFans": 0,
                "churnRate": 0.0,
            },
        ]


async def test_fans_with_a_known_subscription_day_join_the_cohort_of_that_month(
    fresh: bootstrap.Container, api: httpx.AsyncClient
) -> None:
    """Imported today with a 2024 subscription: the cohort is 2024's, not this month's. A day
    learnt later (a re-import, a PATCH) moves the fan; a day cleared moves it back."""
    async with asyncio.timeout(50):
        shop = Shop(fresh)
        imported = Fan.register(
            fan_id=11, tenant="c", handle="ann", subscribed_at=date(2024, 3, 18)
        )
        await shop.append(write(imported, "fan", NOW))
        learnt = Fan.register(fan_id=12, tenant="c", handle="bob")
        await shop.append(write(learnt, "fan", JAN_10))
        learnt.update(subscribed_at=date(2024, 11, 30))
        await shop.append(write(learnt, "fan", NOW))
        cleared = Fan.register(fan_id=13, tenant="c", handle="cy", subscribed_at=date(2024, 3, 1))
        await shop.append(write(cleared, "fan", JAN_12))
        cleared.update(subscribed_at=None)
        await shop.append(write(cleared, "fan", NOW))
        unknown = Fan.register(fan_id=14, tenant="c", handle="dee")
        await shop.append(write(unknown, "fan", NOW))
        headers = await auth_for(fresh, "c")

        # Event by event (the live projector) and as one batch (a rebuild) agree.
        await ProjectionRunner(
            fresh.projection_store, FanCohortsProjection(), batch_size=1
        ).catch_up()
        live = (await api.get("/api/analytics/cohorts", headers=headers)).json()
        await rebuilt(fresh)
        body = (await api.get("/api/analytics/cohorts", headers=headers)).json()
        assert body["cohorts"] == live["cohorts"]

        assert body["cohortBy"] == ["subscribedAt", "firstSeen"]
        placed = [
            (c["month"], c["fans"], c["fansBySubscribedAt"], c["fansByFirstSeen"])
            for c in body["cohorts"]
        ]
        assert placed == [
            ("2024-03", 1, 1, 0),
            ("2024-11", 1, 1, 0),
            ("2025-01", 1, 0, 1),
            (NOW.strftime("%Y-%m"), 1, 0, 1),
        ]
        in_2024 = await api.get(
            "/api/analytics/cohorts",
            params={"from": "2024-01-01", "to": "2024-12-31"},
            headers=headers,
        )
        assert [c["month"] for c in in_2024.json()["cohorts"]] == ["2024-03", "2024-11"]


async def test_campaign_revenue_per_day_credits_purchases_to_the_campaign_of_the_message(
    fresh: bootstrap.Container, api: httpx.AsyncClient, history: dict[str, dict[str, str]]
) -> None:
    async with asyncio.timeout(50):
        await rebuilt(fresh)
        response = await api.get(
            "/api/analytics/campaigns/revenue", params={"campaignId": 5}, headers=history["a"]
        )
        assert response.json()["days"] == [
            {
                "campaignId": 5,
                "day": "2025-01-12",
                "messagesQueued": 0,
                "revenueCents": 1000,
                "purchases": 1,
            },
            {
                "campaignId": 5,
                "day": "2025-01-10",
                "messagesQueued": 1,
                "revenueCents": 0,
                "purchases": 0,
            },
        ]
        every = await api.get("/api/analytics/campaigns/revenue", headers=history["a"])
        assert {d["campaignId"] for d in every.json()["days"]} == {5, 6}


@pytest.mark.parametrize(
    ("path", "params", "status"),
    [
        ("/api/analytics/fans/revenue", {"from": "2025-02-01", "to": "2025-01-01"}, 422),
        ("/api/analytics/fans/revenue", {"from": "yesterday"}, 400),
        ("/api/analytics/fans/revenue", {"cursor": "not-a-cursor"}, 422),
        ("/api/analytics/fans/revenue", {"limit": 0}, 400),
        ("/api/analytics/fans/revenue", {"fanId": "x"}, 400),
        ("/api/analytics/campaigns/revenue", {"to": "2025-13-01"}, 400),
        ("/api/analytics/cohorts", {"from": "2025-03-01", "to": "2025-01-01"}, 422),
    ],
)
async def test_bad_analytics_queries_get_a_problem(
    api: httpx.AsyncClient, history: dict[str, dict[str, str]], path: str, params: Any, status: int
) -> None:
    async with asyncio.timeout(30):
        response = await api.get(path, params=params, headers=history["a"])
        assert response.status_code == status, response.text
        assert response.headers["content-type"].startswith("application/problem+json")


async def test_analytics_need_an_api_key(api: httpx.AsyncClient) -> None:
    async with asyncio.timeout(30):
        response = await api.get("/api/analytics/cohorts")
        assert response.status_code == 401
