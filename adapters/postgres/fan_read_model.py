"""Hand-written SQL over the fans read table; keyset pagination, never OFFSET."""

from __future__ import annotations

from typing import Any

import asyncpg

from adapters.postgres.cursors import decode_cursor, encode_cursor
from application.fan_queries import FanPage, FanView, ListFans
from domain.errors import InvalidValue
from domain.fan import normalise_tags

_SELECT = """
SELECT fan_id, tenant_id AS tenant, platform, platform_id, name, handle, email, value_cents,
       tags, notes, subscribed_at, created_at, updated_at, version
FROM fans
"""

# Ids, cents and cursor values are bigint columns: anything outside this range names no row,
# and asyncpg refuses to send it at all.
_BIGINT = range(-(2**63), 2**63)

# sort -> (key column, descending)
_SORTS = {
    "-createdAt": ("fan_id", True),
    "createdAt": ("fan_id", False),
    "-valueCents": ("value_cents", True),
    "valueCents": ("value_cents", False),
}


class PostgresFanReadModel:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def get_fan(self, tenant: str, fan_id: int) -> FanView | None:
        if fan_id not in _BIGINT:
            return None
        row = await self._pool.fetchrow(
            _SELECT + "WHERE fan_id = $1 AND tenant_id = $2", fan_id, tenant
        )
        return _view(row) if row else None

    async def list_fans(self, query: ListFans) -> FanPage:
        column, descending = _SORTS[query.sort]
        where = ["tenant_id = $1"]
        args: list[Any] = [query.tenant]
        if query.tag:
            args.append(normalise_tags([query.tag])[0])
            where.append(f"tags @> ARRAY[${len(args)}::text]")
        if query.search:
            if "\x00" in query.search:
                # Postgres text cannot hold NUL, so no fan can match it.
                raise InvalidValue("q", "must not contain NUL characters")
            args.append("%" + _escape_like(query.search.strip().lower()) + "%")
            where.append(f"search_text LIKE ${len(args)}")
        if query.cursor:
            value, last_id = _decode_cursor(query.cursor)
            compare = "<" if descending else ">"
            # Sorted by id alone, the cursor's value is the id again: bind it once, since
            # Postgres cannot type a parameter the statement never uses.
            if column == "fan_id":
                args.append(last_id)
                where.append(f"fan_id {compare} ${len(args)}::bigint")
            else:
                args += [value, last_id]
                where.append(
                    f"({column}, fan_id) {compare} (${len(args) - 1}::bigint, ${len(args)}::bigint)"
                )
        order = "DESC" if descending else "ASC"
        order_by = f"{column} {order}, fan_id {order}" if column != "fan_id" else f"fan_id {order}"
        args.append(query.limit + 1)
        sql = f"{_SELECT} WHERE {' AND '.join(where)} ORDER BY {order_by} LIMIT ${len(args)}"
        rows = await self._pool.fetch(sql, *args)
        fans = [_view(row) for row in rows[: query.limit]]
        next_cursor = None
        if len(rows) > query.limit:
            last = fans[-1]
            next_cursor = encode_cursor(getattr(last, column), last.fan_id)
        return FanPage(fans, next_cursor)


def _view(row: asyncpg.Record) -> FanView:
    fields = dict(row)
    fields["tags"] = tuple(fields["tags"])
    return FanView(**fields)


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _decode_cursor(cursor: str) -> tuple[int, int]:
    value, fan_id = decode_cursor(cursor, tuple[int, int])
    return value, fan_id
