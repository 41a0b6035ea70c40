"""Queue status for the API and monitoring: depths from the queue, the last processed message
from the event store, cached in Redis for a few seconds (it is polled by dashboards).

Redis is a cache here, never a dependency: when it does not answer, the status is computed
from the queue and PostgreSQL and kept in this process for its time to live.

Two scopes. The global status (operators) counts the queues themselves. A creator's own status
comes from the messages read model, the one place that knows each message's account on either
queue backend (SQS counts a queue, not an account): its waiting messages (queued or on the
queue), its failed ones, and its last outcome, each an index range of that account only.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Generic, TypeVar

import asyncpg
import msgspec
import redis.asyncio as redis
import structlog

from adapters import metrics
from adapters.postgres.event_store import questions
from application.queue import QUEUES, MessageQueue, QueueStats

CACHE_KEY = "fancrm:queue-status"
TENANT_CACHE_KEY = "fancrm:queue-status:tenant:"
log = structlog.get_logger(__name__)
T = TypeVar("T")
# A cache that does not answer within this is treated as away: a silent Redis (a network cut)
# must not hold up the send whose estimate asked, nor the status.
CACHE_TIMEOUT = 0.5
_CACHE_AWAY = (redis.RedisError, OSError, TimeoutError)


class QueueStatus(msgspec.Struct, frozen=True, kw_only=True):
    queues: dict[str, QueueStats]
    last_processed_at: datetime | None
    # Messages still failed, every account's: the dead-letter queues keep a message a person
    # has since retried and got delivered (held there for inspection), so they overcount.
    # None in a status cached before this was counted.
    failed: int | None = None

    @property
    def dlq_count(self) -> int:
        """What the status calls ``dlqCount``: messages still failed."""
        return self.dead_letters if self.failed is None else self.failed

    @property
    def depth(self) -> int:
        return sum(stats.visible for stats in self.queues.values())

    @property
    def in_flight(self) -> int:
        return sum(stats.in_flight for stats in self.queues.values())

    @property
    def dead_letters(self) -> int:
        return sum(stats.dead_letters for stats in self.queues.values())


class TenantQueueStatus(msgspec.Struct, frozen=True, kw_only=True):
    """One account's messages: waiting for a send (accepted, or on the queue), failed (to be
    retried by a person), and when one of them last got an outcome."""

    waiting: int
    failed: int
    last_processed_at: datetime | None


_TENANT_COUNTS = """
SELECT count(*) FILTER (WHERE status IN ('queued', 'dispatched')) AS waiting,
       count(*) FILTER (WHERE status = 'failed') AS failed
FROM messages WHERE tenant_id = $1 AND status IN ('queued', 'dispatched', 'failed')
"""
_FAILED = "SELECT count(*) FROM messages WHERE status = 'failed'"
# migrations/022: one probe of messages_tenant_processed.
_TENANT_LAST_PROCESSED = """
SELECT greatest(sent_at, failed_at) FROM messages
WHERE tenant_id = $1 AND greatest(sent_at, failed_at) IS NOT NULL
ORDER BY greatest(sent_at, failed_at) DESC LIMIT 1
"""


class _Shared(Generic[T]):
    """One answer at most ``ttl`` old, shared by every caller: in Redis across processes, in
    this process until it expires, and while it is refreshed callers wait for that one refresh
    (with 100,000 queued, an expiry used to start a scan per request in flight at once)."""

    def __init__(
        self,
        cache: redis.Redis | None,
        key: str,
        kind: type[T],
        compute: Callable[[], Awaitable[T]],
        ttl_ms: int,
    ) -> None:
        self._cache = cache
        self._key = key
        self._kind = kind
        self._compute = compute
        self._ttl_ms = ttl_ms
        self._local: tuple[float, T] | None = None
        self._refreshing: asyncio.Task[T] | None = None

    def fresh(self) -> bool:
        return self._local is not None and self._local[0] > time.monotonic()

    async def get(self) -> T:
        if self._local is not None and self._local[0] > time.monotonic():
            return self._local[1]
        if self._refreshing is None:
            self._refreshing = asyncio.create_task(self._refresh())
            self._refreshing.add_done_callback(self._refreshed)
        return await asyncio.shield(self._refreshing)

    def _refreshed(self, task: asyncio.Task[T]) -> None:
        self._refreshing = None
        if not task.cancelled():
            task.exception()  # retrieved: its callers got it; the next call tries again

    async def _refresh(self) -> T:
        cached = await self._cached()
        if cached is not None:
            self._keep(cached)
            return cached
        value = await self._compute()
        if self._cache is not None:
            try:
                async with asyncio.timeout(CACHE_TIMEOUT):
                    await self._cache.set(self._key, msgspec.json.encode(value), px=self._ttl_ms)
            except _CACHE_AWAY as error:
                log.warning("queue status not cached", error=type(error).__name__)
        self._keep(value)
        return value

    async def _cached(self) -> T | None:
        if self._cache is None:
            return None
        try:
            async with asyncio.timeout(CACHE_TIMEOUT):
                raw = await self._cache.get(self._key)
        except _CACHE_AWAY as error:
            # Redis away: the status comes from PostgreSQL (and the queue) meanwhile.
            log.warning("queue status cache unavailable", error=type(error).__name__)
            return None
        return msgspec.json.decode(raw, type=self._kind) if raw else None

    def _keep(self, value: T) -> None:
        self._local = (time.monotonic() + self._ttl_ms / 1000, value)

    async def close(self) -> None:
        if self._refreshing is not None:
            with contextlib.suppress(Exception):
                await self._refreshing


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
        self._global = _Shared(cache, CACHE_KEY, QueueStatus, self._read_global, self._ttl_ms)
        self._tenants: dict[str, _Shared[TenantQueueStatus]] = {}

    async def status(self) -> QueueStatus:
        """Every queue, at most ``ttl_seconds`` old. Counting a deep queue is a scan and every
        send asks for this (its estimate), so callers share one answer."""
        return await self._global.get()

    async def tenant_status(self, tenant: str) -> TenantQueueStatus:
        """One account's messages, at most ``ttl_seconds`` old."""
        shared = self._tenants.get(tenant)
        if shared is None:
            if len(self._tenants) > 10_000:
                self._tenants = {t: s for t, s in self._tenants.items() if s.fresh()}
            shared = self._tenants[tenant] = _Shared(
                self._cache,
                TENANT_CACHE_KEY + tenant,
                TenantQueueStatus,
                lambda: self._read_tenant(tenant),
                self._ttl_ms,
            )
        return await shared.get()

    async def _read_global(self) -> QueueStatus:
        status = QueueStatus(
            queues={name: await self._queue.stats(name) for name in QUEUES},
            last_processed_at=await questions.last_processed_at(self._pool),
            # migrations/028: a scan of the index of failed messages only.
            failed=await self._pool.fetchval(_FAILED),
        )
        for name, stats in status.queues.items():
            metrics.queue_depth(name, stats.visible, stats.dead_letters)
        return status

    async def _read_tenant(self, tenant: str) -> TenantQueueStatus:
        async with self._pool.acquire() as conn:
            counts = await conn.fetchrow(_TENANT_COUNTS, tenant)
            last = await conn.fetchval(_TENANT_LAST_PROCESSED, tenant)
        assert counts is not None
        return TenantQueueStatus(
            waiting=counts["waiting"], failed=counts["failed"], last_processed_at=last
        )

    async def close(self) -> None:
        """Wait for refreshes under way (their connections go back to the pool first)."""
        await self._global.close()
        for shared in list(self._tenants.values()):
            await shared.close()
