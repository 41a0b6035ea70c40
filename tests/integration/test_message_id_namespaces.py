"""Message ids are each tenant's own, over HTTP against the real app and a real Postgres: one
tenant sending with ids another will use (a campaign's, an Idempotency-Key's, a fan reply's)
changes nothing for the other; messages recorded before ids were scoped (``message-<uuid>``
streams) keep working where they are.

No worker runs in the background: tests drive the campaign worker and the projectors.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import msgspec

from adapters.bootstrap import Container, core_projections
from adapters.http.idempotency import message_id_for
from adapters.onlyfans.signing import ACCOUNT_HEADER, SIGNATURE_HEADER, sign
from application.campaign_fan_out import campaign_message_id
from application.context import CommandContext
from application.messages import record_dispatched, record_failed, record_sent
from application.webhooks import _INBOUND_IDS
from domain.message import Message, legacy_message_stream_id, message_stream_id
from worker.campaigns import CampaignWorker

SEND = "/api/onlyfans/messages/send"
BULK = "/api/messages/bulk"
FANS = "/api/crm/fans"
MESSAGES = "/api/crm/messages"
WEBHOOKS = "/api/onlyfans/webhooks"
SECRET = "whsec_namespaces"

Headers = dict[str, str]
CatchUp = Callable[[], Awaitable[int]]


async def new_fan(http: httpx.AsyncClient, auth: Headers, name: str = "Ann") -> int:
    response = await http.post(FANS, json={"name": name}, headers=auth)
    assert response.status_code == 201, response.text
    return int(response.json()["fan"]["id"])


async def send(http: httpx.AsyncClient, auth: Headers, **body: Any) -> httpx.Response:
    body.setdefault("content", "Hello")
    return await http.post(SEND, json=body, headers=auth)


async def webhook(
    http: httpx.AsyncClient, tenant: str, kind: str, data: dict[str, Any]
) -> httpx.Response:
    raw = msgspec.json.encode(
        {"id": uuid.uuid4().hex, "type": kind, "account": tenant, "data": data}
    )
    return await http.post(
        WEBHOOKS,
        content=raw,
        headers={
            ACCOUNT_HEADER: tenant,
            SIGNATURE_HEADER: sign(SECRET, raw, int(time.time())),
            "Content-Type": "application/json",
        },
    )


async def caught_up(catch_up: CatchUp, container: Container, position: int) -> None:
    """Catch the projectors up to ``position`` at least: a catch-up stops short of events
    that committed after a transaction still open elsewhere on the server (the projectors'
    rule), so it is repeated until every core projector has passed the position."""
    names = [projection.name for projection in core_projections()]
    async with asyncio.timeout(30):
        while True:
            await catch_up()
            reached = [await container.projection_store.checkpoint(name) for name in names]
            if min(checkpoint.position for checkpoint in reached) >= position:
                return
            await asyncio.sleep(0.05)


async def head(container: Container) -> int:
    return int(await container.pool.fetchval("SELECT max(position) FROM events"))


async def message_view(http: httpx.AsyncClient, auth: Headers, message_id: str) -> dict[str, Any]:
    response = await http.get(f"{MESSAGES}/{message_id}", headers=auth)
    assert response.status_code == 200, response.text
    return dict(response.json()["message"])


async def test_another_tenant_sending_with_the_ids_a_tenant_will_use_changes_nothing_for_it(
    http: httpx.AsyncClient,
    auth: Headers,
    other_auth: Headers,
    tenant: str,
    container: Container,
    catch_up: CatchUp,
) -> None:
    await container.pool.execute(
        "INSERT INTO webhook_secrets (tenant_id, secret) VALUES ($1, $2)", tenant, SECRET
    )
    fans = [await new_fan(http, auth, name) for name in ("Ann", "Bea", "Cat")]
    replier = fans[0]
    squatter_fan = await new_fan(http, other_auth, "Zed")
    await caught_up(catch_up, container, await head(container))
    # What the other tenant can predict: tenant 1's next campaign id (one sequence for all),
    # the message ids derived from it, from an Idempotency-Key, and from a fan reply.
    next_campaign = int(
        await container.pool.fetchval(
            "SELECT CASE WHEN is_called THEN last_value + 1 ELSE last_value END"
            " FROM campaign_id_seq"
        )
    )
    key = f"key-{uuid.uuid4()}"
    reply_platform_id = f"of-reply-{uuid.uuid4().hex}"
    taken = [campaign_message_id(next_campaign, fan) for fan in fans]
    taken.append(message_id_for(tenant, key))
    taken.append(str(uuid.uuid5(_INBOUND_IDS, f"{tenant}:{reply_platform_id}")))
    for message_id in taken:
        squatted = await send(http, other_auth, recipientId=squatter_fan, messageId=message_id)
        assert squatted.status_code == 202, squatted.text

    launched = await http.post(BULK, json={"recipientIds": fans, "content": "Hi!"}, headers=auth)
    keyed = await http.post(
        SEND,
        json={"recipientId": fans[1], "content": "Keyed"},
        headers={**auth, "Idempotency-Key": key},
    )
    replied = await webhook(
        http,
        tenant,
        "message.received",
        {"fanId": replier, "text": "hey you", "platformMessageId": reply_platform_id},
    )

    assert launched.status_code == 202, launched.text
    campaign_id = launched.json()["campaignId"]
    assert campaign_id == next_campaign
    assert (launched.json()["queued"], launched.json()["status"]) == (3, "queued")
    assert keyed.status_code == 202, keyed.text
    assert keyed.json()["messageId"] == message_id_for(tenant, key)
    assert replied.status_code == 200, replied.text
    ctx = CommandContext(tenant=tenant, actor="sender", correlation_id="test")
    for fan in fans:
        await record_sent(campaign_message_id(campaign_id, fan), None, ctx, store=container.events)
    await caught_up(catch_up, container, await head(container))
    await CampaignWorker(container).run_once()
    await caught_up(catch_up, container, await head(container))
    view = (await http.get(f"/api/crm/campaigns/{campaign_id}", headers=auth)).json()["campaign"]
    assert view["status"] == "completed"
    assert (view["metrics"]["sent"], view["progress"]["skipped"]) == (3, 0)
    reply = await message_view(http, auth, taken[-1])
    assert (reply["direction"], reply["content"], reply["fanId"]) == ("in", "hey you", replier)
    # The other tenant's messages under the same ids are its own, untouched.
    for message_id in taken:
        theirs = await message_view(http, other_auth, message_id)
        assert (theirs["direction"], theirs["fanId"], theirs["content"]) == (
            "out",
            squatter_fan,
            "Hello",
        )


# --- messages recorded before ids were scoped ------------------------------------------------


async def legacy_message(
    http: httpx.AsyncClient, auth: Headers, container: Container, tenant: str
) -> tuple[str, CommandContext]:
    """A message of ``tenant`` recorded as the first release did, at message-<uuid>."""
    fan_id = await new_fan(http, auth)
    opened = await http.post("/api/crm/conversations", json={"fanId": fan_id}, headers=auth)
    assert opened.status_code == 201, opened.text
    message_id = str(uuid.uuid4())
    message = Message.queue(
        message_id=message_id,
        tenant=tenant,
        conversation_id=opened.json()["id"],
        fan_id=fan_id,
        content="From the first release",
        price_cents=500,
    )
    [queued] = message.collect_events()
    ctx = CommandContext(tenant=tenant, actor="test", correlation_id=uuid.uuid4().hex)
    await container.events.append(
        legacy_message_stream_id(message_id),
        "message",
        [dataclasses.replace(queued, originator_id=legacy_message_stream_id(message_id))],
        expected_version=0,
        metadata=ctx.metadata(),
    )
    return message_id, ctx


async def stream_events(container: Container, stream_id: str) -> list[str]:
    return [r.event_type for r in await container.events.load(stream_id)]


async def test_a_legacy_message_is_sent_read_and_reported_on_in_its_own_stream(
    http: httpx.AsyncClient, auth: Headers, tenant: str, container: Container, catch_up: CatchUp
) -> None:
    await container.pool.execute(
        "INSERT INTO webhook_secrets (tenant_id, secret) VALUES ($1, $2)", tenant, SECRET
    )
    message_id, ctx = await legacy_message(http, auth, container, tenant)
    await record_dispatched(message_id, "normal", ctx, store=container.events)
    await record_sent(message_id, "of-legacy", ctx, store=container.events)

    delivered = await webhook(http, tenant, "message.delivered", {"messageId": message_id})
    read = await http.post(f"{MESSAGES}/{message_id}/read", headers=auth)

    assert delivered.status_code == 200, delivered.text
    assert read.status_code == 200, read.text
    assert await stream_events(container, legacy_message_stream_id(message_id)) == [
        "MessageQueued",
        "MessageDispatched",
        "MessageSent",
        "MessageDelivered",
        "MessageRead",
    ]
    assert await stream_events(container, message_stream_id(tenant, message_id)) == []
    await caught_up(catch_up, container, await head(container))
    view = await message_view(http, auth, message_id)
    assert (view["status"], view["content"]) == ("read", "From the first release")


async def test_a_failed_legacy_message_is_retried_in_its_own_stream(
    http: httpx.AsyncClient, auth: Headers, tenant: str, container: Container
) -> None:
    message_id, ctx = await legacy_message(http, auth, container, tenant)
    await record_failed(message_id, "platform down", ctx, store=container.events)

    retried = await http.post(f"/api/onlyfans/messages/{message_id}/retry", headers=auth)

    assert retried.status_code == 202, retried.text
    assert await stream_events(container, legacy_message_stream_id(message_id)) == [
        "MessageQueued",
        "MessageFailed",
        "MessageRequeued",
    ]
    outbox = await container.pool.fetchval(
        "SELECT count(*) FROM outbox WHERE message_id = $1", message_id
    )
    assert outbox == 1


async def test_a_legacy_message_id_sent_again_answers_the_first_send_and_records_nothing(
    http: httpx.AsyncClient, auth: Headers, tenant: str, container: Container
) -> None:
    message_id, _ = await legacy_message(http, auth, container, tenant)
    [queued] = await container.events.load(legacy_message_stream_id(message_id))
    assert isinstance(queued.event, Message.Queued)

    same = await send(
        http,
        auth,
        recipientId=queued.event.fan_id,
        content="From the first release",
        priceCents=500,
        messageId=message_id,
    )
    changed = await send(
        http, auth, recipientId=queued.event.fan_id, content="Other", messageId=message_id
    )

    assert same.status_code == 202, same.text
    assert same.json()["position"] == queued.position
    assert changed.status_code == 409, changed.text
    assert await stream_events(container, message_stream_id(tenant, message_id)) == []


async def test_another_tenants_legacy_message_is_not_found_and_its_id_is_free_for_this_one(
    http: httpx.AsyncClient,
    auth: Headers,
    other_auth: Headers,
    tenant: str,
    container: Container,
) -> None:
    message_id, _ = await legacy_message(http, auth, container, tenant)

    retried = await http.post(f"/api/onlyfans/messages/{message_id}/retry", headers=other_auth)
    theirs = await send(
        http, other_auth, recipientId=await new_fan(http, other_auth), messageId=message_id
    )

    assert retried.status_code == 404, retried.text
    assert theirs.status_code == 202, theirs.text
    assert await stream_events(container, legacy_message_stream_id(message_id)) == ["MessageQueued"]
