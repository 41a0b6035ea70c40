"""GET /api/crm/messages: the account's messages, newest queued first, filtered by status,
conversation, campaign and a time range on queuedAt, one keyset page at a time; never another
tenant's."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any

import httpx
import pytest

from adapters.bootstrap import Container
from application import messages
from application.context import CommandContext

FANS = "/api/crm/fans"
SEND = "/api/onlyfans/messages/send"
LIST = "/api/crm/messages"
Headers = dict[str, str]
CatchUp = Callable[[], Awaitable[int]]


@pytest.fixture
def ctx(tenant: str) -> CommandContext:
    return CommandContext(tenant=tenant, actor="test", correlation_id=f"test-{uuid.uuid4()}")


async def new_fan(http: httpx.AsyncClient, auth: Headers) -> int:
    response = await http.post(FANS, json={"name": "Ann"}, headers=auth)
    assert response.status_code == 201, response.text
    return int(response.json()["fan"]["id"])


async def send(http: httpx.AsyncClient, auth: Headers, fan_id: int, n: int) -> dict[str, Any]:
    response = await http.post(
        SEND, json={"recipientId": fan_id, "content": f"Hi {n}"}, headers=auth
    )
    assert response.status_code == 202, response.text
    return dict(response.json())


async def listed(http: httpx.AsyncClient, auth: Headers, **params: Any) -> list[str]:
    """Every page of the list, each of ``params["limit"]`` at most: the ids in order."""
    seen: list[str] = []
    cursor = None
    for _ in range(50):
        query = {**params, **({"cursor": cursor} if cursor else {})}
        response = await http.get(LIST, params=query, headers=auth)
        assert response.status_code == 200, response.text
        page = response.json()["messages"]
        assert len(page) <= params.get("limit", 50)
        seen += [message["id"] for message in page]
        cursor = response.json()["nextCursor"]
        if cursor is None:
            return seen
    raise AssertionError("the cursor never ended")


async def test_the_list_pages_newest_first_through_every_message_of_the_account(
    http: httpx.AsyncClient, auth: Headers, other_auth: Headers, catch_up: CatchUp
) -> None:
    fans = [await new_fan(http, auth), await new_fan(http, auth)]
    sent = [await send(http, auth, fans[n % 2], n) for n in range(5)]
    await send(http, other_auth, await new_fan(http, other_auth), 0)
    await catch_up()

    assert await listed(http, auth, limit=2) == [s["messageId"] for s in reversed(sent)]
    first = (await http.get(LIST, headers=auth)).json()
    assert first["nextCursor"] is None
    one = await http.get(f"{LIST}/{sent[0]['messageId']}", headers=auth)
    assert first["messages"][-1] == one.json()["message"]  # the same shape as one message


async def test_filters_by_status_conversation_campaign_and_time_range(
    http: httpx.AsyncClient,
    auth: Headers,
    container: Container,
    ctx: CommandContext,
    catch_up: CatchUp,
) -> None:
    fans = [await new_fan(http, auth), await new_fan(http, auth)]
    sent = [await send(http, auth, fans[n % 2], n) for n in range(6)]
    ids = [s["messageId"] for s in sent]
    for failed in (ids[1], ids[4]):
        await messages.record_failed(failed, "gave up", ctx, store=container.events)
    campaign = await messages.queue_message(
        messages.QueueMessage(recipient_id=fans[0], content="Promo", campaign_id=424242),
        ctx,
        store=container.events,
        ids=container.ids,
    )
    await catch_up()

    failed_page = (await http.get(LIST, params={"status": "failed"}, headers=auth)).json()
    assert [m["id"] for m in failed_page["messages"]] == [ids[4], ids[1]]
    assert {m["status"] for m in failed_page["messages"]} == {"failed"}
    assert {m["failureReason"] for m in failed_page["messages"]} == {"gave up"}
    assert await listed(http, auth, status="failed", limit=1) == [ids[4], ids[1]]
    conversation = sent[1]["conversationId"]
    assert await listed(http, auth, conversationId=conversation, limit=2) == [
        ids[5],
        ids[3],
        ids[1],
    ]
    assert await listed(http, auth, campaignId=424242) == [campaign.message_id]
    assert await listed(http, auth, campaignId=1) == []
    window = {"from": sent[2]["queuedAt"], "to": sent[4]["queuedAt"]}
    assert await listed(http, auth, **window, limit=1) == [ids[3], ids[2]]
    assert await listed(http, auth, status="failed", conversationId=conversation, **window) == []
    assert await listed(http, auth, status="sent") == []


async def test_another_tenants_messages_are_never_listed_whatever_the_filter(
    http: httpx.AsyncClient, auth: Headers, other_auth: Headers, catch_up: CatchUp
) -> None:
    sent = await send(http, auth, await new_fan(http, auth), 0)
    await catch_up()

    for params in (
        {},
        {"status": "queued"},
        {"conversationId": sent["conversationId"]},
        {"from": sent["queuedAt"]},
    ):
        response = await http.get(LIST, params=params, headers=other_auth)
        assert response.status_code == 200, response.text
        assert response.json() == {"messages": [], "nextCursor": None}
        assert await listed(http, auth, **params) == [sent["messageId"]]


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"status": "lost"}, "status"),
        ({"from": "2026-01-01T00:00:00"}, "from"),
        ({"cursor": "garbage!"}, "cursor"),
    ],
    ids=["unknown-status", "time-without-zone", "foreign-cursor"],
)
async def test_a_filter_this_api_does_not_know_is_refused_with_its_field(
    http: httpx.AsyncClient, auth: Headers, params: dict[str, str], field: str
) -> None:
    response = await http.get(LIST, params=params, headers=auth)

    assert response.status_code in (400, 422), response.text
    assert response.json()["field"] == field


@pytest.mark.parametrize("limit", [0, 201])
async def test_a_limit_outside_1_to_200_is_refused(
    http: httpx.AsyncClient, auth: Headers, limit: int
) -> None:
    assert (await http.get(LIST, params={"limit": limit}, headers=auth)).status_code == 400


async def test_a_message_failed_twice_shows_its_first_failure_beside_its_last(
    http: httpx.AsyncClient,
    auth: Headers,
    container: Container,
    ctx: CommandContext,
    catch_up: CatchUp,
) -> None:
    message_id = (await send(http, auth, await new_fan(http, auth), 0))["messageId"]
    store = container.events
    await messages.record_failed(message_id, "first", ctx, store=store)
    await messages.retry_message(messages.MessageCommand(message_id=message_id), ctx, store=store)
    await messages.record_failed(message_id, "second", ctx, store=store)
    await catch_up()

    [listed_one] = (await http.get(LIST, params={"status": "failed"}, headers=auth)).json()[
        "messages"
    ]

    assert listed_one["failureReason"] == "second"
    first, last = (
        datetime.fromisoformat(listed_one[name].replace("Z", "+00:00"))
        for name in ("firstFailedAt", "failedAt")
    )
    assert first < last
