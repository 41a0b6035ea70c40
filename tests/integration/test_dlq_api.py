"""GET /api/onlyfans/dlq and POST /api/onlyfans/dlq/redrive, on both queue adapters: a message
the platform kept refusing lands in the dead-letter queue, is listed there with why and when,
and a redrive puts it back on its way through the domain's retry: delivered exactly once, and
a second redrive of it changes nothing."""

from __future__ import annotations

import asyncio
import io
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest

from adapters import cli, cli_dlq
from adapters.onlyfans.client import OnlyFansClient
from adapters.postgres.api_keys import create_api_key
from adapters.redis import DisabledRateLimiter
from application import dead_letters, messages
from application.queue import QUEUES
from tests.support.sending import Stack, aws_env, catch_up, open_stack
from worker.relay import Relay
from worker.sender import Sender, record_from_receive, settle

DLQ = "/api/onlyfans/dlq"
REDRIVE = "/api/onlyfans/dlq/redrive"

pytestmark = pytest.mark.timeout(90)


class Platform:
    """The OnlyFans provider as an httpx transport: 503 while ``down``, else 200; keeps the
    Idempotency-Key of every message it accepted."""

    def __init__(self) -> None:
        self.down = True
        self.delivered: list[str] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        if self.down:
            return httpx.Response(503, json={"error": {"message": "maintenance"}})
        self.delivered.append(request.headers["Idempotency-Key"])
        return httpx.Response(200, json={"id": f"of-{uuid.uuid4().hex[:8]}"})


@asynccontextmanager
async def dlq_stack(
    backend: str, request: pytest.FixtureRequest, database_url: str
) -> AsyncIterator[Stack]:
    """A stack whose queues dead-letter after one receive."""
    settings: dict[str, object] = {"rate_limiter_enabled": False, "max_receive_count": 1}
    if backend == "sqs":
        monkeypatch = request.getfixturevalue("monkeypatch")
        for name, value in aws_env().items():
            monkeypatch.setenv(name, value)
        settings |= {
            "queue_backend": "sqs",
            "sqs_endpoint_url": request.getfixturevalue("sqs_endpoint_url"),
            "sqs_queue_prefix": f"dlq{uuid.uuid4().hex[:12]}",
        }
    async with open_stack(database_url, **settings) as stack:
        yield stack


async def deliver(stack: Stack, platform: Platform) -> None:
    """Relay the outbox, then one receive of each queue through the sender. A try that fails
    comes back visible at once (no backoff), to be dead-lettered by the next receive."""
    container = stack.container
    await Relay(container.outbox, container.queue, container.events).run_once()
    gateway = OnlyFansClient(
        "https://onlyfans.test", "key", transport=httpx.MockTransport(platform)
    )
    sender = Sender(
        container.events,
        container.personal,
        container.pool,
        gateway,
        DisabledRateLimiter(),
        max_receive_count=1,
        retry_delays=(0.0,),
    )
    try:
        for name in QUEUES:
            records = [record_from_receive(name, m) for m in await container.queue.receive(name)]
            if records:
                await settle(container.queue, records, await sender.handle(records))
    finally:
        await gateway.aclose()


async def until_dead_lettered(stack: Stack, count: int) -> None:
    """Receive until ``count`` messages moved to the dead-letter queues (deadline 20 s)."""
    queue = stack.container.queue
    deadline = time.monotonic() + 20
    while sum([(await queue.stats(n)).dead_letters for n in QUEUES]) < count:
        assert time.monotonic() < deadline, "the messages never reached the dead-letter queue"
        for name in QUEUES:
            assert await queue.receive(name, wait_seconds=0.2) == []


async def failed_messages(stack: Stack, platform: Platform, count: int) -> list[str]:
    fan_id = await stack.new_fan("Ann")
    sent = [await stack.send(recipientId=fan_id, content=f"Hi {n}") for n in range(count)]
    await deliver(stack, platform)
    await until_dead_lettered(stack, count)
    await catch_up(stack.container)
    return [s["messageId"] for s in sent]


async def post(stack: Stack, path: str, **kwargs: Any) -> dict[str, Any]:
    response = await stack.http.post(path, headers=stack.auth, **kwargs)
    assert response.status_code == 200, response.text
    return dict(response.json())


