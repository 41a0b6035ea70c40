"""The event chain on Postgres: sealing the log batch by batch, its head, and verification.

The sealer reads the log exactly as projectors do — in (transaction_id, position) order and
only below ``pg_snapshot_xmin`` — so it can never seal past an event that commits late, and
the chain's order is the order every reader sees. Each batch is one read, hashing in memory,
and one INSERT; the chain's last row is the checkpoint, so they commit together.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from datetime import datetime
from typing import Any, TypeVar

import asyncpg
import msgspec

from adapters.postgres.event_chain import (
    GENESIS,
    ChainWalk,
    Divergence,
    Link,
    Tampering,
    chain,
    classify,
    row_from_record,
)
from adapters.postgres.event_store.audit_queries import (
    position_in_log,
    rows_sealed_up_to,
    rows_to_seal,
)

# Any stable key: one sealer works at a time, a second one waits for the first's batch.
_SEALER_LOCK = "event-sealer"
_LAST_LINK = (
    "SELECT seq, transaction_id, position, event_id, hash FROM event_chain"
    " ORDER BY seq DESC LIMIT 1"
)
_SEAL = """
INSERT INTO event_chain (seq, transaction_id, position, event_id, hash)
SELECT * FROM unnest($1::bigint[], $2::xid8[], $3::bigint[], $4::uuid[], $5::bytea[])
"""


class ChainHead(msgspec.Struct, frozen=True, kw_only=True):
    """The newest sealed link: what to publish so that a rewritten chain shows."""

    sealed: int
    transaction_id: int
    position: int
    hash: bytes
    sealed_at: datetime | None


class VerifyReport(msgspec.Struct, frozen=True, kw_only=True):
    checked: int
    head: ChainHead
    tampering: Tampering | None


class PostgresEventChain:
    def __init__(self, pool: asyncpg.Pool, *, batch_size: int = 2000) -> None:
        self._pool = pool
        self.batch_size = batch_size

    async def seal_batch(self) -> int:
        """Seal the next batch of committed events; returns how many it sealed."""
        async with self._pool.acquire() as conn, conn.transaction():
            await conn.execute(
                "SELECT pg_advisory_xact_lock(hashtextextended($1, 0))", _SEALER_LOCK
            )
            last = await conn.fetchrow(_LAST_LINK)
            seq, tx, pos, previous = (
                (last["seq"], last["transaction_id"], last["position"], last["hash"])
                if last
                else (0, 0, 0, GENESIS)
            )
            rows = [row_from_record(r) for r in await rows_to_seal(conn, tx, pos, self.batch_size)]
            if not rows:
                return 0
            await conn.execute(
                _SEAL,
                list(range(seq + 1, seq + 1 + len(rows))),
                [row.transaction_id for row in rows],
                [row.position for row in rows],
                [row.event_id for row in rows],
                chain(previous, rows),
            )
        return len(rows)

    async def catch_up(self) -> int:
        total = 0
        while sealed := await self.seal_batch():
            total += sealed
        return total

    async def head(self) -> ChainHead:
        row = await self._pool.fetchrow(
            "SELECT seq, transaction_id, position, hash, sealed_at FROM event_chain"
            " ORDER BY seq DESC LIMIT 1"
        )
        return _head(row)

    async def link_at(self, position: int) -> Link | None:
        row = await self._pool.fetchrow(
            "SELECT seq, transaction_id, position, event_id, hash FROM event_chain"
            " WHERE position = $1",
            position,
        )
        return _link(row) if row else None

    async def verify(self) -> VerifyReport:
        """Recompute the chain over the sealed part of the log and report the first event
        changed, removed, inserted or moved. Reads one snapshot of both tables."""
        async with (
            self._pool.acquire() as conn,
            conn.transaction(isolation="repeatable_read", readonly=True),
        ):
            head = _head(
                await conn.fetchrow(
                    "SELECT seq, transaction_id, position, hash, sealed_at FROM event_chain"
                    " ORDER BY seq DESC LIMIT 1"
                )
            )
            links = _batches(
                await conn.cursor(
                    "SELECT seq, transaction_id, position, event_id, hash FROM event_chain"
                    " ORDER BY seq"
                ),
                _link,
                self.batch_size,
            )
            rows = _batches(
                await rows_sealed_up_to(conn, head.transaction_id, head.position),
                row_from_record,
                self.batch_size,
            )
            walk = ChainWalk()
            while True:
                link, row = await anext(links, None), await anext(rows, None)
                if link is None and row is None:
                    return VerifyReport(checked=walk.checked, head=head, tampering=None)
                divergence = walk.step(link, row)
                if divergence is not None:
                    tampering = await _classify(conn, divergence)
                    return VerifyReport(checked=walk.checked, head=head, tampering=tampering)


async def _classify(conn: asyncpg.Connection, divergence: Divergence) -> Tampering:
    link, row = divergence.link, divergence.row
    in_log = link is not None and await position_in_log(conn, link.position)
    row_sealed = row is not None and bool(
        await conn.fetchval("SELECT 1 FROM event_chain WHERE position = $1", row.position)
    )
    sealed_elsewhere = row is not None and bool(
        await conn.fetchval(
            "SELECT 1 FROM event_chain WHERE event_id = $1 AND position <> $2",
            row.event_id,
            row.position,
        )
    )
    return classify(
        divergence,
        sealed_position_in_log=in_log,
        row_position_sealed=row_sealed,
        row_event_sealed_elsewhere=sealed_elsewhere,
    )


T = TypeVar("T")


async def _batches(
    cursor: asyncpg.cursor.Cursor, convert: Callable[[Any], T], size: int
) -> AsyncIterator[T]:
    """One item at a time from a server-side cursor, fetched ``size`` rows per round trip."""
    while records := await cursor.fetch(size):
        for record in records:
            yield convert(record)


def _link(row: asyncpg.Record) -> Link:
    return Link(
        seq=row["seq"],
        transaction_id=row["transaction_id"],
        position=row["position"],
        event_id=row["event_id"],
        hash=bytes(row["hash"]),
    )


def _head(row: asyncpg.Record | None) -> ChainHead:
    if row is None:
        return ChainHead(sealed=0, transaction_id=0, position=0, hash=GENESIS, sealed_at=None)
    return ChainHead(
        sealed=row["seq"],
        transaction_id=row["transaction_id"],
        position=row["position"],
        hash=bytes(row["hash"]),
        sealed_at=row["sealed_at"],
    )
