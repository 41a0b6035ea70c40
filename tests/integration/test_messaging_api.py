"""Messages and conversations over HTTP, against the real app and a real Postgres.

Neither the projectors nor the outbox relay run here: a sent message stays ``queued`` beside
its outbox row, and a test that wants to read its commands back calls ``catch_up`` (which
applies every test's events in the shared database). Every test works in a tenant of its own;
what it counts is only its own.
"""

from __future__ import annotations

import asyncio
import base64
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import datetime
from typing import Any

import httpx
import msgspec
import pytest

from adapters import bootstrap
from adapters.bootstrap import Container
from adapters.http.app import create_app
from adapters.postgres.api_keys import create_api_key
from adapters.queue_status import QueueStatusReader
from application import messages
from application.context import CommandContext
from domain.message import message_stream_id
from projections.conversations import ConversationsProjection
from projections.messages import MessagesProjection
from projections.runner import ProjectionRunner
from tests.support.settings import settings_for

SEND = "/api/onlyfans/messages/send"
BATCH = "/api/onlyfans/messages/batch"
STATUS = "/api/onlyfans/messages/status"
CONVERSATIONS = "/api/crm/conversations"
CRM_MESSAGES = "/api/crm/messages"
FANS = "/api/crm/fans"
PROBLEM_JSON = "application/problem+json"
SECRET = "Only for you: the unreleased set"
MEDIA = "https://cdn.example.com/vault/clip-0042.mp4"

Headers = dict[str, str]
CatchUp = Callable[[], Awaitable[int]]
Count = Callable[[], Awaitable[int]]


# --- fixtures and helpers -------------------------------------------------------------------


@pytest.fixture
def outbox_of_tenant(container: Container, tenant: str) -> Count:
    async def count() -> int:
        return await container.pool.fetchval(
            "SELECT count(*) FROM outbox WHERE body::jsonb->>'tenant' = $1", tenant
        )

    return count


@pytest.fixture
def ctx(tenant: str) -> CommandContext:
    """The relay's context for outcomes of this tenant's messages."""
    return CommandContext(tenant=tenant, actor="relay", correlation_id=f"test-{uuid.uuid4()}")


async def new_fan(http: httpx.AsyncClient, auth: Headers, name: str = "Ann") -> int:
    response = await http.post(FANS, json={"name": name}, headers=auth)
    assert response.status_code == 201, response.text
    return response.json()["fan"]["id"]


async def send(http: httpx.AsyncClient, auth: Headers, **body: Any) -> dict[str, Any]:
    body.setdefault("content", "Hello")
    response = await http.post(SEND, json=body, headers=auth)
    assert response.status_code == 202, response.text
    return response.json()


async def send_with_key(
    http: httpx.AsyncClient, auth: Headers, key: str, fan_id: int
) -> httpx.Response:
    response = await http.post(
        SEND,
        json={"recipientId": fan_id, "content": "Hi"},
        headers={**auth, "Idempotency-Key": key},
    )
    assert response.status_code == 202, response.text
    return response


async def outbox_rows(container: Container, message_id: str) -> list[str]:
    rows = await container.pool.fetch(
        "SELECT body FROM outbox WHERE message_id = $1 ORDER BY id", message_id
    )
    return [row["body"] for row in rows]


async def event_types_of(container: Container, message_id: str, tenant: str) -> list[str]:
    rows = await container.pool.fetch(
        "SELECT event_type FROM events WHERE stream_id = $1 ORDER BY version",
        message_stream_id(tenant, message_id),
    )
    return [row["event_type"] for row in rows]