async def listed(stack: Stack, auth: dict[str, str] | None = None) -> dict[str, Any]:
    response = await stack.http.get(DLQ, headers=auth or stack.auth)
    assert response.status_code == 200, response.text
    return dict(response.json())


@pytest.mark.parametrize("backend", ["postgres", "sqs"])
async def test_a_dead_letter_is_listed_then_redriven_and_delivered_exactly_once(
    backend: str, request: pytest.FixtureRequest, fresh_database_url: str
) -> None:
    platform = Platform()
    async with asyncio.timeout(80), dlq_stack(backend, request, fresh_database_url) as stack:
        first, second = await failed_messages(stack, platform, 2)

        entries = (await listed(stack))["entries"]
        assert sorted(e["messageId"] for e in entries) == sorted([first, second])
        for entry in entries:
            assert entry["queue"] == "normal"
            assert entry["reason"].startswith("gave up")
            assert entry["attempts"] == 1
            assert entry["firstFailureAt"] == entry["lastFailureAt"] is not None
            assert entry["status"] == "failed"
            assert "tenant" not in entry

        redriven = await post(stack, REDRIVE, json={"messageIds": [first]})
        assert (redriven["requeued"], redriven["cleared"]) == (1, 0)
        assert [e["messageId"] for e in (await listed(stack))["entries"]] == [second]
        platform.down = False
        await deliver(stack, platform)
        assert platform.delivered == [first]

        # The same id again: no longer a dead letter, nothing recorded, nothing sent.
        events = await stack.count_events("MessageRequeued")
        again = await post(stack, REDRIVE, json={"messageIds": [first]})
        assert again == {"redriven": [], "requeued": 0, "cleared": 0}
        assert await stack.count_events("MessageRequeued") == events

        everything = await post(stack, REDRIVE)  # no body: all of the account's
        assert [r["messageId"] for r in everything["redriven"]] == [second]
        await deliver(stack, platform)
        await deliver(stack, platform)
        assert sorted(platform.delivered) == sorted([first, second])
        assert (await listed(stack))["entries"] == []
        assert await stack.event_types(first) == [
            "MessageQueued",
            "MessageDispatched",
            "MessageFailed",
            "MessageRequeued",
            "MessageDispatched",
            "MessageSent",
        ]


async def test_another_tenant_neither_sees_nor_redrives_them_and_an_operator_sees_all(
    fresh_database_url: str, request: pytest.FixtureRequest
) -> None:
    platform = Platform()
    async with dlq_stack("postgres", request, fresh_database_url) as stack:
        [message_id] = await failed_messages(stack, platform, 1)
        other_key, _ = await create_api_key(stack.container.pool, user_id="other", role="creator")
        other = {"Authorization": f"Bearer {other_key}"}
        admin_key, _ = await create_api_key(stack.container.pool, user_id="ops", role="admin")
        admin = {"Authorization": f"Bearer {admin_key}"}

        assert (await listed(stack, other))["entries"] == []
        theirs = await stack.http.post(REDRIVE, json={"messageIds": [message_id]}, headers=other)
        assert theirs.json()["redriven"] == []
        as_operator = await listed(stack, admin)
        forbidden = await stack.http.post(REDRIVE, headers=admin)

        assert as_operator["scope"] == "global"
        assert [(e["messageId"], e["tenant"]) for e in as_operator["entries"]] == [
            (message_id, stack.tenant)
        ]
        assert forbidden.status_code == 403
        assert [e["messageId"] for e in (await listed(stack))["entries"]] == [message_id]


async def test_two_redrives_at_once_requeue_the_message_once(
    fresh_database_url: str, request: pytest.FixtureRequest
) -> None:
    platform = Platform()
    async with dlq_stack("postgres", request, fresh_database_url) as stack:
        [message_id] = await failed_messages(stack, platform, 1)

        results = await asyncio.gather(
            *(
                dead_letters.redrive(
                    stack.container.queue,
                    stack.container.events,
                    actor="test",
                    correlation_id=f"redrive-{n}",
                    tenant=stack.tenant,
                )
                for n in range(2)
            )
        )

        outcomes = sorted(r.result for batch in results for r in batch)
        assert outcomes.count("requeued") == 1
        assert await stack.count_events("MessageRequeued") == 1
        platform.down = False
        await deliver(stack, platform)
        await deliver(stack, platform)
        assert platform.delivered == [message_id]


