"""Checkpoints, transactions and wake-ups for projectors, on Postgres."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from typing import Any

import asyncpg

from adapters.postgres.event_store import PostgresEventStore, questions
from application.ports import Checkpoint, RecordedEvent, Sql


class PostgresProjectionStore:
    def __init__(self, pool: asyncpg.Pool, events: PostgresEventStore, dsn: str) -> None:
        self._pool = pool
        self._dsn = dsn
        self._events = events
        self._listener: asyncpg.Connection | None = None
        self._woken = asyncio.Event()

    async def checkpoint(self, name: str) -> Checkpoint:
        return await _read_checkpoint(self._pool, name)

    async def claim(self, sql: Sql, name: str) -> Checkpoint:
        # Two runners of one projector (two worker replicas, `crm dev` beside a worker) would
        # each apply the same batch. A transaction-scoped advisory lock per projector makes
        # the second wait, then read the checkpoint the first one committed. Unlike a row
        # lock it gives the transaction no xid, so it never holds back readers of the log.
        await sql.execute("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))", name)
        return await _read_checkpoint(sql, name)

    @asynccontextmanager
    async def transaction(self, schema: str) -> AsyncIterator[Sql]:
        async with self._pool.acquire() as conn, conn.transaction():
            if schema != "public":
                # SET LOCAL ends with the transaction, so the pooled connection comes back clean.
                await conn.execute(f"SET LOCAL search_path TO {_ident(schema)}, public")
            yield conn

    async def save_checkpoint(self, sql: Sql, name: str, checkpoint: Checkpoint) -> None:
        await sql.execute(
            """
            INSERT INTO public.projection_checkpoints (name, transaction_id, position)
            VALUES ($1, $2, $3)
            ON CONFLICT (name) DO UPDATE
            SET transaction_id = EXCLUDED.transaction_id, position = EXCLUDED.position,
                updated_at = now(), last_error = NULL, last_error_at = NULL
            """,
            name,
            checkpoint.transaction_id,
            checkpoint.position,
        )

    async def record_error(self, name: str, error: str) -> None:
        await self._pool.execute(
            """
            INSERT INTO projection_checkpoints (name, last_error, last_error_at)
            VALUES ($1, $2, now())
            ON CONFLICT (name) DO UPDATE SET last_error = $2, last_error_at = now()
            """,
            name,
            error[:2000],
        )

    async def read_all(self, after: Checkpoint, limit: int) -> list[RecordedEvent]:
        return await self._events.read_all(after, limit)

    async def listen(self) -> None:
        await self._listen()

    async def wait_for_events(self, timeout: float) -> None:
        await self._listen()
        with suppress(TimeoutError):
            await asyncio.wait_for(self._woken.wait(), timeout)
        self._woken.clear()

    async def has_applied(self, name: str, position: int) -> bool:
        """Whether projector ``name`` has applied the event at ``position`` (read-your-writes)."""
        return bool(await self.applied(name, position))

    async def applied(self, name: str, position: int) -> bool | None:
        """Whether projector ``name`` has applied the event at ``position``; None when no
        committed event holds that position (beyond the head, or a rolled-back gap): waiting
        for it would only run out the clock."""
        return await questions.projector_applied(self._pool, name, position)

    async def close(self) -> None:
        if self._listener is not None:
            await self._listener.close()
            self._listener = None

    async def _listen(self) -> None:
        if self._listener is not None and not self._listener.is_closed():
            return
        # A dedicated connection: LISTEN must outlive any pooled checkout. If it drops, the
        # wait times out and the runner still polls; the next wait reconnects.
        try:
            self._listener = await asyncpg.connect(self._dsn)
            await self._listener.add_listener("events", lambda *_: self._woken.set())
        except (OSError, asyncpg.PostgresError):
            self._listener = None


async def _read_checkpoint(sql: Any, name: str) -> Checkpoint:
    row = await sql.fetchrow(
        "SELECT transaction_id, position FROM public.projection_checkpoints WHERE name = $1",
        name,
    )
    return Checkpoint(row["transaction_id"], row["position"]) if row else Checkpoint()


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'