def assert_problem(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith(PROBLEM_JSON)
    body = response.json()
    assert body["status"] == status
    assert body["type"].startswith("https://")
    assert body["title"]
    assert isinstance(body["detail"], str)
    assert body["detail"]
    return body


def instant(text: str) -> datetime:
    parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    assert parsed.tzinfo is not None
    return parsed


# --- sending --------------------------------------------------------------------------------


async def test_sending_a_message_answers_202_with_the_queued_message(
    http: httpx.AsyncClient, auth: Headers, container: Container, tenant: str
) -> None:
    fan_id = await new_fan(http, auth)

    response = await http.post(
        SEND, json={"recipientId": str(fan_id), "content": "Hi there"}, headers=auth
    )

    assert response.status_code == 202, response.text
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert set(body) == {
        "messageId",
        "status",
        "queuedAt",
        "estimatedSendTime",
        "conversationId",
        "position",
    }
    assert str(uuid.UUID(body["messageId"])) == body["messageId"]
    assert body["status"] == "queued"
    assert instant(body["estimatedSendTime"]) >= instant(body["queuedAt"])
    assert isinstance(body["conversationId"], int)
    assert isinstance(body["position"], int)
    assert body["position"] > 0
    assert await event_types_of(container, body["messageId"], tenant) == ["MessageQueued"]
    owner = await container.pool.fetchval(
        "SELECT metadata->>'tenant' FROM events WHERE stream_id = $1",
        message_stream_id(tenant, body["messageId"]),
    )
    assert owner == tenant


@pytest.mark.parametrize("as_type", [str, int], ids=["string-id", "integer-id"])
async def test_the_recipient_id_may_be_a_string_or_an_integer(
    http: httpx.AsyncClient, auth: Headers, as_type: Callable[[int], Any]
) -> None:
    fan_id = await new_fan(http, auth)

    first = await send(http, auth, recipientId=as_type(fan_id))
    second = await send(http, auth, recipientId=as_type(fan_id), content="Again")

    assert first["conversationId"] == second["conversationId"]
    assert first["messageId"] != second["messageId"]
    assert second["position"] > first["position"]


async def test_a_sent_message_leaves_one_outbox_row_without_its_content_or_media_in_clear(
    http: httpx.AsyncClient, auth: Headers, container: Container, tenant: str
) -> None:
    fan_id = await new_fan(http, auth)

    sent = await send(
        http,
        auth,
        recipientId=fan_id,
        content=SECRET,
        mediaUrls=[MEDIA],
        attachments=[{"type": "image", "url": "https://cdn.example.com/vault/p.png"}],
        priceCents=1_500,
        priority=9,
    )

    [body] = await outbox_rows(container, sent["messageId"])
    assert SECRET not in body
    assert "cdn.example.com" not in body
    assert "vault" not in body
    row = await container.pool.fetchrow(
        "SELECT queue, body::jsonb->>'tenant' AS tenant,"
        " (body::jsonb->>'priceCents')::int AS price, body::jsonb ? 'content' AS has_content"
        " FROM outbox WHERE message_id = $1",
        sent["messageId"],
    )
    assert (row["queue"], row["tenant"], row["price"], row["has_content"]) == (
        "high",
        tenant,
        1_500,
        False,
    )


async def test_sending_the_same_message_id_again_answers_the_same_and_records_nothing(
    http: httpx.AsyncClient,
    auth: Headers,
    container: Container,
    events_of_tenant: Count,
    outbox_of_tenant: Count,
) -> None:
    fan_id = await new_fan(http, auth)
    message_id = str(uuid.uuid4())
    first = await send(http, auth, recipientId=fan_id, messageId=message_id)
    events, outbox = await events_of_tenant(), await outbox_of_tenant()

    again = await send(http, auth, recipientId=fan_id, messageId=message_id)

    assert again["messageId"] == first["messageId"] == message_id
    assert (again["conversationId"], again["position"], again["queuedAt"]) == (
        first["conversationId"],
        first["position"],
        first["queuedAt"],
    )
    assert await events_of_tenant() == events
    assert await outbox_of_tenant() == outbox
    assert len(await outbox_rows(container, message_id)) == 1


@pytest.mark.parametrize(
    ("change", "named"),
    [
        ({"content": "Changed"}, "content"),
        ({"priceCents": 500}, "price"),
        ({"mediaUrls": [MEDIA]}, "media"),
        ({"priority": 9}, "priority"),
        ({"recipientId": None}, "recipient"),
    ],
    ids=["content", "price", "media", "priority", "recipient"],
)
async def test_a_message_id_sent_again_with_another_message_is_a_409_naming_the_difference(
    http: httpx.AsyncClient,
    auth: Headers,
    events_of_tenant: Count,
    outbox_of_tenant: Count,
    change: dict[str, Any],
    named: str,
) -> None:
    fan_id = await new_fan(http, auth)
    message_id = str(uuid.uuid4())
    await send(http, auth, recipientId=fan_id, messageId=message_id)
    if change.get("recipientId", 0) is None:
        change = {"recipientId": await new_fan(http, auth, "Bea")}
    events, outbox = await events_of_tenant(), await outbox_of_tenant()

    response = await http.post(
        SEND,
        json={"recipientId": fan_id, "content": "Hello", "messageId": message_id} | change,
        headers=auth,
    )

    detail = assert_problem(response, 409)["detail"]
    assert message_id in detail
    assert named in detail
    assert await events_of_tenant() == events
    assert await outbox_of_tenant() == outbox


async def test_a_message_id_another_tenant_used_is_queued_as_this_tenants_own(
    http: httpx.AsyncClient,
    auth: Headers,
    other_auth: Headers,
    container: Container,
    tenant: str,
    outbox_of_tenant: Count,
) -> None:
    message_id = str(uuid.uuid4())
    await send(http, other_auth, recipientId=await new_fan(http, other_auth), messageId=message_id)
    fan_id = await new_fan(http, auth)

    mine = await send(http, auth, recipientId=fan_id, messageId=message_id, content="Mine")

    assert mine["messageId"] == message_id
    assert await event_types_of(container, message_id, tenant) == ["MessageQueued"]
    assert await outbox_of_tenant() == 1


# --- Idempotency-Key ------------------------------------------------------------------------


async def test_a_retry_with_the_same_idempotency_key_replays_the_first_response(
    http: httpx.AsyncClient,
    auth: Headers,
    container: Container,
    events_of_tenant: Count,
    outbox_of_tenant: Count,
) -> None:
    fan_id = await new_fan(http, auth)
    headers = {**auth, "Idempotency-Key": f"key-{uuid.uuid4()}"}
    body = {"recipientId": fan_id, "content": "Once only"}
    first = await http.post(SEND, json=body, headers=headers)
    assert first.status_code == 202, first.text
    assert "idempotent-replayed" not in first.headers
    events, outbox = await events_of_tenant(), await outbox_of_tenant()

    retried = await http.post(SEND, json=body, headers=headers)

    assert retried.status_code == 202, retried.text
    assert retried.headers["idempotent-replayed"] == "true"
    assert retried.headers["content-type"].startswith("application/json")
    assert retried.json() == first.json()
    assert await events_of_tenant() == events
    assert await outbox_of_tenant() == outbox == 1
    assert len(await outbox_rows(container, first.json()["messageId"])) == 1


async def test_a_key_whose_first_request_ended_without_a_response_never_runs_twice(
    http: httpx.AsyncClient,
    auth: Headers,
    container: Container,
    tenant: str,
    events_of_tenant: Count,
    outbox_of_tenant: Count,
) -> None:
    fan_id = await new_fan(http, auth)
    key = f"key-{uuid.uuid4()}"
    headers = {**auth, "Idempotency-Key": key}
    body = {"recipientId": fan_id, "content": "Once only", "messageId": str(uuid.uuid4())}
    first = await http.post(SEND, json=body, headers=headers)
    assert first.status_code == 202, first.text
    # As if the process died between the command's commit and storing its response.
    await container.pool.execute(
        "UPDATE idempotency_keys SET status = NULL, body = NULL WHERE tenant_id = $1 AND key = $2",
        tenant,
        key,
    )
    events, outbox = await events_of_tenant(), await outbox_of_tenant()

    retried = await http.post(SEND, json=body, headers=headers)

    assert assert_problem(retried, 409)["detail"].startswith("a request with this Idempotency-Key")
    assert await events_of_tenant() == events
    assert await outbox_of_tenant() == outbox == 1


async def test_a_request_refused_frees_its_idempotency_key_for_a_corrected_retry(
    http: httpx.AsyncClient, auth: Headers, outbox_of_tenant: Count
) -> None:
    fan_id = await new_fan(http, auth)
    headers = {**auth, "Idempotency-Key": f"key-{uuid.uuid4()}"}
    refused = await http.post(SEND, json={"recipientId": 2**62, "content": "Hi"}, headers=headers)
    assert 400 <= refused.status_code < 500, refused.text

    # The same key, the request corrected: not "used for a different request" (422).
    sent = await http.post(SEND, json={"recipientId": fan_id, "content": "Hi"}, headers=headers)

    assert sent.status_code == 202, sent.text
    assert await outbox_of_tenant() == 1


async def test_concurrent_requests_with_one_idempotency_key_queue_one_message(
    http: httpx.AsyncClient, auth: Headers, events_of_tenant: Count, outbox_of_tenant: Count
) -> None:
    fan_id = await new_fan(http, auth)
    headers = {**auth, "Idempotency-Key": f"key-{uuid.uuid4()}"}
    body = {"recipientId": fan_id, "content": "Once only"}
    before = await events_of_tenant()

    responses = await asyncio.gather(*(http.post(SEND, json=body, headers=headers) for _ in "123"))

    assert [r.status_code for r in responses] == [202, 202, 202]
    assert len({r.json()["messageId"] for r in responses}) == 1
    # the fan's conversation, its start, and one message
    assert await events_of_tenant() == before + 3
    assert await outbox_of_tenant() == 1


async def test_an_idempotency_key_reused_for_another_request_is_422_and_records_nothing(
    http: httpx.AsyncClient, auth: Headers, events_of_tenant: Count, outbox_of_tenant: Count
) -> None:
    fan_id = await new_fan(http, auth)
    headers = {**auth, "Idempotency-Key": f"key-{uuid.uuid4()}"}
    first = await http.post(SEND, json={"recipientId": fan_id, "content": "A"}, headers=headers)
    assert first.status_code == 202, first.text
    events, outbox = await events_of_tenant(), await outbox_of_tenant()

    other = await http.post(SEND, json={"recipientId": fan_id, "content": "B"}, headers=headers)

    assert assert_problem(other, 422)["field"] == "idempotencyKey"
    assert await events_of_tenant() == events
    assert await outbox_of_tenant() == outbox


async def test_idempotency_keys_belong_to_one_tenant(
    http: httpx.AsyncClient, auth: Headers, other_auth: Headers
) -> None:
    key = f"key-{uuid.uuid4()}"
    mine = await send_with_key(http, auth, key, await new_fan(http, auth))
    theirs = await send_with_key(http, other_auth, key, await new_fan(http, other_auth))

    assert "idempotent-replayed" not in theirs.headers
    assert theirs.json()["messageId"] != mine.json()["messageId"]


async def test_a_batch_retried_with_its_idempotency_key_is_replayed(
    http: httpx.AsyncClient, auth: Headers, events_of_tenant: Count, outbox_of_tenant: Count
) -> None:
    fan_id = await new_fan(http, auth)
    headers = {**auth, "Idempotency-Key": f"key-{uuid.uuid4()}"}
    body = {"messages": [{"recipientId": fan_id, "content": f"Hi {n}"} for n in range(2)]}
    first = await http.post(BATCH, json=body, headers=headers)
    assert first.status_code == 202, first.text
    events = await events_of_tenant()

    retried = await http.post(BATCH, json=body, headers=headers)

    assert retried.status_code == 202, retried.text
    assert retried.headers["idempotent-replayed"] == "true"
    assert retried.json() == first.json()
    assert await events_of_tenant() == events
    assert await outbox_of_tenant() == 2


async def test_concurrent_batches_with_one_idempotency_key_queue_each_message_once(
    http: httpx.AsyncClient, auth: Headers, outbox_of_tenant: Count
) -> None:
    fan_id = await new_fan(http, auth)
    headers = {**auth, "Idempotency-Key": f"key-{uuid.uuid4()}"}
    body = {"messages": [{"recipientId": fan_id, "content": f"Hi {n}"} for n in range(3)]}

    responses = await asyncio.gather(*(http.post(BATCH, json=body, headers=headers) for _ in "12"))

    assert [r.status_code for r in responses] == [202, 202]
    ids = [[item["messageId"] for item in r.json()["results"]] for r in responses]
    assert ids[0] == ids[1]
    assert await outbox_of_tenant() == 3


@pytest.mark.parametrize("key", ["", "   ", "k" * 256], ids=["empty", "blank", "too-long"])
async def test_an_idempotency_key_of_the_wrong_length_is_422(
    http: httpx.AsyncClient, auth: Headers, events_of_tenant: Count, key: str
) -> None:
    fan_id = await new_fan(http, auth)
    events = await events_of_tenant()

    response = await http.post(
        SEND,
        json={"recipientId": fan_id, "content": "Hi"},
        headers={**auth, "Idempotency-Key": key},
    )

    assert assert_problem(response, 422)["field"] == "idempotencyKey"
    assert await events_of_tenant() == events


# --- refused input --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("changes", "status", "field"),
    [
        ({"content": ""}, 422, "content"),
        ({"content": " \n\t "}, 422, "content"),
        ({"content": "x" * 5_001}, 422, "content"),
        ({"content": "a\x00b"}, 422, "content"),
        ({"priceCents": 100}, 422, "priceCents"),
        ({"priceCents": 30_000}, 422, "priceCents"),
        ({"priceCents": -300}, 422, "priceCents"),
        ({"mediaUrls": ["http://cdn.example.com/a.jpg"]}, 422, "attachments"),
        ({"mediaUrls": ["javascript:alert(1)"]}, 422, "attachments"),
        ({"mediaUrls": ["https://cdn.example.com/a\x00.jpg"]}, 422, "attachments"),
        ({"attachments": [{"type": "gif", "url": MEDIA}]}, 422, "attachments"),
        ({"attachments": [{"type": "image", "url": "http://x.example/a"}]}, 422, "attachments"),
        ({"mediaUrls": [MEDIA] * 21}, 422, "attachments"),
        ({"priority": 0}, 422, "priority"),
        ({"priority": 11}, 422, "priority"),
        ({"recipientId": "abc"}, 422, "recipientId"),
        ({"recipientId": "-1"}, 422, "recipientId"),
        ({"recipientId": "987654321012"}, 422, "recipientId"),
        ({"recipientId": 987654321012}, 422, "recipientId"),
        ({"messageId": "not-a-uuid"}, 422, "messageId"),
        ({"nickname": "x"}, 400, None),
        ({"recipient_id": 1}, 400, None),
        ({"userId": "someone-else"}, 400, None),
        ({"content": 5}, 400, None),
        ({"content": None}, 400, None),
        ({"priceCents": "500"}, 400, None),
        ({"priceCents": 500.0}, 400, None),
        ({"priceCents": True}, 400, None),
        ({"priority": "5"}, 400, None),
        ({"priority": True}, 400, None),
        ({"recipientId": 1.5}, 400, None),
        ({"recipientId": True}, 400, None),
        ({"recipientId": None}, 400, None),
        ({"recipientId": [1]}, 400, None),
        ({"mediaUrls": MEDIA}, 400, None),
        ({"attachments": [{"type": "image"}]}, 400, None),
        ({"attachments": [{"type": "image", "url": MEDIA, "size": 1}]}, 400, None),
    ],
    ids=[
        "empty-content",
        "blank-content",
        "long-content",
        "nul-content",
        "price-100",
        "price-30000",
        "price-negative",
        "http-media",
        "javascript-media",
        "nul-media",
        "unknown-attachment-type",
        "http-attachment",
        "21-media",
        "priority-0",
        "priority-11",
        "recipient-word",
        "recipient-negative",
        "recipient-unknown-string",
        "recipient-unknown-int",
        "message-id-not-uuid",
        "unknown-field",
        "snake-case-field",
        "tenant-field",
        "content-number",
        "content-null",
        "price-string",
        "price-float",
        "price-bool",
        "priority-string",
        "priority-bool",
        "recipient-float",
        "recipient-bool",
        "recipient-null",
        "recipient-list",
        "media-string",
        "attachment-without-url",
        "attachment-unknown-field",
    ],
)
async def test_a_refused_message_is_4xx_problem_json_and_records_nothing(
    http: httpx.AsyncClient,
    auth: Headers,
    events_of_tenant: Count,
    outbox_of_tenant: Count,
    changes: dict[str, Any],
    status: int,
    field: str | None,
) -> None:
    fan_id = await new_fan(http, auth)
    events = await events_of_tenant()

    response = await http.post(
        SEND, json={"recipientId": fan_id, "content": "Hi", **changes}, headers=auth
    )

    problem = assert_problem(response, status)
    if field is not None:
        assert problem["type"].endswith("/invalid-value")
        assert problem["field"] == field
    assert await events_of_tenant() == events
    assert await outbox_of_tenant() == 0


