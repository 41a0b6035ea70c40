"""POST /api/onlyfans/webhooks: signed, fresh, processed once, and nothing recorded otherwise."""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator

import httpx
import msgspec
import pytest

from adapters import bootstrap
from adapters.bootstrap import core_projections
from adapters.http.app import create_app
from adapters.onlyfans.signing import ACCOUNT_HEADER, SIGNATURE_HEADER, sign
from adapters.postgres.api_keys import create_api_key
from application.context import CommandContext
from application.fans import CreateFan, create_fan
from application.messages import QueueMessage, queue_message, record_sent
from domain.message import message_stream_id
from projections.runner import ProjectionRunner
from tests.support.settings import settings_for

SECRET = "whsec_test_secret"


@pytest.fixture
async def fresh(fresh_database_url: str) -> AsyncIterator[bootstrap.Container]:
    container = await bootstrap.build(settings_for(fresh_database_url))
    try:
        yield container
    finally:
        await container.close()


@pytest.fixture
async def http(fresh: bootstrap.Container) -> AsyncIterator[httpx.AsyncClient]:
    await fresh.pool.execute(
        "INSERT INTO webhook_secrets (tenant_id, secret) VALUES ('creator-1', $1)", SECRET
    )
    transport = httpx.ASGITransport(app=create_app(container=fresh))
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        yield client


CTX = CommandContext(tenant="creator-1", actor="test", correlation_id="c")


async def sent_message(container: bootstrap.Container, price_cents: int = 0) -> tuple[int, str]:
    fan = await create_fan(
        CreateFan(name="Payer", value_cents=1_000), CTX, store=container.events, ids=container.ids
    )
    accepted = await queue_message(
        QueueMessage(recipient_id=fan.fan.fan_id, content="unlock me", price_cents=price_cents),
        CTX,
        store=container.events,
        ids=container.ids,
    )
    await record_sent(accepted.message_id, "of-1", CTX, store=container.events)
    return fan.fan.fan_id, accepted.message_id


def webhook(kind: str, data: dict[str, object], *, event_id: str | None = None) -> bytes:
    return msgspec.json.encode(
        {"id": event_id or uuid.uuid4().hex, "type": kind, "account": "creator-1", "data": data}
    )


async def post(
    http: httpx.AsyncClient,
    body: bytes,
    *,
    secret: str = SECRET,
    at: float | None = None,
    account: str = "creator-1",
) -> httpx.Response:
    header = sign(secret, body, int(at if at is not None else time.time()))
    return await http.post(
        "/api/onlyfans/webhooks",
        content=body,
        headers={
            ACCOUNT_HEADER: account,
            SIGNATURE_HEADER: header,
            "Content-Type": "application/json",
        },
    )


async def event_count(container: bootstrap.Container) -> int:
    return int(await container.pool.fetchval("SELECT count(*) FROM events"))


async def test_a_signed_read_is_recorded_once_and_a_replay_is_refused(
    fresh: bootstrap.Container, http: httpx.AsyncClient
) -> None:
    _, message_id = await sent_message(fresh)
    body = webhook("message.read", {"messageId": message_id})
    first = await post(http, body)
    assert first.status_code == 200, first.text
    history = await fresh.events.load(message_stream_id(CTX.tenant, message_id))
    assert history[-1].event_type == "MessageRead"
    assert history[-1].metadata.actor == "webhook"
    before = await event_count(fresh)
    replay = await post(http, body)
    assert replay.status_code == 409
    assert replay.headers["content-type"].startswith("application/problem+json")
    assert await event_count(fresh) == before


@pytest.mark.parametrize(
    "fault", ["bad secret", "stale", "tampered", "no header", "unknown account"]
)
async def test_an_unauthentic_webhook_is_401_and_records_nothing(
    fresh: bootstrap.Container, http: httpx.AsyncClient, fault: str
) -> None:
    _, message_id = await sent_message(fresh)
    body = webhook("message.read", {"messageId": message_id})
    before = await event_count(fresh)
    if fault == "bad secret":
        response = await post(http, body, secret="whsec_wrong")
    elif fault == "stale":
        response = await post(http, body, at=time.time() - 301)
    elif fault == "tampered":
        header = sign(SECRET, body, int(time.time()))
        response = await http.post(
            "/api/onlyfans/webhooks",
            content=body.replace(b"message.read", b"message.purchased"),
            headers={ACCOUNT_HEADER: "creator-1", SIGNATURE_HEADER: header},
        )
    elif fault == "no header":
        response = await http.post("/api/onlyfans/webhooks", content=body)
    else:
        other = body.replace(b"creator-1", b"creator-9")
        response = await post(http, other)
    assert response.status_code == 401, response.text
    assert await event_count(fresh) == before


