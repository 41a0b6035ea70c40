"""The log as auditors read it: filtered pages of it (adapters/postgres/audit_log.py), and its
rows as the event chain seals and verifies them (adapters/postgres/event_chain_store.py).

Both read as every reader of the global log reads (store.py says why): in (transaction_id,
position) order and, where the log is still being written, only below ``pg_snapshot_xmin``.
"""

from __future__ import annotations

from typing import Any

import asyncpg

from adapters.postgres.cursors import decode_cursor
from adapters.postgres.event_store import recorder
from adapters.postgres.event_store.questions import Db
from application.audit import AuditEventsQuery
from domain.errors import InvalidValue

# -- audit pages -------------------------------------------------------------------------------

# Data and metadata as the pool decodes them: a page is decoded by ``to_recorded``.
_AUDIT_COLUMNS = (
    "position, transaction_id, event_id, stream_id, stream_type, version, event_type,"
    " data, metadata, recorded_at"
)

# filter field -> SQL condition on its (single) parameter, written as {}.
_CONDITIONS = {
    "stream_id": "stream_id = {}",
    "stream_type": "stream_type = {}",
    "event_type": "event_type = {}",
    "actor": "metadata ->> 'actor' = {}",
    "since": "recorded_at >= {}",
    "until": "recorded_at < {}",
}


async def audit_page(db: Db, query: AuditEventsQuery) -> list[asyncpg.Record]:
    """The rows of the page ``query`` asks for, and the first row of the next page if there
    is one (``query.limit + 1`` rows at most). InvalidValue if its cursor is not one of ours."""
    sql, args = _audit_select(query)
    rows: list[asyncpg.Record] = await db.fetch(sql, *args)
    return rows


def _audit_select(query: AuditEventsQuery) -> tuple[str, list[Any]]:
    """The statement for a page: only the conditions a query uses, so each shape gets a
    plan that can use its index (tenant + commit order, stream type, stream)."""
    conditions = ["transaction_id < pg_snapshot_xmin(pg_current_snapshot())"]
    args: list[Any] = []

    def bind(value: Any, cast: str = "") -> str:
        args.append(value)
        return f"${len(args)}{cast}"

    if query.cursor is not None:
        transaction_id, position = decode_cursor(query.cursor, tuple[int, int])
        if not (0 <= transaction_id < 2**63 and 0 <= position < 2**63):
            raise InvalidValue("cursor", "is not a cursor this API returned")
        conditions.append(
            f"(transaction_id, position) > ({bind(transaction_id, '::xid8')}, {bind(position)})"
        )
    tenants = query.scope.tenants
    if tenants is not None and len(tenants) == 1:
        # '=' rather than ANY: the index (tenant, transaction_id, position) then yields rows
        # already in commit order, and a page reads only its own rows.
        conditions.append(f"metadata ->> 'tenant' = {bind(next(iter(tenants)))}")
    elif tenants is not None:
        conditions.append(f"metadata ->> 'tenant' = ANY({bind(sorted(tenants))})")
    for name, condition in _CONDITIONS.items():
        value = getattr(query.filter, name)
        if value is not None:
            conditions.append(condition.format(bind(value)))
    limit = bind(query.limit + 1)
    where = " AND ".join(conditions)
    return (
        f"SELECT {_AUDIT_COLUMNS} FROM events WHERE {where}"
        f" ORDER BY transaction_id, position LIMIT {limit}",
        args,
    )


# -- the event chain ---------------------------------------------------------------------------


async def rows_to_seal(
    conn: asyncpg.Connection, transaction_id: int, position: int, limit: int
) -> list[asyncpg.Record]:
    """The next ``limit`` committed rows after (``transaction_id``, ``position``), in the
    order the chain seals them."""
    # The log as every reader reads it: the chain reads the rows by name, data and metadata
    # as the stored text it hashes.
    return await recorder.read_all(conn, transaction_id, position, limit)


async def rows_sealed_up_to(
    conn: asyncpg.Connection, transaction_id: int, position: int
) -> asyncpg.cursor.Cursor:
    """A server-side cursor (so: inside a transaction) over every row up to and including
    (``transaction_id``, ``position``), in the order the chain sealed them."""
    return await conn.cursor(
        f"SELECT {recorder.COLUMNS} FROM events"
        " WHERE (transaction_id, position) <= ($1::xid8, $2)"
        " ORDER BY transaction_id, position",
        transaction_id,
        position,
    )


async def position_in_log(conn: asyncpg.Connection, position: int) -> bool:
    """Whether an event at ``position`` is in the log."""
    return bool(await conn.fetchval("SELECT 1 FROM events WHERE position = $1", position))
