"""Platforms at the API (issue 20): the capability matrix; a send the recipient's platform
cannot carry is a 422 naming the reason, and records nothing; a batch and a campaign refuse
such recipients one by one; a message answers which platform carried it; a conversation with
a Fansly fan opens without repeating the platform."""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import httpx
import msgspec
import pytest

from adapters.bootstrap import Container
from adapters.http.app import create_app

SEND = "/api/onlyfans/messages/send"
BATCH = "/api/onlyfans/messages/batch"
BULK = "/api/messages/bulk"
FANS = "/api/crm/fans"
MESSAGES = "/api/crm/messages"
CONVERSATIONS = "/api/crm/conversations"
PROBLEM_JSON = "application/problem+json"

Headers = dict[str, str]


@pytest.fixture
async def with_fansly(container: Container) -> AsyncIterator[httpx.AsyncClient]:
    """The app of a deployment with a Fansly gateway configured (nothing is sent here: no
    sender runs, so the address is never called)."""
    configured = msgspec.structs.replace(
        container.settings, fansly_api_url="http://127.0.0.1:9/fansly"
    )
    transport = httpx.ASGITransport(
        app=create_app(container=dataclasses.replace(container, settings=configured))
    )
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        yield client


async def fan_on(http: httpx.AsyncClient, auth: Headers, platform: str) -> int:
    body = {"name": "Ann", "handle": f"ann_{uuid.uuid4().hex[:10]}", "platform": platform}
    response = await http.post(FANS, json=body, headers=auth)
    assert response.status_code == 201, response.text
    return int(response.json()["fan"]["id"])


async def test_the_platforms_answer_each_capability_and_this_deployments_limits(
    http: httpx.AsyncClient, with_fansly: httpx.AsyncClient, auth: Headers, container: Container
) -> None:
    response = await http.get("/api/platforms", headers=auth)
    assert response.status_code == 200, response.text
    platforms = {p["platform"]: p for p in response.json()["platforms"]}
    assert list(platforms) == ["onlyfans", "fansly", "patreon"]
    settings = container.settings
    assert platforms["onlyfans"] == {
        "platform": "onlyfans",
        "capabilities": {
            "directMessages": True,
            "paidMessages": {"minCents": 300, "maxCents": 20_000},
            "media": True,
            "readReceipts": True,
            "purchases": True,
            "fanSync": True,
            "webhooks": True,
        },
        "configured": True,
        "rateLimit": {
            "perSecond": settings.rate_limit_per_second,
            "burst": settings.rate_limit_burst,
        },
    }
    assert platforms["fansly"]["configured"] is False
    assert platforms["fansly"]["rateLimit"] == {
        "perSecond": settings.fansly_rate_limit_per_second,
        "burst": settings.fansly_rate_limit_burst,
    }
    patreon = platforms["patreon"]
    assert patreon["capabilities"]["directMessages"] is False
    assert patreon["capabilities"]["paidMessages"] is None
    assert patreon["capabilities"]["fanSync"] is True
    assert patreon["rateLimit"] is None

    configured = (await with_fansly.get("/api/platforms", headers=auth)).json()["platforms"]
    assert [p["configured"] for p in configured] == [True, True, False]

    assert (await http.get("/api/platforms")).status_code == 401


async def test_a_send_to_a_patreon_member_is_422_with_the_reason_and_records_nothing(
    http: httpx.AsyncClient,
    auth: Headers,
    events_of_tenant: Callable[[], Awaitable[int]],
) -> None:
    fan_id = await fan_on(http, auth, "patreon")
    before = await events_of_tenant()

    response = await http.post(SEND, json={"recipientId": fan_id, "content": "Hi"}, headers=auth)

    assert response.status_code == 422, response.text
    assert response.headers["content-type"].startswith(PROBLEM_JSON)
    problem = response.json()
    assert problem["type"].endswith("/platform-cannot-message")
    assert problem["platform"] == "patreon"
    assert problem["field"] == "recipientId"
    assert problem["detail"] == (
        f"recipientId: fan {fan_id} is on patreon, whose API offers no direct messages"
    )
    assert await events_of_tenant() == before


async def test_a_send_to_a_fansly_fan_without_a_fansly_gateway_is_422_not_sent_elsewhere(
    http: httpx.AsyncClient,
    auth: Headers,
    events_of_tenant: Callable[[], Awaitable[int]],
) -> None:
    fan_id = await fan_on(http, auth, "fansly")
    before = await events_of_tenant()

    response = await http.post(SEND, json={"recipientId": fan_id, "content": "Hi"}, headers=auth)

    assert response.status_code == 422, response.text
    assert response.json()["detail"].endswith("no fansly gateway is configured")
    assert await events_of_tenant() == before