@pytest.mark.parametrize(
    "raw",
    [b'{"recipientId": 1', b"not json", b"", b"[]", b'"hi"', b'{"content": "no recipient"}'],
    ids=["truncated", "text", "empty", "array", "string", "no-recipient"],
)
async def test_a_body_that_is_not_a_message_is_400(
    http: httpx.AsyncClient, auth: Headers, events_of_tenant: Count, raw: bytes
) -> None:
    headers = {**auth, "Content-Type": "application/json"}

    for path in (SEND, BATCH):
        assert_problem(await http.post(path, content=raw, headers=headers), 400)
    assert await events_of_tenant() == 0


async def test_a_message_to_another_tenants_fan_is_422_and_records_nothing(
    http: httpx.AsyncClient,
    auth: Headers,
    other_auth: Headers,
    events_of_tenant: Count,
    outbox_of_tenant: Count,
) -> None:
    theirs = await new_fan(http, other_auth)

    response = await http.post(SEND, json={"recipientId": theirs, "content": "Hi"}, headers=auth)

    assert assert_problem(response, 422)["field"] == "recipientId"
    assert await events_of_tenant() == 0
    assert await outbox_of_tenant() == 0


async def test_a_message_to_a_deleted_fan_is_422_and_records_nothing(
    http: httpx.AsyncClient, auth: Headers, events_of_tenant: Count, outbox_of_tenant: Count
) -> None:
    fan_id = await new_fan(http, auth)
    deleted = await http.delete(f"{FANS}/{fan_id}", headers=auth)
    assert deleted.status_code == 200, deleted.text
    events = await events_of_tenant()

    response = await http.post(SEND, json={"recipientId": fan_id, "content": "Hi"}, headers=auth)

    assert assert_problem(response, 422)["field"] == "recipientId"
    assert await events_of_tenant() == events
    assert await outbox_of_tenant() == 0


