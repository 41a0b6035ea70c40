"""Who did what, end to end: a chatter sends a PPV through the API, the relay and the sender
deliver it to the simulator over HTTP, the simulator reports its purchase and the fan's reply
by signed webhooks; the member analytics credit the chatter with what the creator earned, and
the audit names the chatter as the actor of every event of that message."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from domain.message import message_stream_id
from tests.e2e.test_campaigns import platform_deployment, until
from tests.support.audit import audit_events_when
from tests.support.campaigns import catch_up_all, workers

PRICE = 900


@pytest.mark.timeout(60)
async def test_a_chatters_ppv_its_purchase_and_the_reply_it_drew_are_the_chatters(
    fresh_database_url: str,
) -> None:
    async with (
        asyncio.timeout(50),
        platform_deployment(
            fresh_database_url,
            read_probability=1.0,
            purchase_probability=1.0,
            reply_probability=1.0,
            webhook_delay=0.05,
            webhook_delay_jitter=0.0,
        ) as (platform, d),
    ):
        tenant = d.tenant
        owner = d.auth
        invite = await d.http.post(
            "/api/workspace/members", json={"role": "chatter", "accounts": "all"}, headers=owner
        )
        assert invite.status_code == 201, invite.text
        accepted = await d.http.post(
            "/api/workspace/invites/accept", json={"token": invite.json()["inviteToken"]}
        )
        assert accepted.status_code == 201, accepted.text
        member_id = accepted.json()["memberId"]
        chatter = {"Authorization": f"Bearer {accepted.json()['apiKey']}"}
        fan_id = await d.new_fan("Ann")
        await catch_up_all(d.container)

        async with workers(d.container):
            sent = await d.http.post(
                "/api/onlyfans/messages/send",
                json={"recipientId": fan_id, "content": "Just for you", "priceCents": PRICE},
                headers=chatter,
            )
            assert sent.status_code == 202, sent.text
            message_id = sent.json()["messageId"]

            async def purchased_and_replied() -> bool:
                purchases = await d.count(
                    "SELECT count(*) FROM events WHERE stream_id = $1"
                    " AND event_type = 'MessagePurchased'",
                    message_stream_id(tenant, message_id),
                )
                replies = await d.count(
                    "SELECT count(*) FROM events WHERE event_type = 'InboundMessageReceived'"
                    " AND metadata->>'tenant' = $1",
                    tenant,
                )
                return purchases > 0 and replies > 0

            await until(purchased_and_replied, interval=0.05)
        await catch_up_all(d.container)

        # The audit: the chatter is the actor of every event of its message.
        events = await audit_events_when(
            d.http,
            owner,
            lambda events: "MessagePurchased" in {e["eventType"] for e in events},
            params={"streamId": message_stream_id(tenant, message_id)},
        )
        types = [e["eventType"] for e in events]
        # (MessageDispatched too, unless the sender recorded the send before the relay its
        # dispatch: then there is nothing left to record.)
        assert {"MessageQueued", "MessageSent", "MessagePurchased"} <= set(types)
        assert {e["metadata"]["actor"] for e in events} == {f"member:{member_id}"}

        # The analytics: the member's revenue is the account's, and the fan's spend.
        figures = await d.http.get("/api/analytics/members", headers=owner)
        assert figures.status_code == 200, figures.text
        body = figures.json()
        (member,) = body["members"]
        assert member["memberId"] == member_id
        assert member["role"] == "chatter"
        expected = {
            "messagesSent": 1,
            "ppvSent": 1,
            "ppvBought": 1,
            "revenueCents": PRICE,
            "replies": 1,
            "conversationsHandled": 1,
        }
        assert _subset(member["totals"], expected) == expected
        (account,) = body["accounts"]
        assert account["accountId"] == tenant
        assert account["totals"] == member["totals"]
        revenue = await d.http.get(
            "/api/analytics/fans/revenue", params={"fanId": fan_id}, headers=owner
        )
        assert revenue.status_code == 200, revenue.text
        fan_revenue = sum(day["revenueCents"] for day in revenue.json()["days"])
        assert fan_revenue == member["totals"]["revenueCents"]
        # The chatter sees its own figures; the route is a read model, not the log.
        own = await d.http.get("/api/analytics/members", headers=chatter)
        assert own.status_code == 200, own.text
        assert [m["memberId"] for m in own.json()["members"]] == [member_id]
        assert platform.deliveries(), "the simulator saw the message"


def _subset(figures: dict[str, Any], expected: dict[str, Any]) -> dict[str, Any]:
    return {key: figures[key] for key in expected}
