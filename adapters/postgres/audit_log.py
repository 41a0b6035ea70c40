"""The global log for auditors: filtered, in commit order, keyset-paginated.

Like every reader of the global log it orders by (transaction_id, position) and stops below
``pg_snapshot_xmin`` (see event_store.py): a page boundary is then final — no event can commit
later behind a cursor already handed out — so paging through gives each event exactly once.
Events are decoded as the event store decodes them: personal fields decrypted, erased ones
reported as erased.
"""

from __future__ import annotations

from typing import Any

import asyncpg

from adapters.postgres.cursors import decode_cursor, encode_cursor
from adapters.postgres.event_store import to_recorded
from adapters.postgres.personal_data import PersonalDataCodec
from application.audit import AuditEventsQuery, AuditPage
from domain.errors import InvalidValue

_COLUMNS = (
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


class PostgresAuditLog:
    def __init__(self, pool: asyncpg.Pool, personal: PersonalDataCodec) -> None:
        self._pool = pool
        self._personal = personal

    async def events(self, query: AuditEventsQuery) -> AuditPage:
        sql, args = _select(query)
        rows = await self._pool.fetch(sql, *args)
        more = len(rows) > query.limit
        rows = rows[: query.limit]
        keys = await self._personal.keys_for(self._pool, rows)
        events = [to_recorded(row, keys) for row in rows]
        last = events[-1] if events else None
        return AuditPage(
            events=events,
            next_cursor=encode_cursor(last.transaction_id, last.position)
            if more and last
            else None,
        )


def _select(query: AuditEventsQuery) -> tuple[str, list[Any]]:
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
        f"SELECT {_COLUMNS} FROM events WHERE {where}"
        f" ORDER BY transaction_id, position LIMIT {limit}",
        args,
    )
