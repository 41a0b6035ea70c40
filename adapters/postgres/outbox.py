"""The outbox table, for relays: claim due rows without blocking other relays, then settle
each one (sent: deleted; failed: retried later with backoff, or given up).

Every ``vacuum_every`` rows deleted, the relay VACUUMs the table after its claim commits: a
claim reads the head of the ``outbox_due`` index, where every relayed row leaves its dead entry,
and autovacuum comes at most once per ``autovacuum_naptime`` (a minute by default), too seldom
for a table that drains thousands of rows a second (as for the queue table, see
adapters/postgres/queue.py).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import asyncpg
import msgspec
import structlog

log = structlog.get_logger(__name__)

# About 4,000 dead index entries at most ahead of the due rows; a VACUUM of the outbox takes a
# few milliseconds of a relay that settles 2,000 rows in a few hundred.
VACUUM_EVERY = 2_000


class OutboxRow(msgspec.Struct, frozen=True, kw_only=True):
    id: int
    queue: str
    message_id: str
    body: str
    attributes: dict[str, str]
    attempts: int
    stream_version: int | None


class ClaimedRows:
    """Rows locked by one relay's transaction: no other relay sees them until it ends."""

    def __init__(self, conn: asyncpg.Connection, rows: list[OutboxRow]) -> None:
        self.conn = conn
        self.rows = rows
        self.deleted = 0

    async def delete(self, ids: list[int]) -> None:
        if ids:
            await self.conn.execute("DELETE FROM outbox WHERE id = ANY($1::bigint[])", ids)
            self.deleted += len(ids)

    async def retry_later(self, row: OutboxRow, delay_seconds: float, error: str) -> None:
        # clock_timestamp(), not now(): now() is when the claim began, before the send, and a
        # send that hung longer than the delay would leave the row due at once.
        await self.conn.execute(
            "UPDATE outbox SET attempts = attempts + 1, last_error = $2,"
            " next_attempt_at = clock_timestamp() + make_interval(secs => $3) WHERE id = $1",
            row.id,
            error[:1000],
            delay_seconds,
        )


class PostgresOutbox:
    def __init__(self, pool: asyncpg.Pool, *, vacuum_every: int = VACUUM_EVERY) -> None:
        self._pool = pool
        self._vacuum_every = vacuum_every
        self._deleted_since_vacuum = 0

    @asynccontextmanager
    async def claim(self, limit: int) -> AsyncIterator[ClaimedRows]:
        """Lock up to ``limit`` due rows for the length of the block (FOR UPDATE SKIP LOCKED:
        relays running at once take disjoint rows). Changes commit when the block ends."""
        async with self._pool.acquire() as conn:
            async with conn.transaction():
                claimed = await self._claim(conn, limit)
                yield claimed
            self._deleted_since_vacuum += claimed.deleted
            if self._vacuum_every and self._deleted_since_vacuum >= self._vacuum_every:
                self._deleted_since_vacuum = 0
                await _vacuum(conn)

    @staticmethod
    async def _claim(conn: asyncpg.Connection, limit: int) -> ClaimedRows:
        records = await conn.fetch(
            """
                SELECT id, queue, message_id, body, attributes, attempts, stream_version
                FROM outbox
                WHERE next_attempt_at <= now()
                -- Replies first: a campaign's thousands of rows never hold one back.
                ORDER BY queue <> 'high', next_attempt_at, id
                LIMIT $1
                FOR UPDATE SKIP LOCKED
                """,
            limit,
        )
        return ClaimedRows(conn, [OutboxRow(**dict(record)) for record in records])

    async def seconds_until_due(self) -> float | None:
        """How long until the next row is due; None if the outbox is empty."""
        wait = await self._pool.fetchval(
            "SELECT extract(epoch FROM min(next_attempt_at) - now()) FROM outbox"
        )
        return None if wait is None else max(0.0, float(wait))

    async def pending(self) -> int:
        return int(await self._pool.fetchval("SELECT count(*) FROM outbox"))


async def _vacuum(conn: asyncpg.Connection) -> None:
    # After the claim's commit, outside any transaction (VACUUM refuses to run inside one).
    # INDEX_CLEANUP ON, SKIP_LOCKED: as for the queue table (adapters/postgres/queue.py). Its
    # failure loses nothing: the rows are settled, and the next one tries again.
    try:
        await conn.execute("VACUUM (INDEX_CLEANUP ON, SKIP_LOCKED) outbox")
    except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as error:
        log.warning("outbox vacuum failed", error=f"{type(error).__name__}: {error}")
