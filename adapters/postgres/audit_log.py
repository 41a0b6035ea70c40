"""The global log for auditors: filtered, in commit order, keyset-paginated.

Like every reader of the global log it orders by (transaction_id, position) and stops below
``pg_snapshot_xmin`` (adapters/postgres/event_store/store.py says why; its audit_queries.py
reads the page): a page boundary is then final — no event can commit
later behind a cursor already handed out — so paging through gives each event exactly once.
Events are decoded as the event store decodes them: personal fields decrypted, erased ones
reported as erased.
"""

from __future__ import annotations

import asyncpg

from adapters.postgres.cursors import encode_cursor
from adapters.postgres.event_store import to_recorded
from adapters.postgres.event_store.audit_queries import audit_page
from adapters.postgres.personal_data import PersonalDataCodec
from application.audit import AuditEventsQuery, AuditPage


class PostgresAuditLog:
    def __init__(self, pool: asyncpg.Pool, personal: PersonalDataCodec) -> None:
        self._pool = pool
        self._personal = personal

    async def events(self, query: AuditEventsQuery) -> AuditPage:
        rows = await audit_page(self._pool, query)
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
