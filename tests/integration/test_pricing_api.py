"""GET /api/analytics/pricing over HTTP: offers and purchases per grid price from the log,
per account or per fan, scoped to a tenant, rebuilt alike, bad input refused."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import httpx
import pytest

from adapters import bootstrap
from adapters.postgres.rebuild import rebuild
from application.ports import EventMetadata, StreamWrite
from application.pricing import FAN_MIN_OFFERS, GRID
from domain.fan import Fan
from domain.message import Message
from projections.fans import FansProjection
from projections.pricing import PricingProjection
from tests.support.catching_up import catch_up_to_head
from tests.support.fresh_app import auth_for

pytestmark = pytest.mark.timeout(60)
PRICING = "/api/analytics/pricing"
BOUGHT = FAN_MIN_OFFERS // 4


def write(aggregate: Any, stream_type: str) -> StreamWrite:
    events = aggregate.collect_events()
    return StreamWrite(
        aggregate.id,
        stream_type,
        events,
        events[0].originator_version - 1,
        metadata=EventMetadata(
            tenant=aggregate.tenant, actor="test", correlation_id="c", causation_id="c"
        ),
    )


class Log:
    def __init__(self, container: bootstrap.Container) -> None:
        self.container = container

    async def append(self, *writes: StreamWrite) -> None:
        await self.container.events.append_all(list(writes), metadata=writes[0].metadata)  # type: ignore[arg-type]

    async def fan(self, fan_id: int, tenant: str) -> Fan:
        fan = Fan.register(fan_id=fan_id, tenant=tenant, name=f"Fan {fan_id}")
        fan.open_conversation(fan_id)
        await self.append(write(fan, "fan"))
        return fan

    async def offer(self, fan: Fan, price: int, *, sent: bool = True, bought: bool = False) -> None:
        message = Message.queue(
            message_id=str(uuid.uuid4()),
            tenant=fan.tenant,
            conversation_id=fan.fan_id,
            fan_id=fan.fan_id,
            content="for you",
            price_cents=price,
        )
        if sent:
            message.dispatch("normal")
            message.mark_sent("of-1")
        await self.append(write(message, "message"))
        if bought:
            message.purchase(price)
            fan.record_purchase(price, message.message_id)
            await self.append(write(message, "message"), write(fan, "fan"))


@pytest.fixture
async def offers(fresh: bootstrap.Container) -> dict[str, dict[str, str]]:
    """Tenant a: fan 1 had 20 offers at 500 and bought 5; fan 2 two at 2000, bought one;
    a free message and one at 800 never sent are no offers. Tenant b: fan 3, one at 300."""
    log = Log(fresh)
    first = await log.fan(1, "a")
    for offer in range(FAN_MIN_OFFERS):
        await log.offer(first, 500, bought=offer < BOUGHT)
    await log.offer(first, 0)
    await log.offer(first, 800, sent=False)
    second = await log.fan(2, "a")
    await log.offer(second, 2000, bought=True)
    await log.offer(second, 2000)
    other = await log.fan(3, "b")
    await log.offer(other, 300, bought=True)
    await catch_up_to_head(fresh, [PricingProjection(), FansProjection()])
    return {"a": await auth_for(fresh, "a"), "b": await auth_for(fresh, "b")}


def counted(body: dict[str, Any]) -> dict[int, tuple[int, int]]:
    return {p["priceCents"]: (p["offers"], p["purchases"]) for p in body["prices"] if p["offers"]}


async def test_the_accounts_pricing_counts_sent_priced_messages_and_their_purchases(
    api: httpx.AsyncClient, offers: dict[str, dict[str, str]]
) -> None:
    async with asyncio.timeout(50):
        response = await api.get(PRICING, headers=offers["a"])
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["basis"] == "account"
        assert counted(body) == {500: (FAN_MIN_OFFERS, BOUGHT), 2000: (2, 1)}
        assert [p["priceCents"] for p in body["prices"]] == list(GRID)
        at_500 = next(p for p in body["prices"] if p["priceCents"] == 500)
        rate = (1 + BOUGHT) / (2 + FAN_MIN_OFFERS)  # the Beta(1, 1) prior's posterior mean
        assert at_500["meanRate"] == pytest.approx(rate)
        assert at_500["expectedRevenueCents"] == pytest.approx(500 * rate)
        assert body["recommendedPriceCents"] in GRID
        assert body["modelPosition"] > 0


async def test_a_fan_with_enough_offers_is_priced_on_its_own_and_one_with_fewer_on_the_account(
    api: httpx.AsyncClient, offers: dict[str, dict[str, str]]
) -> None:
    async with asyncio.timeout(50):
        mine = (await api.get(PRICING, params={"fanId": 1}, headers=offers["a"])).json()
        assert mine["basis"] == "fan"
        assert counted(mine) == {500: (FAN_MIN_OFFERS, BOUGHT)}
        few = (await api.get(PRICING, params={"fanId": 2}, headers=offers["a"])).json()
        assert few["basis"] == "account"
        assert counted(few) == {500: (FAN_MIN_OFFERS, BOUGHT), 2000: (2, 1)}


async def test_pricing_sees_only_the_callers_own_offers(
    api: httpx.AsyncClient, offers: dict[str, dict[str, str]]
) -> None:
    async with asyncio.timeout(50):
        theirs = (await api.get(PRICING, headers=offers["b"])).json()
        assert counted(theirs) == {300: (1, 1)}
        # Another tenant's fan is no fan of this account: 404, as on every route.
        not_mine = await api.get(PRICING, params={"fanId": 3}, headers=offers["a"])
        assert not_mine.status_code == 404, not_mine.text
        assert not_mine.headers["content-type"].startswith("application/problem+json")
        assert "offers" not in not_mine.text


async def test_a_rebuild_counts_the_same_offers_again(
    fresh: bootstrap.Container, api: httpx.AsyncClient, offers: dict[str, dict[str, str]]
) -> None:
    async with asyncio.timeout(50):
        before = counted((await api.get(PRICING, headers=offers["a"])).json())
        await rebuild(fresh.pool, fresh.projection_store, [PricingProjection()])
        after = counted((await api.get(PRICING, headers=offers["a"])).json())
        assert after == before == {500: (FAN_MIN_OFFERS, BOUGHT), 2000: (2, 1)}


@pytest.mark.parametrize("fan_id", ["abc", "0", "-4", str(2**63), "1.5"])
async def test_a_fan_id_that_is_not_a_fan_id_is_400_problem_json(
    api: httpx.AsyncClient, offers: dict[str, dict[str, str]], fan_id: str
) -> None:
    async with asyncio.timeout(50):
        response = await api.get(PRICING, params={"fanId": fan_id}, headers=offers["a"])
        assert response.status_code == 400
        assert response.headers["content-type"].startswith("application/problem+json")


async def test_pricing_needs_a_key(api: httpx.AsyncClient) -> None:
    async with asyncio.timeout(50):
        response = await api.get(PRICING)
        assert response.status_code == 401
