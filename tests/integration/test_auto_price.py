"""``priceCents: "auto"`` on a send: the pricing model's price is decided when the message is
queued, recorded on it and in its outbox row, and never decided again for the same id.

The evidence is written straight into the pricing read model (the tenant's own rows): what a
decision reads, without running every other test's events through the pricing projector."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Awaitable, Callable

import httpx
import pytest

from adapters.bootstrap import Container
from application.campaign_fan_out import campaign_message_id
from application.message_streams import load_message
from application.pricing import GRID

pytestmark = pytest.mark.timeout(60)

SEND = "/api/onlyfans/messages/send"
FANS = "/api/crm/fans"
BULK = "/api/messages/bulk"


@pytest.fixture
def auth(api_key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {api_key}"}


async def new_fan(http: httpx.AsyncClient, auth: dict[str, str]) -> int:
    response = await http.post(FANS, json={"name": "Ann"}, headers=auth)
    assert response.status_code == 201, response.text
    return response.json()["fan"]["id"]


async def evidence_favouring(container: Container, tenant: str, best: int) -> None:
    """A thousand offers at each grid price: half bought at ``best``, 1% elsewhere."""
    await container.pool.execute("DELETE FROM pricing_account_counts WHERE tenant_id = $1", tenant)
    await container.pool.executemany(
        "INSERT INTO pricing_account_counts (tenant_id, price_cents, offers, purchases)"
        " VALUES ($1, $2, 1000, $3)",
        [(tenant, price, 500 if price == best else 10) for price in GRID],
    )


async def recorded_price(container: Container, tenant: str, message_id: str) -> int:
    message, _ = await load_message(container.events, message_id, tenant=tenant)
    return message.price_cents  # type: ignore[no-any-return]


async def outbox_prices(container: Container, message_id: str) -> list[int]:
    rows = await container.pool.fetch(
        "SELECT body FROM outbox WHERE message_id = $1 ORDER BY id", message_id
    )
    return [json.loads(row["body"])["priceCents"] for row in rows]


async def test_auto_records_the_models_grid_price_on_the_message_and_its_outbox_row(
    container: Container, http: httpx.AsyncClient, auth: dict[str, str], tenant: str
) -> None:
    async with asyncio.timeout(50):
        await evidence_favouring(container, tenant, 2000)
        fan = await new_fan(http, auth)
        response = await http.post(
            SEND,
            json={"recipientId": fan, "content": "New set", "priceCents": "auto"},
            headers=auth,
        )
        assert response.status_code == 202, response.text
        message_id = response.json()["messageId"]
        assert await recorded_price(container, tenant, message_id) == 2000
        assert await outbox_prices(container, message_id) == [2000]


async def test_a_repeat_of_an_auto_priced_message_id_keeps_the_price_first_decided(
    container: Container, http: httpx.AsyncClient, auth: dict[str, str], tenant: str
) -> None:
    async with asyncio.timeout(50):
        await evidence_favouring(container, tenant, 2000)
        fan = await new_fan(http, auth)
        body = {
            "recipientId": fan,
            "content": "New set",
            "priceCents": "auto",
            "messageId": str(uuid.uuid4()),
        }
        first = await http.post(SEND, json=body, headers=auth)
        assert first.status_code == 202, first.text
        await evidence_favouring(container, tenant, 300)
        again = await http.post(SEND, json=body, headers=auth)
        assert again.status_code == 202, again.text
        assert again.json()["position"] == first.json()["position"]
        assert await recorded_price(container, tenant, body["messageId"]) == 2000
        assert await outbox_prices(container, body["messageId"]) == [2000]
        fresh = await http.post(SEND, json={**body, "messageId": str(uuid.uuid4())}, headers=auth)
        assert await recorded_price(container, tenant, fresh.json()["messageId"]) == 300


@pytest.mark.parametrize("price", ["cheap", "AUTO", "", 12.5, [300], {"auto": True}])
async def test_a_price_that_is_neither_cents_nor_auto_is_4xx_problem_json(
    http: httpx.AsyncClient, auth: dict[str, str], price: object
) -> None:
    async with asyncio.timeout(50):
        fan = await new_fan(http, auth)
        response = await http.post(
            SEND, json={"recipientId": fan, "content": "Hi", "priceCents": price}, headers=auth
        )
        assert 400 <= response.status_code < 500, response.text
        assert response.headers["content-type"].startswith("application/problem+json")


async def fan_evidence(container: Container, tenant: str, fan_id: int, best: int) -> None:
    """A thousand offers of the fan's at each grid price: half bought at ``best``, 1% else."""
    await container.pool.executemany(
        "INSERT INTO pricing_fan_counts (tenant_id, fan_id, price_cents, offers, purchases)"
        " VALUES ($1, $2, $3, 1000, $4)",
        [(tenant, fan_id, price, 500 if price == best else 10) for price in GRID],
    )


async def test_a_bulk_campaign_priced_auto_prices_each_recipient_for_itself(
    container: Container,
    http: httpx.AsyncClient,
    auth: dict[str, str],
    tenant: str,
    catch_up: Callable[[], Awaitable[int]],
) -> None:
    async with asyncio.timeout(50):
        cheap, dear, new = [await new_fan(http, auth) for _ in range(3)]
        await evidence_favouring(container, tenant, 800)
        await fan_evidence(container, tenant, cheap, 300)
        await fan_evidence(container, tenant, dear, 3000)
        await catch_up()
        response = await http.post(
            BULK,
            json={"recipientIds": [cheap, dear, new], "content": "New set", "priceCents": "auto"},
            headers=auth,
        )
        assert response.status_code == 202, response.text
        assert response.json()["queued"] == 3
        campaign_id = response.json()["campaignId"]
        prices = {
            fan: await recorded_price(container, tenant, campaign_message_id(campaign_id, fan))
            for fan in (cheap, dear, new)
        }
        # A fan with its own history is priced on it; a fan without, on the account's.
        assert prices == {cheap: 300, dear: 3000, new: 800}
        for fan, price in prices.items():
            assert await outbox_prices(container, campaign_message_id(campaign_id, fan)) == [price]
        await catch_up()
        view = await http.get(f"/api/crm/campaigns/{campaign_id}", headers=auth)
        assert view.json()["campaign"]["template"]["priceCents"] == "auto"


async def test_auto_is_refused_for_a_campaign_that_tests_variants(
    http: httpx.AsyncClient, auth: dict[str, str], catch_up: Callable[[], Awaitable[int]]
) -> None:
    async with asyncio.timeout(50):
        fan = await new_fan(http, auth)
        await catch_up()
        response = await http.post(
            BULK,
            json={
                "recipientIds": [fan],
                "priceCents": "auto",
                "variants": [{"content": "A", "priceCents": 500}, {"content": "B"}],
            },
            headers=auth,
        )
        assert response.status_code == 422, response.text
        assert response.headers["content-type"].startswith("application/problem+json")


async def test_auto_prices_from_the_callers_own_evidence_only(
    container: Container, http: httpx.AsyncClient, auth: dict[str, str], tenant: str
) -> None:
    async with asyncio.timeout(50):
        await evidence_favouring(container, tenant, 1200)
        await evidence_favouring(container, f"{tenant}-other", 300)
        fan = await new_fan(http, auth)
        for _ in range(3):
            response = await http.post(
                SEND,
                json={"recipientId": fan, "content": "Set", "priceCents": "auto"},
                headers=auth,
            )
            assert response.status_code == 202, response.text
            assert await recorded_price(container, tenant, response.json()["messageId"]) == 1200