async def test_a_batch_refuses_its_patreon_member_alone(
    with_fansly: httpx.AsyncClient, auth: Headers
) -> None:
    onlyfans = await fan_on(with_fansly, auth, "onlyfans")
    patreon = await fan_on(with_fansly, auth, "patreon")
    fansly = await fan_on(with_fansly, auth, "fansly")

    response = await with_fansly.post(
        BATCH,
        json={
            "messages": [
                {"recipientId": onlyfans, "content": "Hi"},
                {"recipientId": patreon, "content": "Hi"},
                {"recipientId": fansly, "content": "Hi"},
            ]
        },
        headers=auth,
    )

    assert response.status_code == 202, response.text
    body = response.json()
    assert (body["queued"], body["failed"]) == (2, 1)
    statuses = [item["status"] for item in body["results"]]
    assert statuses == ["queued", "failed", "queued"]
    refused = body["results"][1]
    assert refused["field"] == "recipientId"
    assert refused["error"] == (
        f"recipientId: fan {patreon} is on patreon, whose API offers no direct messages"
    )


async def test_a_message_answers_the_platform_that_carries_it(
    with_fansly: httpx.AsyncClient,
    auth: Headers,
    catch_up: Callable[[], Awaitable[int]],
) -> None:
    fansly = await fan_on(with_fansly, auth, "fansly")
    onlyfans = await fan_on(with_fansly, auth, "onlyfans")
    sent = {}
    for fan_id in (fansly, onlyfans):
        response = await with_fansly.post(
            SEND, json={"recipientId": fan_id, "content": "Hi"}, headers=auth
        )
        assert response.status_code == 202, response.text
        sent[fan_id] = response.json()["messageId"], response.json()["conversationId"]
    await catch_up()

    for fan_id, platform in ((fansly, "fansly"), (onlyfans, "onlyfans")):
        message_id, conversation_id = sent[fan_id]
        one = await with_fansly.get(f"{MESSAGES}/{message_id}", headers=auth)
        assert one.status_code == 200, one.text
        assert one.json()["message"]["platform"] == platform
        listed = await with_fansly.get(
            MESSAGES, params={"conversationId": conversation_id}, headers=auth
        )
        assert listed.status_code == 200, listed.text
        assert [(m["id"], m["platform"]) for m in listed.json()["messages"]] == [
            (message_id, platform)
        ]


async def test_a_conversation_with_a_fansly_fan_opens_without_naming_the_platform(
    http: httpx.AsyncClient, auth: Headers
) -> None:
    fan_id = await fan_on(http, auth, "fansly")

    opened = await http.post(CONVERSATIONS, json={"fanId": fan_id}, headers=auth)
    assert opened.status_code == 201, opened.text
    assert opened.json()["fanId"] == fan_id

    wrong = await http.post(
        CONVERSATIONS, json={"fanId": fan_id, "platform": "onlyfans"}, headers=auth
    )
    assert wrong.status_code == 422, wrong.text
    assert wrong.json()["detail"] == f"platform: fan {fan_id} is on fansly"


async def test_a_campaign_names_its_patreon_member_as_failed_and_never_queues_them(
    http: httpx.AsyncClient,
    auth: Headers,
    tenant: str,
    container: Container,
    catch_up: Callable[[], Awaitable[int]],
) -> None:
    onlyfans = await fan_on(http, auth, "onlyfans")
    patreon = await fan_on(http, auth, "patreon")
    await catch_up()

    response = await http.post(
        BULK, json={"recipientIds": [onlyfans, patreon], "content": "Hi all"}, headers=auth
    )

    assert response.status_code == 202, response.text
    body: dict[str, Any] = response.json()
    assert (body["totalRecipients"], body["queued"], body["failed"]) == (2, 1, 1)
    assert body["failures"] == [
        {
            "recipientId": patreon,
            "error": f"platform-cannot-message: fan {patreon} is on patreon,"
            " whose API offers no direct messages",
        }
    ]
    rows = await container.pool.fetch(
        "SELECT body::jsonb->>'recipientId' AS fan FROM outbox WHERE body::jsonb->>'tenant' = $1",
        tenant,
    )
    assert [int(r["fan"]) for r in rows] == [onlyfans]