async def test_a_dead_letter_of_a_message_retried_since_is_cleared_not_sent_again(
    fresh_database_url: str, request: pytest.FixtureRequest
) -> None:
    """A redrive that stopped between its retry and its delete leaves the dead letter: the
    next one finds the message past that attempt, and only removes it."""
    platform = Platform()
    async with dlq_stack("postgres", request, fresh_database_url) as stack:
        [message_id] = await failed_messages(stack, platform, 1)
        await messages.retry_message(
            messages.MessageCommand(message_id=message_id), stack.ctx, store=stack.container.events
        )

        redriven = await post(stack, REDRIVE, json={"messageIds": [message_id]})

        assert redriven["redriven"] == [{"messageId": message_id, "result": "cleared"}]
        assert await stack.count_events("MessageRequeued") == 1
        assert (await listed(stack))["entries"] == []
        platform.down = False
        await deliver(stack, platform)
        assert platform.delivered == [message_id]


async def test_a_redrive_naming_something_that_is_not_a_message_id_is_refused(
    fresh_database_url: str, request: pytest.FixtureRequest
) -> None:
    async with dlq_stack("postgres", request, fresh_database_url) as stack:
        response = await stack.http.post(REDRIVE, json={"messageIds": ["nope"]}, headers=stack.auth)
        unknown_field = await stack.http.post(REDRIVE, json={"ids": []}, headers=stack.auth)
    assert response.status_code in (400, 422), response.text
    assert unknown_field.status_code == 400, unknown_field.text


async def test_crm_dlq_list_and_redrive_do_the_same_from_the_shell(
    fresh_database_url: str, request: pytest.FixtureRequest
) -> None:
    platform = Platform()
    async with dlq_stack("postgres", request, fresh_database_url) as stack:
        first, second = await failed_messages(stack, platform, 2)
        container = stack.container

        table = io.StringIO()
        assert await cli_dlq.list_command(container, out=table) == 2
        assert await cli_dlq.list_command(container, tenant="nobody", out=io.StringIO()) == 0
        one = io.StringIO()
        assert (
            await cli_dlq.redrive_command(container, actor="cli:test", message_ids=[first], out=one)
            == 1
        )
        again = io.StringIO()
        assert (
            await cli_dlq.redrive_command(
                container, actor="cli:test", message_ids=[first], out=again
            )
            == 0
        )
        rest = io.StringIO()
        assert (
            await cli_dlq.redrive_command(
                container, actor="cli:test", tenant=stack.tenant, out=rest
            )
            == 1
        )
        platform.down = False
        await deliver(stack, platform)
        await deliver(stack, platform)
        left = io.StringIO()
        assert await cli_dlq.list_command(container, out=left) == 0

    lines = table.getvalue().splitlines()
    assert {line.split()[0] for line in lines[1:3]} == {first, second}
    assert all(stack.tenant in line and "gave up" in line for line in lines[1:3])
    assert lines[-1] == "2 dead-lettered"
    assert f"{first} {stack.tenant} requeued" in one.getvalue()
    assert again.getvalue().splitlines() == ["0 requeued, 0 cleared"]
    assert f"{second} {stack.tenant} requeued" in rest.getvalue()
    assert sorted(platform.delivered) == sorted([first, second])
    assert left.getvalue().splitlines()[-1] == "0 dead-lettered"


def test_crm_dlq_parses_its_arguments() -> None:
    listing = cli._parser().parse_args(["dlq", "list", "--tenant", "user-1"])
    redrive = cli._parser().parse_args(["dlq", "redrive", "a", "b"])
    everything = cli._parser().parse_args(["dlq", "redrive"])

    assert (listing.action, listing.tenant) == ("list", "user-1")
    assert (redrive.message_ids, redrive.tenant) == (["a", "b"], None)
    assert everything.message_ids == []
