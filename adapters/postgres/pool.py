"""The asyncpg pool: jsonb decoded with msgspec, nothing created at import time."""

from __future__ import annotations

import asyncpg
import msgspec

from adapters.postgres.fair_pool import create_fair_pool

_encode = msgspec.json.Encoder().encode
_decode = msgspec.json.Decoder().decode


async def _init_connection(conn: asyncpg.Connection) -> None:
    for type_name in ("jsonb", "json"):
        await conn.set_type_codec(
            type_name,
            schema="pg_catalog",
            encoder=lambda value: _encode(value).decode(),
            decoder=_decode,
            format="text",
        )


async def _keep_session(conn: asyncpg.Connection) -> None:
    """Replaces asyncpg's reset on release (advisory unlock, CLOSE ALL, UNLISTEN, RESET ALL):
    a second round trip on every checkout that this code never needs, since it keeps no
    session state on pooled connections (SET LOCAL, transaction-scoped advisory locks,
    LISTEN on dedicated connections). asyncpg still rolls back an open transaction."""


async def create_pool(dsn: str, *, min_size: int = 2, max_size: int = 10) -> asyncpg.Pool:
    # First come, first served (adapters/postgres/fair_pool.py): asyncpg's own order made
    # most of the API's latency tail under load.
    return await create_fair_pool(
        dsn, min_size=min_size, max_size=max_size, init=_init_connection, reset=_keep_session
    )


async def connect(dsn: str) -> asyncpg.Connection:
    conn = await asyncpg.connect(dsn)
    await _init_connection(conn)
    return conn
