"""Member sync checkpoints and platform webhook receipts (migrations/050): every SQL statement
on ``platform_sync_checkpoints`` and ``platform_webhook_receipts``.

Both are written inside an import batch's transaction (``PostgresImportBatch.connection``):
a page's cursor and a webhook's receipt commit with the fan events they stand for, or not.
"""

from __future__ import annotations

import uuid
from typing import Any

import asyncpg

from application.errors import AlreadyProcessed
from application.imports import ImportUnitOfWork
from application.patreon_sync import Checkpoint


def _connection_of(uow: ImportUnitOfWork) -> Any:
    connection = getattr(uow, "connection", None)
    if connection is None:
        raise TypeError("a checkpoint is written in a Postgres import batch's transaction")
    return connection


class PostgresSyncCheckpoints:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def load(self, connection_id: str) -> Checkpoint | None:
        row = await self._pool.fetchrow(
            "SELECT job_id, next_cursor, pages FROM platform_sync_checkpoints"
            " WHERE connection_id = $1",
            uuid.UUID(connection_id),
        )
        return None if row is None else Checkpoint(row["job_id"], row["next_cursor"], row["pages"])

    async def save(
        self,
        uow: ImportUnitOfWork,
        connection_id: str,
        tenant: str,
        checkpoint: Checkpoint,
        *,
        after_pages: int,
    ) -> bool:
        # A concurrent sync's write of the same row makes this one wait for its commit, and
        # then find the row taken (first page) or moved on (later ones): nothing returned.
        connection = _connection_of(uow)
        if after_pages == 0:
            saved = await connection.fetchval(
                "INSERT INTO platform_sync_checkpoints"
                " (connection_id, tenant_id, job_id, next_cursor, pages)"
                " VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING RETURNING true",
                uuid.UUID(connection_id),
                tenant,
                checkpoint.job_id,
                checkpoint.next_cursor,
                checkpoint.pages,
            )
        else:
            saved = await connection.fetchval(
                "UPDATE platform_sync_checkpoints SET next_cursor = $3, pages = $4,"
                " updated_at = now() WHERE connection_id = $1 AND job_id = $2 AND pages = $5"
                " RETURNING true",
                uuid.UUID(connection_id),
                checkpoint.job_id,
                checkpoint.next_cursor,
                checkpoint.pages,
                after_pages,
            )
        return bool(saved)

    async def clear(self, connection_id: str) -> None:
        await self._pool.execute(
            "DELETE FROM platform_sync_checkpoints WHERE connection_id = $1",
            uuid.UUID(connection_id),
        )


class PostgresWebhookReceipts:
    async def claim(self, uow: ImportUnitOfWork, tenant: str, key: str) -> None:
        """Record ``key`` in ``uow``'s transaction; AlreadyProcessed if it was, or if a
        concurrent delivery of the same webhook holds it (and then commits)."""
        claimed = await _connection_of(uow).fetchval(
            "INSERT INTO platform_webhook_receipts (tenant_id, key) VALUES ($1, $2)"
            " ON CONFLICT DO NOTHING RETURNING true",
            tenant,
            key,
        )
        if not claimed:
            raise AlreadyProcessed(key)