# --- batches --------------------------------------------------------------------------------


async def test_a_batch_of_more_than_ten_messages_is_422_and_records_nothing(
    http: httpx.AsyncClient, auth: Headers, events_of_tenant: Count, outbox_of_tenant: Count
) -> None:
    fan_id = await new_fan(http, auth)
    events = await events_of_tenant()
    body = {"messages": [{"recipientId": fan_id, "content": f"Hi {n}"} for n in range(11)]}

    response = await http.post(BATCH, json=body, headers=auth)

    assert assert_problem(response, 422)["field"] == "messages"
    assert await events_of_tenant() == events
    assert await outbox_of_tenant() == 0


async def test_a_batch_of_ten_queues_all_ten(
    http: httpx.AsyncClient, auth: Headers, outbox_of_tenant: Count
) -> None:
    fan_id = await new_fan(http, auth)
    body = {"messages": [{"recipientId": fan_id, "content": f"Hi {n}"} for n in range(10)]}

    response = await http.post(BATCH, json=body, headers=auth)

    assert response.status_code == 202, response.text
    assert (response.json()["queued"], response.json()["failed"]) == (10, 0)
    assert await outbox_of_tenant() == 10


async def test_a_batch_with_one_bad_message_queues_the_others_and_reports_each(
    http: httpx.AsyncClient, auth: Headers, container: Container, outbox_of_tenant: Count
) -> None:
    fan_id = await new_fan(http, auth)
    chosen = str(uuid.uuid4())
    body = {
        "messages": [
            {"recipientId": fan_id, "content": "First", "messageId": chosen},
            {"recipientId": str(fan_id), "content": "Too cheap", "priceCents": 100},
            {"recipientId": fan_id, "content": "Third", "priority": 9},
        ]
    }

    response = await http.post(BATCH, json=body, headers=auth)

    assert response.status_code == 202, response.text
    result = response.json()
    assert (result["queued"], result["failed"]) == (2, 1)
    first, bad, third = result["results"]
    assert first["messageId"] == chosen
    assert (first["status"], third["status"]) == ("queued", "queued")
    assert instant(first["queuedAt"]) <= instant(third["queuedAt"])
    assert bad["status"] == "failed"
    assert bad["field"] == "priceCents"
    assert bad["error"]
    assert bad.get("messageId") is None
    assert await outbox_of_tenant() == 2
    assert len(await outbox_rows(container, third["messageId"])) == 1


async def test_a_batch_message_whose_id_another_tenant_used_is_queued(
    http: httpx.AsyncClient, auth: Headers, other_auth: Headers, outbox_of_tenant: Count
) -> None:
    taken = str(uuid.uuid4())
    await send(http, other_auth, recipientId=await new_fan(http, other_auth), messageId=taken)
    fan_id = await new_fan(http, auth)
    body = {
        "messages": [
            {"recipientId": fan_id, "content": "Mine"},
            {"recipientId": fan_id, "content": "Also mine", "messageId": taken},
        ]
    }

    response = await http.post(BATCH, json=body, headers=auth)

    assert response.status_code == 202, response.text
    assert (response.json()["queued"], response.json()["failed"]) == (2, 0)
    assert await outbox_of_tenant() == 2


async def test_a_message_id_twice_in_one_batch_fails_the_second_and_queues_the_first(
    http: httpx.AsyncClient, auth: Headers, outbox_of_tenant: Count
) -> None:
    twice = str(uuid.uuid4())
    fan_id = await new_fan(http, auth)
    body = {
        "messages": [
            {"recipientId": fan_id, "content": "Same", "messageId": twice},
            {"recipientId": fan_id, "content": "Other"},
            {"recipientId": fan_id, "content": "Same", "messageId": twice},
        ]
    }

    response = await http.post(BATCH, json=body, headers=auth)

    assert response.status_code == 202, response.text
    result = response.json()
    assert (result["queued"], result["failed"]) == (2, 1)
    first, _, second = result["results"]
    assert (first["messageId"], first["status"]) == (twice, "queued")
    assert (second["messageId"], second["status"], second["field"]) == (
        twice,
        "failed",
        "messageId",
    )
    assert "twice" in second["error"]
    assert await outbox_of_tenant() == 2


async def test_a_batch_message_whose_id_was_used_for_another_message_fails_alone(
    http: httpx.AsyncClient, auth: Headers, outbox_of_tenant: Count
) -> None:
    taken = str(uuid.uuid4())
    fan_id = await new_fan(http, auth)
    await send(http, auth, recipientId=fan_id, messageId=taken)
    body = {
        "messages": [
            {"recipientId": fan_id, "content": "Mine"},
            {"recipientId": fan_id, "content": "Clash", "messageId": taken},
        ]
    }

    response = await http.post(BATCH, json=body, headers=auth)

    assert response.status_code == 202, response.text
    result = response.json()
    assert [item["status"] for item in result["results"]] == ["queued", "failed"]
    assert result["results"][1]["field"] == "messageId"
    assert "another content" in result["results"][1]["error"]
    assert await outbox_of_tenant() == 2


async def test_a_batch_item_of_the_wrong_type_refuses_the_whole_batch(
    http: httpx.AsyncClient, auth: Headers, events_of_tenant: Count
) -> None:
    fan_id = await new_fan(http, auth)
    events = await events_of_tenant()
    body = {
        "messages": [
            {"recipientId": fan_id, "content": "Fine"},
            {"recipientId": fan_id, "content": "Hi", "priceCents": "500"},
        ]
    }

    response = await http.post(BATCH, json=body, headers=auth)

    assert_problem(response, 400)
    assert await events_of_tenant() == events


# --- queue status ---------------------------------------------------------------------------


async def test_the_queue_status_answers_depths_and_the_last_processed_time(
    http: httpx.AsyncClient, auth: Headers
) -> None:
    response = await http.get(STATUS, headers=auth)

    assert response.status_code == 200, response.text
    body = response.json()
    assert {"queueDepth", "messagesInFlight", "dlqCount", "lastProcessedAt"} <= set(body)
    for key in ("queueDepth", "messagesInFlight", "dlqCount"):
        assert isinstance(body[key], int)
        assert not isinstance(body[key], bool)
        assert body[key] >= 0
    assert body["lastProcessedAt"] is None or instant(body["lastProcessedAt"])


# --- conversations and their messages -------------------------------------------------------


