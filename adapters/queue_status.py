"""Queue status for the API and monitoring: depths from the queue, the last processed message
from the event store, cached in Redis for a few seconds (it is polled by dashboards)."""

from __future__ import annotations

import asyncio
import contextlib
import time
from datetime import datetime

import asyncpg
import msgspec
import redis.asyncio as redis

from adapters import metrics
from application.queue import QUEUES, MessageQueue, QueueStats

CACHE_KEY = "fancrm:queue-status"


class QueueStatus(msgspec.Struct, frozen=True, kw_only=True):
    queues: dict[str, QueueStats]
    last_processed_at: datetime | None

    @property
    def depth(self) -> int:
        return sum(stats.visible for stats in self.queues.values())

    @property
    def in_flight(self) -> int:
        return sum(stats.in_flight for stats in self.queues.values())

    @property
    def dead_letters(self) -> int:
        return sum(stats.dead_letters for stats in self.queues.values())


class QueueStatusReader:
    def __init__(
        self,
        queue: MessageQueue,
        pool: asyncpg.Pool,
        cache: redis.Redis | None,
        *,
        ttl_seconds: float = 3.0,
    ) -> None:
        self._queue = queue
        self._pool = pool
        self._cache = cache
        self._ttl_ms = int(ttl_seconds * 1000)
        self._local: tuple[float, QueueStatus] | None = None
        self._refreshing: asyncio.Task[QueueStatus] | None = None

    async def status(self) -> QueueStatus:
        """The status, at most ``ttl_seconds`` old. Counting a deep queue is a scan and every
        send asks for this (its estimate), so callers share one answer: in Redis across
        processes, in this process until it expires, and while it is refreshed they wait for
        that one refresh (with 100,000 queued, an expiry used to start a scan per request in
        flight at once)."""
        if self._local is not None and self._local[0] > time.monotonic():
            return self._local[1]
        if self._refreshing is None:
            self._refreshing = asyncio.create_task(self._refresh())
            self._refreshing.add_done_callback(self._refreshed)
        return await asyncio.shield(self._refreshing)

    def _refreshed(self, task: asyncio.Task[QueueStatus]) -> None:
        self._refreshing = None
        if not task.cancelled():
            task.exception()  # retrieved: its callers got it; the next call tries again

    async def _refresh(self) -> QueueStatus:
        if self._cache is not None:
            cached = await self._cache.get(CACHE_KEY)
            if cached:
                status = msgspec.json.decode(cached, type=QueueStatus)
                self._local = (time.monotonic() + self._ttl_ms / 1000, status)
                return status
        status = QueueStatus(
            queues={name: await self._queue.stats(name) for name in QUEUES},
            last_processed_at=await self._pool.fetchval(
                """
                SELECT recorded_at FROM events
                WHERE event_type IN ('MessageSent', 'MessageFailed')
                ORDER BY transaction_id DESC, position DESC LIMIT 1
                """
            ),
        )
        if self._cache is not None:
            await self._cache.set(CACHE_KEY, msgspec.json.encode(status), px=self._ttl_ms)
        for name, stats in status.queues.items():
            metrics.queue_depth(name, stats.visible, stats.dead_letters)
        self._local = (time.monotonic() + self._ttl_ms / 1000, status)
        return status

    async def close(self) -> None:
        """Wait for a refresh under way (its connection goes back to the pool first)."""
        if self._refreshing is not None:
            with contextlib.suppress(Exception):
                await self._refreshing