@pytest.mark.parametrize(
    "body",
    [
        b"{not json",
        b'{"account": "creator-1"}',
        b'{"id": "1", "type": "message.exploded", "account": "creator-1", "data": {}}',
        b'{"id": "1", "type": "message.read", "account": "creator-1", "data": {}}',
        b'{"id": "1", "type": "message.purchased", "account": "creator-1",'
        b' "data": {"messageId": "00000000-0000-0000-0000-000000000000", "amountCents": "5"}}',
    ],
)
async def test_a_malformed_webhook_is_4xx_and_records_nothing(
    fresh: bootstrap.Container, http: httpx.AsyncClient, body: bytes
) -> None:
    before = await event_count(fresh)
    response = await post(http, body)
    assert 400 <= response.status_code < 500, response.text
    assert response.status_code != 401 or b'"account": "creator-1"' not in body
    assert await event_count(fresh) == before


async def test_a_purchase_adds_revenue_to_the_message_and_value_to_the_fan_once(
    fresh: bootstrap.Container, http: httpx.AsyncClient
) -> None:
    fan_id, message_id = await sent_message(fresh, price_cents=1_500)
    bought = webhook("message.purchased", {"messageId": message_id, "amountCents": 1_500})
    assert (await post(http, bought)).status_code == 200
    # The same purchase reported again under another webhook id is not counted twice.
    again = webhook("message.purchased", {"messageId": message_id, "amountCents": 1_500})
    assert (await post(http, again)).status_code == 200
    for projection in core_projections():
        await ProjectionRunner(fresh.projection_store, projection).catch_up()
    assert (
        await fresh.pool.fetchval("SELECT value_cents FROM fans WHERE fan_id = $1", fan_id) == 2_500
    )
    assert (
        await fresh.pool.fetchval(
            "SELECT revenue_cents FROM messages WHERE message_id = $1", uuid.UUID(message_id)
        )
        == 1_500
    )


async def test_a_fan_reply_becomes_an_inbound_message_in_the_conversation(
    fresh: bootstrap.Container, http: httpx.AsyncClient
) -> None:
    fan = await create_fan(CreateFan(name="Writer"), CTX, store=fresh.events, ids=fresh.ids)
    body = webhook(
        "message.received",
        {"fanId": fan.fan.fan_id, "text": "hey, loved it", "platformMessageId": "of-in-1"},
    )
    assert (await post(http, body)).status_code == 200
    # The same platform message under another webhook id is the same message.
    again = webhook(
        "message.received",
        {"fanId": fan.fan.fan_id, "text": "hey, loved it", "platformMessageId": "of-in-1"},
    )
    assert (await post(http, again)).status_code in (200, 409)
    for projection in core_projections():
        await ProjectionRunner(fresh.projection_store, projection).catch_up()
    rows = await fresh.pool.fetch(
        "SELECT direction, content, status, conversation_id FROM messages WHERE fan_id = $1",
        fan.fan.fan_id,
    )
    assert [(r["direction"], r["content"], r["status"]) for r in rows] == [
        ("in", "hey, loved it", "received")
    ]
    conversation = await fresh.pool.fetchrow(
        "SELECT fan_id, message_count FROM conversations WHERE conversation_id = $1",
        rows[0]["conversation_id"],
    )
    assert (conversation["fan_id"], conversation["message_count"]) == (fan.fan.fan_id, 1)
    log = await fresh.pool.fetchval("SELECT string_agg(data::text, ' ') FROM events")
    assert "loved it" not in log, "inbound content is encrypted in the log"