async def test_conversations_list_newest_activity_first_one_page_at_a_time(
    http: httpx.AsyncClient, auth: Headers, catch_up: CatchUp
) -> None:
    fans = [await new_fan(http, auth, name) for name in ("Ann", "Bea", "Cat")]
    sent = [await send(http, auth, recipientId=fan_id) for fan_id in fans]
    # A new message to the first fan makes hers the most recent conversation.
    await send(http, auth, recipientId=fans[0], content="Back again")
    await catch_up()

    pages: list[list[dict[str, Any]]] = []
    cursor: str | None = None
    for _ in range(5):
        params: dict[str, Any] = {"limit": 2}
        if cursor is not None:
            params["cursor"] = cursor
        response = await http.get(CONVERSATIONS, params=params, headers=auth)
        assert response.status_code == 200, response.text
        assert set(response.json()) == {"conversations", "nextCursor"}
        pages.append(response.json()["conversations"])
        cursor = response.json()["nextCursor"]
        if cursor is None:
            break

    assert [len(page) for page in pages] == [2, 1]
    listed = [conversation["id"] for page in pages for conversation in page]
    ann, bea, cat = (s["conversationId"] for s in sent)
    assert listed == [ann, cat, bea]
    assert [c["fanId"] for page in pages for c in page] == [fans[0], fans[2], fans[1]]
    assert [c["messageCount"] for page in pages for c in page] == [2, 1, 1]


async def test_a_conversation_reads_back_with_its_latest_activity(
    http: httpx.AsyncClient, auth: Headers, catch_up: CatchUp, tenant: str
) -> None:
    fan_id = await new_fan(http, auth)
    first = await send(http, auth, recipientId=fan_id)
    last = await send(http, auth, recipientId=fan_id, content="Later")
    await catch_up()

    response = await http.get(f"{CONVERSATIONS}/{first['conversationId']}", headers=auth)

    assert response.status_code == 200, response.text
    conversation = response.json()["conversation"]
    assert set(conversation) == {
        "id",
        "userId",
        "fanId",
        "platform",
        "createdAt",
        "lastMessageAt",
        "messageCount",
        "assignedTo",  # issue 16: the member it is assigned to, null here
        "unreadCount",  # issue 18: the fan's messages since the account's last one
    }
    assert conversation["assignedTo"] is None
    assert (conversation["id"], conversation["userId"], conversation["fanId"]) == (
        first["conversationId"],
        tenant,
        fan_id,
    )
    assert conversation["platform"] == "onlyfans"
    assert conversation["messageCount"] == 2
    assert instant(conversation["lastMessageAt"]) == instant(last["queuedAt"])
    assert instant(conversation["createdAt"]) <= instant(first["queuedAt"])


async def test_a_conversations_messages_show_queued_messages_with_their_content(
    http: httpx.AsyncClient, auth: Headers, catch_up: CatchUp, tenant: str
) -> None:
    fan_id = await new_fan(http, auth)
    first = await send(http, auth, recipientId=fan_id, content="Earlier")
    sent = await send(
        http,
        auth,
        recipientId=fan_id,
        content=SECRET,
        mediaUrls=[MEDIA],
        priceCents=2_000,
        priority=8,
    )
    await catch_up()

    response = await http.get(
        f"{CONVERSATIONS}/{sent['conversationId']}/messages",
        params={"minPosition": sent["position"]},
        headers=auth,
    )

    assert response.status_code == 200, response.text
    body = response.json()
    assert body["nextCursor"] is None
    newest, oldest = body["messages"]
    assert (newest["id"], oldest["id"]) == (sent["messageId"], first["messageId"])
    assert newest["userId"] == tenant
    assert (newest["conversationId"], newest["fanId"]) == (sent["conversationId"], fan_id)
    assert newest["direction"] == "out"
    assert newest["status"] == "queued"
    assert newest["content"] == SECRET
    assert newest["attachments"] == [{"type": "video", "url": MEDIA}]
    # Queued, not yet tried at the platform.
    assert (newest["priceCents"], newest["priority"], newest["attempts"]) == (2_000, 8, 0)
    assert instant(newest["queuedAt"]) == instant(sent["queuedAt"])
    for stamp in ("dispatchedAt", "sentAt", "readAt", "failedAt", "failureReason", "campaignId"):
        assert newest[stamp] is None

    one = await http.get(f"{CRM_MESSAGES}/{sent['messageId']}", headers=auth)
    assert one.status_code == 200, one.text
    assert one.json() == {"message": newest}


async def test_a_conversations_messages_page_newest_first(
    http: httpx.AsyncClient, auth: Headers, catch_up: CatchUp
) -> None:
    fan_id = await new_fan(http, auth)
    sent = [await send(http, auth, recipientId=fan_id, content=f"Hi {n}") for n in range(5)]
    await catch_up()
    url = f"{CONVERSATIONS}/{sent[0]['conversationId']}/messages"

    seen: list[str] = []
    cursor: str | None = None
    for _ in range(5):
        params: dict[str, Any] = {"limit": 2}
        if cursor is not None:
            params["cursor"] = cursor
        response = await http.get(url, params=params, headers=auth)
        assert response.status_code == 200, response.text
        seen += [message["id"] for message in response.json()["messages"]]
        cursor = response.json()["nextCursor"]
        if cursor is None:
            break

    assert seen == [s["messageId"] for s in reversed(sent)]


async def test_another_tenant_gets_404_for_the_conversation_and_its_messages(
    http: httpx.AsyncClient, auth: Headers, other_auth: Headers, catch_up: CatchUp
) -> None:
    sent = await send(http, auth, recipientId=await new_fan(http, auth))
    await catch_up()
    conversation = f"{CONVERSATIONS}/{sent['conversationId']}"

    for path in (
        conversation,
        f"{conversation}/messages",
        f"{CRM_MESSAGES}/{sent['messageId']}",
    ):
        body = assert_problem(await http.get(path, headers=other_auth), 404)
        assert body["type"].endswith("/not-found")
        assert (await http.get(path, headers=auth)).status_code == 200
    listed = await http.get(CONVERSATIONS, headers=other_auth)
    assert listed.json() == {"conversations": [], "nextCursor": None}


@pytest.mark.parametrize(
    "path",
    [
        f"{CONVERSATIONS}/987654321012",
        f"{CONVERSATIONS}/987654321012/messages",
        f"{CRM_MESSAGES}/{uuid.UUID(int=1)}",
        f"{CRM_MESSAGES}/not-a-uuid",
    ],
    ids=["conversation", "conversation-messages", "message", "message-not-uuid"],
)
async def test_what_does_not_exist_is_404(
    http: httpx.AsyncClient, auth: Headers, path: str
) -> None:
    assert_problem(await http.get(path, headers=auth), 404)


async def test_a_cursor_this_api_did_not_return_is_422(
    http: httpx.AsyncClient, auth: Headers
) -> None:
    response = await http.get(CONVERSATIONS, params={"cursor": "garbage!"}, headers=auth)

    assert assert_problem(response, 422)["field"] == "cursor"


