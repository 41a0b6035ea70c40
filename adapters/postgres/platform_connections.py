"""Platform connections in ``platform_connections`` (migrations/049): every SQL statement on it.

The credentials are sealed with the master key itself (AES-256-GCM, as ``MasterKey.wrap``
wraps data keys), bound to the connection's id, and the id of the master key that sealed them
kept beside them: a deployment rotating its master key (CRM_PREVIOUS_MASTER_KEYS) still opens
connections sealed before. No per-subject data key: these are the account's own secrets, not
a fan's personal data, and erasing a fan must not touch them.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

import asyncpg
import msgspec

from adapters.crypto import MasterKey, MasterKeyError
from application.errors import NotFound
from application.platform_connections import Connection, Credentials, Platform

_COLUMNS = (
    "id, tenant_id, platform, campaign_id, api_url, created_at, last_sync_at, health,"
    " health_reason, checked_at, has_webhook_secret"
)
_REASON_CHARS = 300


def _subject(connection_id: str) -> str:
    return f"platform-connection:{connection_id}"


class PostgresConnections:
    def __init__(self, pool: asyncpg.Pool, masters: Sequence[MasterKey]) -> None:
        self._pool = pool
        self._master = masters[0]
        self._masters = {master.key_id: master for master in masters}

    async def add(
        self,
        *,
        tenant: str,
        platform: Platform,
        campaign_id: str | None,
        api_url: str | None,
        credentials: Credentials,
    ) -> Connection:
        connection_id = str(uuid.uuid4())
        sealed = self._master.wrap(_subject(connection_id), msgspec.json.encode(credentials))
        row = await self._pool.fetchrow(
            "INSERT INTO platform_connections (id, tenant_id, platform, campaign_id, api_url,"
            " key_id, sealed, has_webhook_secret)"
            f" VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING {_COLUMNS}",
            uuid.UUID(connection_id),
            tenant,
            platform,
            campaign_id,
            api_url,
            self._master.key_id,
            sealed,
            credentials.webhook_secret is not None,
        )
        return _connection(row)

    async def list(self, tenant: str) -> list[Connection]:
        rows = await self._pool.fetch(
            f"SELECT {_COLUMNS} FROM platform_connections WHERE tenant_id = $1"
            " ORDER BY created_at, id",
            tenant,
        )
        return [_connection(row) for row in rows]

    async def get(self, tenant: str, connection_id: str) -> Connection | None:
        parsed = _uuid(connection_id)
        if parsed is None:
            return None
        row = await self._pool.fetchrow(
            f"SELECT {_COLUMNS} FROM platform_connections WHERE id = $1 AND tenant_id = $2",
            parsed,
            tenant,
        )
        return None if row is None else _connection(row)

    async def by_id(self, connection_id: str) -> tuple[Connection, Credentials] | None:
        parsed = _uuid(connection_id)
        if parsed is None:
            return None
        row = await self._pool.fetchrow(
            f"SELECT {_COLUMNS}, key_id, sealed FROM platform_connections WHERE id = $1", parsed
        )
        if row is None:
            return None
        return _connection(row), self._open(row)

    async def credentials(self, connection: Connection) -> Credentials:
        row = await self._pool.fetchrow(
            "SELECT id, key_id, sealed FROM platform_connections WHERE id = $1 AND tenant_id = $2",
            uuid.UUID(connection.id),
            connection.tenant,
        )
        if row is None:
            raise NotFound(f"connection {connection.id}")  # removed meanwhile
        return self._open(row)

    async def remove(self, tenant: str, connection_id: str) -> bool:
        parsed = _uuid(connection_id)
        if parsed is None:
            return False
        status: str = await self._pool.execute(
            "DELETE FROM platform_connections WHERE id = $1 AND tenant_id = $2", parsed, tenant
        )
        return status.endswith(" 1")

    async def record_health(
        self, connection_id: str, *, ok: bool, reason: str | None, synced: bool = False
    ) -> None:
        await self._pool.execute(
            "UPDATE platform_connections SET health = $2, health_reason = $3,"
            " checked_at = now(), last_sync_at = CASE WHEN $4 THEN now() ELSE last_sync_at END"
            " WHERE id = $1",
            uuid.UUID(connection_id),
            "ok" if ok else "failing",
            None if reason is None else reason[:_REASON_CHARS],
            synced,
        )

    def _open(self, row: Any) -> Credentials:
        master = self._masters.get(row["key_id"])
        if master is None:
            raise MasterKeyError(f"connection {row['id']} is sealed with an unknown master key")
        plain = master.unwrap(_subject(str(row["id"])), bytes(row["sealed"]))
        return msgspec.json.decode(plain, type=Credentials)


def _uuid(text: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(text)
    except ValueError:
        return None


def _connection(row: Any) -> Connection:
    return Connection(
        id=str(row["id"]),
        tenant=row["tenant_id"],
        platform=row["platform"],
        campaign_id=row["campaign_id"],
        api_url=row["api_url"],
        created_at=row["created_at"],
        last_sync_at=row["last_sync_at"],
        health=row["health"],
        health_reason=row["health_reason"],
        checked_at=row["checked_at"],
        has_webhook_secret=row["has_webhook_secret"],
    )