DEEP = (
    b'{"id": "1", "type": "message.read", "account": "creator-1", "data": '
    + (b'{"a":' * 1_000 + b"1" + b"}" * 1_000)
    + b"}"
)


@pytest.mark.parametrize(
    "body",
    [b'{"id": "1"}', b"{not json", DEEP, b"[" * 1_000 + b"]" * 1_000],
    ids=["no account in it", "not json", "deep data", "deep array"],
)
@pytest.mark.parametrize("fault", ["no signature", "wrong secret", "no account header"])
async def test_an_unsigned_webhook_is_401_whatever_its_body(
    fresh: bootstrap.Container, http: httpx.AsyncClient, body: bytes, fault: str
) -> None:
    before = await event_count(fresh)
    if fault == "no signature":
        headers = {ACCOUNT_HEADER: "creator-1", "Content-Type": "application/json"}
        response = await http.post("/api/onlyfans/webhooks", content=body, headers=headers)
    elif fault == "wrong secret":
        response = await post(http, body, secret="whsec_wrong")
    else:
        header = sign(SECRET, body, int(time.time()))
        response = await http.post(
            "/api/onlyfans/webhooks", content=body, headers={SIGNATURE_HEADER: header}
        )

    assert response.status_code == 401, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    assert await event_count(fresh) == before


@pytest.mark.parametrize(
    "body",
    [
        DEEP,
        b"[" * 1_000 + b"]" * 1_000,
        webhook("message.read", {"messageId": "x"}, event_id="evt\x00nul"),
        webhook("message.read", {"messageId": "x"}, event_id="e" * 12_000),
        b'{"id": "", "type": "message.read", "account": "creator-1", "data": {}}',
        webhook("message.received", {"fanId": 1, "text": "hi", "platformMessageId": "p\x00"}),
    ],
    ids=["deep data", "deep array", "nul in id", "12 KB id", "empty id", "nul in data"],
)
async def test_a_signed_webhook_with_a_malformed_body_is_400_and_records_nothing(
    fresh: bootstrap.Container, http: httpx.AsyncClient, body: bytes
) -> None:
    before = await event_count(fresh)

    response = await post(http, body)

    assert response.status_code == 400, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    assert await event_count(fresh) == before


async def test_a_webhook_signed_for_one_account_cannot_speak_for_another(
    fresh: bootstrap.Container, http: httpx.AsyncClient
) -> None:
    await fresh.pool.execute(
        "INSERT INTO webhook_secrets (tenant_id, secret) VALUES ('creator-2', 'whsec_two')"
    )
    _, message_id = await sent_message(fresh)
    body = webhook("message.read", {"messageId": message_id})  # names creator-1
    before = await event_count(fresh)

    response = await post(http, body, secret="whsec_two", account="creator-2")

    assert response.status_code == 401, response.text
    assert await event_count(fresh) == before


async def test_a_conversations_unread_count_counts_the_fans_messages_until_the_account_writes(
    fresh: bootstrap.Container, http: httpx.AsyncClient
) -> None:
    fan = await create_fan(CreateFan(name="Chatty"), CTX, store=fresh.events, ids=fresh.ids)
    key, _ = await create_api_key(fresh.pool, user_id="creator-1", role="creator")
    auth = {"Authorization": f"Bearer {key}"}

    async def unread() -> list[int]:
        for projection in core_projections():
            await ProjectionRunner(fresh.projection_store, projection).catch_up()
        listed = await http.get("/api/crm/conversations", headers=auth)
        assert listed.status_code == 200, listed.text
        return [c["unreadCount"] for c in listed.json()["conversations"]]

    for n in range(2):
        said = {"fanId": fan.fan.fan_id, "text": f"hi {n}", "platformMessageId": f"of-{n}"}
        assert (await post(http, webhook("message.received", said))).status_code == 200
    assert await unread() == [2]

    await queue_message(
        QueueMessage(recipient_id=fan.fan.fan_id, content="hello you"),
        CTX,
        store=fresh.events,
        ids=fresh.ids,
    )
    assert await unread() == [0]

    said = {"fanId": fan.fan.fan_id, "text": "again", "platformMessageId": "of-2"}
    assert (await post(http, webhook("message.received", said))).status_code == 200
    assert await unread() == [1]