async def test_creating_a_conversation_answers_201_then_200_with_the_same_id(
    http: httpx.AsyncClient,
    auth: Headers,
    catch_up: CatchUp,
    events_of_tenant: Count,
    outbox_of_tenant: Count,
) -> None:
    fan_id = await new_fan(http, auth)

    created = await http.post(CONVERSATIONS, json={"fanId": fan_id}, headers=auth)
    events = await events_of_tenant()
    again = await http.post(CONVERSATIONS, json={"fanId": fan_id}, headers=auth)

    assert created.status_code == 201, created.text
    assert again.status_code == 200, again.text
    conversation_id = created.json()["id"]
    assert isinstance(conversation_id, int)
    assert isinstance(created.json()["position"], int)
    assert again.json()["id"] == conversation_id
    assert again.json()["position"] is None
    assert await events_of_tenant() == events
    assert await outbox_of_tenant() == 0
    sent = await send(http, auth, recipientId=fan_id)
    assert sent["conversationId"] == conversation_id

    await catch_up()
    got = await http.get(f"{CONVERSATIONS}/{conversation_id}", headers=auth)
    assert got.status_code == 200, got.text
    assert (got.json()["conversation"]["fanId"], got.json()["conversation"]["messageCount"]) == (
        fan_id,
        1,
    )


async def test_an_empty_conversation_is_listed_by_when_it_started(
    http: httpx.AsyncClient, auth: Headers, catch_up: CatchUp
) -> None:
    fan_id = await new_fan(http, auth)
    created = await http.post(CONVERSATIONS, json={"fanId": fan_id}, headers=auth)
    assert created.status_code == 201, created.text
    await catch_up()

    response = await http.get(CONVERSATIONS, headers=auth)

    [conversation] = response.json()["conversations"]
    assert conversation["id"] == created.json()["id"]
    assert (conversation["messageCount"], conversation["lastMessageAt"]) == (0, None)


async def test_a_message_to_a_fan_opens_the_conversation_that_post_then_answers(
    http: httpx.AsyncClient, auth: Headers
) -> None:
    fan_id = await new_fan(http, auth)
    sent = await send(http, auth, recipientId=fan_id)

    response = await http.post(CONVERSATIONS, json={"fanId": fan_id}, headers=auth)

    assert response.status_code == 200, response.text
    assert response.json()["id"] == sent["conversationId"]


@pytest.mark.parametrize(
    ("body", "status"),
    [
        ({"fanId": 987654321012}, 422),
        ({"fanId": "1"}, 400),
        ({}, 400),
        ({"fanId": 1, "extra": True}, 400),
    ],
    ids=["unknown-fan", "string-id", "no-fan", "unknown-field"],
)
async def test_a_conversation_cannot_be_created_from_a_bad_body(
    http: httpx.AsyncClient,
    auth: Headers,
    events_of_tenant: Count,
    body: dict[str, Any],
    status: int,
) -> None:
    response = await http.post(CONVERSATIONS, json=body, headers=auth)

    problem = assert_problem(response, status)
    if status == 422:
        assert problem["field"] == "fanId"
    assert await events_of_tenant() == 0


async def test_a_conversation_with_another_tenants_fan_is_422(
    http: httpx.AsyncClient, auth: Headers, other_auth: Headers, events_of_tenant: Count
) -> None:
    theirs = await new_fan(http, other_auth)

    response = await http.post(CONVERSATIONS, json={"fanId": theirs}, headers=auth)

    assert assert_problem(response, 422)["field"] == "fanId"
    assert await events_of_tenant() == 0


# --- retry and read -------------------------------------------------------------------------


async def test_retrying_a_message_that_has_not_failed_is_409(
    http: httpx.AsyncClient,
    auth: Headers,
    events_of_tenant: Count,
    outbox_of_tenant: Count,
) -> None:
    sent = await send(http, auth, recipientId=await new_fan(http, auth))
    events = await events_of_tenant()

    response = await http.post(f"/api/onlyfans/messages/{sent['messageId']}/retry", headers=auth)

    assert assert_problem(response, 409)["type"].endswith("/illegal-state")
    assert await events_of_tenant() == events
    assert await outbox_of_tenant() == 1


async def test_retrying_a_failed_message_requeues_it_with_a_new_outbox_row(
    http: httpx.AsyncClient,
    auth: Headers,
    container: Container,
    catch_up: CatchUp,
    ctx: CommandContext,
) -> None:
    sent = await send(http, auth, recipientId=await new_fan(http, auth), content=SECRET)
    message_id = sent["messageId"]
    await messages.record_failed(
        message_id, "gave up after 3 attempts", ctx, store=container.events
    )
    await catch_up()
    failed = (await http.get(f"{CRM_MESSAGES}/{message_id}", headers=auth)).json()["message"]
    assert (failed["status"], failed["failureReason"]) == ("failed", "gave up after 3 attempts")
    assert failed["failedAt"] is not None

    response = await http.post(f"/api/onlyfans/messages/{message_id}/retry", headers=auth)

    assert response.status_code == 202, response.text
    body = response.json()
    assert (body["messageId"], body["status"]) == (message_id, "queued")
    assert body["position"] > sent["position"]
    assert await event_types_of(container, message_id, ctx.tenant) == [
        "MessageQueued",
        "MessageFailed",
        "MessageRequeued",
    ]
    rows = await outbox_rows(container, message_id)
    assert len(rows) == 2
    assert SECRET not in rows[1]
    assert '"attempt":2' in rows[1].replace(" ", "")
    await catch_up()
    again = (await http.get(f"{CRM_MESSAGES}/{message_id}", headers=auth)).json()["message"]
    # A person's retry is no try at the platform; nor was giving up without one.
    assert (again["status"], again["failureReason"], again["attempts"]) == ("queued", None, 0)


async def test_retrying_another_tenants_or_an_unknown_message_is_404(
    http: httpx.AsyncClient,
    auth: Headers,
    other_auth: Headers,
    container: Container,
    ctx: CommandContext,
    events_of_tenant: Count,
) -> None:
    sent = await send(http, auth, recipientId=await new_fan(http, auth))
    await messages.record_failed(sent["messageId"], "gave up", ctx, store=container.events)
    events = await events_of_tenant()

    theirs = await http.post(
        f"/api/onlyfans/messages/{sent['messageId']}/retry", headers=other_auth
    )
    unknown = await http.post(f"/api/onlyfans/messages/{uuid.uuid4()}/retry", headers=auth)

    assert_problem(theirs, 404)
    assert_problem(unknown, 404)
    assert await events_of_tenant() == events


async def test_retrying_a_message_id_that_is_not_a_uuid_is_422(
    http: httpx.AsyncClient, auth: Headers
) -> None:
    response = await http.post("/api/onlyfans/messages/not-a-uuid/retry", headers=auth)

    assert assert_problem(response, 422)["field"] == "messageId"


async def test_marking_a_queued_message_read_is_409(
    http: httpx.AsyncClient, auth: Headers, events_of_tenant: Count
) -> None:
    sent = await send(http, auth, recipientId=await new_fan(http, auth))
    events = await events_of_tenant()

    response = await http.post(f"{CRM_MESSAGES}/{sent['messageId']}/read", headers=auth)

    assert assert_problem(response, 409)["type"].endswith("/illegal-state")
    assert await events_of_tenant() == events


