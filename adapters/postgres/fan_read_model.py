"""Hand-written SQL over the fans read table; keyset pagination, never OFFSET."""

from __future__ import annotations

import base64
import binascii
from typing import Any

import asyncpg
import msgspec

from application.fan_queries import FanPage, FanView, ListFans
from domain.errors import InvalidValue
from domain.fan import normalise_tags

_SELECT = """
SELECT fan_id, tenant_id AS tenant, platform, platform_id, name, handle, email, value_cents,
       tags, notes, created_at, updated_at, version
FROM fans
"""

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
            args.append("%" + _escape_like(query.search.strip().lower()) + "%")
            where.append(f"search_text LIKE ${len(args)}")
        if query.cursor:
            value, last_id = _decode_cursor(query.cursor)
            args += [value, last_id]
            compare = "<" if descending else ">"
            key = f"({column}, fan_id)" if column != "fan_id" else "fan_id"
            bound = (
                f"(${len(args) - 1}::bigint, ${len(args)}::bigint)"
                if column != "fan_id"
                else f"${len(args)}::bigint"
            )
            where.append(f"{key} {compare} {bound}")
        order = "DESC" if descending else "ASC"
        order_by = f"{column} {order}, fan_id {order}" if column != "fan_id" else f"fan_id {order}"
        args.append(query.limit + 1)
        sql = f"{_SELECT} WHERE {' AND '.join(where)} ORDER BY {order_by} LIMIT ${len(args)}"
        rows = await self._pool.fetch(sql, *args)
        fans = [_view(row) for row in rows[: query.limit]]
        next_cursor = None
        if len(rows) > query.limit:
            last = fans[-1]
            next_cursor = _encode_cursor(getattr(last, column), last.fan_id)
        return FanPage(fans, next_cursor)


def _view(row: asyncpg.Record) -> FanView:
    fields = dict(row)
    fields["tags"] = tuple(fields["tags"])
    return FanView(**fields)


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _encode_cursor(value: int, fan_id: int) -> str:
    return base64.urlsafe_b64encode(msgspec.json.encode([value, fan_id])).decode().rstrip("=")


def _decode_cursor(cursor: str) -> tuple[int, int]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        value, fan_id = msgspec.json.decode(raw, type=tuple[int, int])
    except (binascii.Error, ValueError, msgspec.DecodeError):
        raise InvalidValue("cursor", "is not a cursor this API returned") from None
    return value, fan_id