async def test_a_sent_message_is_marked_read_and_reads_back_as_read(
    http: httpx.AsyncClient,
    auth: Headers,
    container: Container,
    catch_up: CatchUp,
    ctx: CommandContext,
) -> None:
    sent = await send(http, auth, recipientId=await new_fan(http, auth))
    message_id = sent["messageId"]
    await messages.record_dispatched(message_id, "normal", ctx, store=container.events)
    await messages.record_sent(message_id, "of-123", ctx, store=container.events)

    response = await http.post(f"{CRM_MESSAGES}/{message_id}/read", headers=auth)
    again = await http.post(f"{CRM_MESSAGES}/{message_id}/read", headers=auth)

    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["messageId"], body["status"]) == (message_id, "read")
    assert body["position"] > sent["position"]
    assert again.status_code == 200, again.text
    assert again.json() == body
    assert await event_types_of(container, message_id, ctx.tenant) == [
        "MessageQueued",
        "MessageDispatched",
        "MessageSent",
        "MessageRead",
    ]
    await catch_up()
    got = await http.get(
        f"{CRM_MESSAGES}/{message_id}", params={"minPosition": body["position"]}, headers=auth
    )
    assert got.status_code == 200, got.text
    message = got.json()["message"]
    assert message["status"] == "read"
    for stamp in ("dispatchedAt", "sentAt", "readAt"):
        assert message[stamp] is not None
    assert (
        instant(message["queuedAt"])
        <= instant(message["dispatchedAt"])
        <= instant(message["sentAt"])
        <= instant(message["readAt"])
    )


async def test_marking_another_tenants_message_read_is_404(
    http: httpx.AsyncClient,
    auth: Headers,
    other_auth: Headers,
    container: Container,
    ctx: CommandContext,
) -> None:
    sent = await send(http, auth, recipientId=await new_fan(http, auth))
    await messages.record_sent(sent["messageId"], None, ctx, store=container.events)

    theirs = await http.post(f"{CRM_MESSAGES}/{sent['messageId']}/read", headers=other_auth)
    not_uuid = await http.post(f"{CRM_MESSAGES}/not-a-uuid/read", headers=auth)

    assert_problem(theirs, 404)
    assert_problem(not_uuid, 404)
    assert await event_types_of(container, sent["messageId"], ctx.tenant) == [
        "MessageQueued",
        "MessageSent",
    ]


# --- authentication -------------------------------------------------------------------------

SOME_ID = "5f0c8a4e-2a43-4c1e-9d6b-0e7f6a1b2c3d"


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", SEND),
        ("POST", BATCH),
        ("GET", STATUS),
        ("POST", f"/api/onlyfans/messages/{SOME_ID}/retry"),
        ("GET", CONVERSATIONS),
        ("POST", CONVERSATIONS),
        ("GET", f"{CONVERSATIONS}/1"),
        ("GET", f"{CONVERSATIONS}/1/messages"),
        ("GET", f"{CRM_MESSAGES}/{SOME_ID}"),
        ("POST", f"{CRM_MESSAGES}/{SOME_ID}/read"),
    ],
)
@pytest.mark.parametrize(
    "authorization", [None, "Bearer crm_deadbeef_notakeyweknow"], ids=["none", "unknown-key"]
)
async def test_every_messaging_route_is_401_without_a_valid_key(
    http: httpx.AsyncClient,
    container: Container,
    method: str,
    path: str,
    authorization: str | None,
) -> None:
    headers = {} if authorization is None else {"Authorization": authorization}
    before = await container.pool.fetchval("SELECT count(*) FROM events")

    response = await http.request(
        method, path, json={"recipientId": 1, "content": "Hi", "fanId": 1}, headers=headers
    )

    body = assert_problem(response, 401)
    assert body["type"].endswith("/unauthorized")
    assert response.headers["www-authenticate"] == "Bearer"
    assert await container.pool.fetchval("SELECT count(*) FROM events") == before


async def test_the_openapi_document_lists_the_messaging_routes(http: httpx.AsyncClient) -> None:
    paths = (await http.get("/schema/openapi.json")).json()["paths"]

    for path in (SEND, BATCH, STATUS, CONVERSATIONS):
        assert path in paths


# --- edges: ids, cursors, read-your-writes --------------------------------------------------


def raw_cursor(*values: Any) -> str:
    return base64.urlsafe_b64encode(msgspec.json.encode(values)).decode().rstrip("=")


async def test_a_conversation_id_beyond_the_integer_range_is_404_not_a_server_error(
    http: httpx.AsyncClient, auth: Headers
) -> None:
    for path in (f"{CONVERSATIONS}/{2**70}", f"{CONVERSATIONS}/{2**63}/messages"):
        assert_problem(await http.get(path, headers=auth), 404)


@pytest.mark.parametrize(
    "values",
    [
        ("2026-01-01T00:00:00Z", 2**64 - 1),
        ("2026-01-01T00:00:00Z", -(2**63) - 1),
        ("0001-01-01T00:00:00+01:00", 1),
        ("9999-12-31T23:59:59-01:00", 1),
        ("2026-01-01T00:00:00", 1),
        ("2026-01-01T00:00:00Z", "1"),
        ("not a time", 1),
    ],
    ids=["id-too-big", "id-too-small", "before-year-1", "after-9999", "naive", "id-text", "text"],
)
async def test_a_conversations_cursor_this_api_did_not_return_is_422(
    http: httpx.AsyncClient, auth: Headers, values: tuple[Any, ...]
) -> None:
    response = await http.get(CONVERSATIONS, params={"cursor": raw_cursor(*values)}, headers=auth)

    assert assert_problem(response, 422)["field"] == "cursor"


@pytest.mark.parametrize(
    "values",
    [
        ("2026-01-01T00:00:00Z", "not-a-uuid"),
        ("2026-01-01T00:00:00Z", 5),
        ("0001-01-01T00:00:00+01:00", str(uuid.UUID(int=1))),
        ("2026-01-01T00:00:00", str(uuid.UUID(int=1))),
    ],
    ids=["id-text", "id-number", "before-year-1", "naive"],
)
async def test_a_messages_cursor_this_api_did_not_return_is_422(
    http: httpx.AsyncClient, auth: Headers, catch_up: CatchUp, values: tuple[Any, ...]
) -> None:
    sent = await send(http, auth, recipientId=await new_fan(http, auth))
    await catch_up()

    response = await http.get(
        f"{CONVERSATIONS}/{sent['conversationId']}/messages",
        params={"cursor": raw_cursor(*values)},
        headers=auth,
    )

    assert assert_problem(response, 422)["field"] == "cursor"


async def test_reading_a_conversations_messages_at_a_position_waits_for_both_views(
    http: httpx.AsyncClient, auth: Headers, container: Container
) -> None:
    sent = await send(http, auth, recipientId=await new_fan(http, auth))
    await ProjectionRunner(container.projection_store, MessagesProjection()).catch_up()

    read = asyncio.create_task(
        http.get(
            f"{CONVERSATIONS}/{sent['conversationId']}/messages",
            params={"minPosition": sent["position"]},
            headers=auth,
        )
    )
    await asyncio.sleep(0.05)
    await ProjectionRunner(container.projection_store, ConversationsProjection()).catch_up()

    response = await read
    assert response.status_code == 200, response.text
    assert [m["id"] for m in response.json()["messages"]] == [sent["messageId"]]


async def test_message_ids_in_any_case_name_the_same_message(
    http: httpx.AsyncClient,
    auth: Headers,
    container: Container,
    catch_up: CatchUp,
    ctx: CommandContext,
) -> None:
    sent = await send(http, auth, recipientId=await new_fan(http, auth))
    message_id = sent["messageId"]
    await messages.record_failed(message_id, "gave up", ctx, store=container.events)

    retried = await http.post(f"/api/onlyfans/messages/{message_id.upper()}/retry", headers=auth)
    await messages.record_sent(message_id, None, ctx, store=container.events)
    read = await http.post(f"{CRM_MESSAGES}/{message_id.upper()}/read", headers=auth)
    await catch_up()
    got = await http.get(f"{CRM_MESSAGES}/{message_id.upper()}", headers=auth)

    assert retried.status_code == 202, retried.text
    assert retried.json()["messageId"] == message_id
    assert read.status_code == 200, read.text
    assert read.json()["messageId"] == message_id
    assert got.status_code == 200, got.text
    assert (got.json()["message"]["id"], got.json()["message"]["status"]) == (message_id, "read")


# --- erasure --------------------------------------------------------------------------------


@pytest.fixture
async def own_container(fresh_database_url: str) -> AsyncIterator[Container]:
    """A database of its own: this test replays the whole log from its start."""
    built = await bootstrap.build(settings_for(fresh_database_url, pool_max_size=4))
    yield built
    await built.close()


async def test_the_log_still_replays_after_a_fan_with_messages_was_erased(
    own_container: Container,
) -> None:
    container = own_container
    key, _ = await create_api_key(container.pool, user_id="creator-1", role="creator")
    auth = {"Authorization": f"Bearer {key}"}
    transport = httpx.ASGITransport(app=create_app(container=container))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
        fan_id = await new_fan(http, auth)
        sent = await send(http, auth, recipientId=fan_id, content=SECRET, mediaUrls=[MEDIA])
        await messages.record_sent(
            sent["messageId"],
            "of-1",
            CommandContext(tenant="creator-1", actor="relay", correlation_id="c"),
            store=container.events,
        )
        erased = await http.delete(f"{FANS}/{fan_id}", params={"erase": "true"}, headers=auth)
        assert erased.status_code == 200, erased.text

        # The projectors meet the message only after the erasure, as in a rebuild.
        for projection in bootstrap.core_projections():
            applied = await ProjectionRunner(container.projection_store, projection).catch_up()
            assert applied == 6
        listed = await http.get(f"{CONVERSATIONS}/{sent['conversationId']}/messages", headers=auth)
        read = await http.post(f"{CRM_MESSAGES}/{sent['messageId']}/read", headers=auth)

    assert listed.status_code == 200, listed.text
    [message] = listed.json()["messages"]
    assert (message["id"], message["status"]) == (sent["messageId"], "sent")
    assert (message["content"], message["attachments"]) == (None, [])
    assert read.status_code == 200, read.text
    assert read.json()["status"] == "read"


async def test_attempts_count_tries_at_the_platform_and_a_later_success_clears_the_failure(
    http: httpx.AsyncClient,
    auth: Headers,
    container: Container,
    catch_up: CatchUp,
    ctx: CommandContext,
) -> None:
    sender = CommandContext(tenant=ctx.tenant, actor="sender", correlation_id="c-tries")
    message_id = (await send(http, auth, recipientId=await new_fan(http, auth)))["messageId"]
    for reason in ("503", "timeout", "503"):
        await messages.record_attempt_failed(message_id, reason, sender, store=container.events)
    await messages.record_failed(
        message_id, "gave up: 503", sender, store=container.events, attempted=True
    )
    await catch_up()
    failed = (await http.get(f"{CRM_MESSAGES}/{message_id}", headers=auth)).json()["message"]
    assert (failed["status"], failed["attempts"]) == ("failed", 4)
    assert failed["failedAt"] is not None
    assert [(a["outcome"], a["reason"]) for a in failed["attemptHistory"]] == [
        ("retrying", "503"),
        ("retrying", "timeout"),
        ("retrying", "503"),
        ("failed", "gave up: 503"),
    ]
    # The status as it is now (the endpoint's is cached for a few seconds).
    status = QueueStatusReader(container.queue, container.pool, None, ttl_seconds=0)
    assert (await status.tenant_status(ctx.tenant)).failed == 1

    retried = await http.post(f"/api/onlyfans/messages/{message_id}/retry", headers=auth)
    assert retried.status_code == 202, retried.text
    await messages.record_sent(message_id, "of-77", sender, store=container.events)
    await catch_up()

    sent = (await http.get(f"{CRM_MESSAGES}/{message_id}", headers=auth)).json()["message"]
    assert (sent["status"], sent["attempts"], sent["failedAt"]) == ("sent", 5, None)
    assert sent["sentAt"] is not None
    last = sent["attemptHistory"][-1]
    assert (last["outcome"], last["reason"]) == ("sent", None)
    assert datetime.fromisoformat(last["at"]) == datetime.fromisoformat(sent["sentAt"])
    assert (await status.tenant_status(ctx.tenant)).failed == 0


async def test_the_operators_dlq_count_leaves_out_dead_letters_delivered_since(
    http: httpx.AsyncClient,
    auth: Headers,
    container: Container,
    catch_up: CatchUp,
    ctx: CommandContext,
) -> None:
    message_id = (await send(http, auth, recipientId=await new_fan(http, auth)))["messageId"]
    await messages.record_failed(message_id, "dead-lettered", ctx, store=container.events)
    await catch_up()
    reader = QueueStatusReader(container.queue, container.pool, None, ttl_seconds=0)
    before = await reader.status()
    assert before.failed is not None
    assert before.dlq_count == before.failed >= 1

    # Retried by a person and delivered: no longer failed, whatever a dead-letter queue holds.
    await http.post(f"/api/onlyfans/messages/{message_id}/retry", headers=auth)
    await messages.record_sent(message_id, "of-78", ctx, store=container.events)
    await catch_up()

    after = await reader.status()
    assert after.dlq_count == before.dlq_count - 1
    admin, _ = await create_api_key(container.pool, user_id="ops", role="admin")
    body = (await http.get(STATUS, headers={"Authorization": f"Bearer {admin}"})).json()
    assert body["scope"] == "global"
    assert isinstance(body["dlqCount"], int)


async def test_a_purchased_message_shows_when_and_how_much_it_earned(
    http: httpx.AsyncClient,
    auth: Headers,
    container: Container,
    catch_up: CatchUp,
    ctx: CommandContext,
) -> None:
    from application.webhooks import WebhookEvent, handle_webhook

    fan = await new_fan(http, auth)
    message_id = (await send(http, auth, recipientId=fan, priceCents=1_500))["messageId"]
    await messages.record_sent(message_id, "of-79", ctx, store=container.events)
    await catch_up()
    unsold = (await http.get(f"{CRM_MESSAGES}/{message_id}", headers=auth)).json()["message"]
    assert (unsold["revenueCents"], unsold["purchasedAt"]) == (0, None)

    bought = WebhookEvent(
        id=f"wh-{uuid.uuid4()}",
        type="message.purchased",
        account=ctx.tenant,
        data={"messageId": message_id, "amountCents": 1_500},
    )
    await handle_webhook(bought, ctx, store=container.events, ids=container.ids)
    await catch_up()

    message = (await http.get(f"{CRM_MESSAGES}/{message_id}", headers=auth)).json()["message"]
    assert message["status"] == "sent"  # the reference's statuses: a purchase is not one
    assert message["revenueCents"] == 1_500
    assert message["purchasedAt"] is not None
    assert datetime.fromisoformat(message["purchasedAt"]) >= datetime.fromisoformat(
        message["sentAt"]
    )
