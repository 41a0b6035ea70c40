"""Hand-written SQL over the workspaces view (projections/workspaces.py): the member list,
and shifts (a window's, keyset-paginated; one by its id)."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import asyncpg
import msgspec

from adapters.postgres.cursors import decode_cursor, encode_cursor
from application.message_queries import Page
from domain.shift import MAX_LENGTH

# A workspace's members fit on one page: agencies count their chatters in dozens.
MAX_MEMBERS = 1000


class MemberView(msgspec.Struct, frozen=True, kw_only=True):
    member_id: str
    name: str | None
    role: str
    permissions: list[str]
    accounts: list[str] | None
    status: str
    invited_by: str
    invited_at: datetime
    expires_at: datetime
    joined_at: datetime | None
    removed_at: datetime | None


_MEMBERS = """
SELECT member_id, name, role, permissions, accounts, status, invited_by, invited_at,
       expires_at, joined_at, removed_at
FROM workspace_members WHERE workspace_id = $1
ORDER BY invited_at, member_id LIMIT $2
"""


class PostgresWorkspaceReadModel:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def members(self, workspace_id: str) -> list[MemberView]:
        rows = await self._pool.fetch(_MEMBERS, workspace_id, MAX_MEMBERS)
        return [MemberView(**dict(row)) for row in rows]

    async def shifts(
        self, workspace_id: str, where: ShiftFilter, limit: int, cursor: str | None
    ) -> Page:
        return await shifts_of(self._pool, workspace_id, where, limit, cursor)

    async def shift(self, workspace_id: str, shift_id: str) -> ShiftView | None:
        return await shift_of(self._pool, workspace_id, shift_id)


class ShiftView(msgspec.Struct, frozen=True, kw_only=True):
    shift_id: str
    member_id: str
    starts_at: datetime
    ends_at: datetime
    accounts: list[str] | None  # None: every account of the workspace
    scheduled_by: str
    scheduled_at: datetime


class ShiftFilter(msgspec.Struct, frozen=True, kw_only=True):
    """Shifts overlapping [since, until) (either bound may be open), of one member, seen by a
    caller of ``scope`` (None: every account; else those touching one of its accounts)."""

    member_id: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    scope: tuple[str, ...] | None = None


_SHIFT = """
SELECT shift_id, member_id, starts_at, ends_at, accounts, scheduled_by, scheduled_at
FROM workspace_shifts
"""


async def shift_of(pool: asyncpg.Pool, workspace_id: str, shift_id: str) -> ShiftView | None:
    """One live shift of the workspace (None: no such shift there, or cancelled): who works it,
    on which accounts (None: all), from when to when."""
    row = await pool.fetchrow(
        _SHIFT + "WHERE workspace_id = $1 AND shift_id = $2", workspace_id, shift_id
    )
    return ShiftView(**dict(row)) if row else None


async def shifts_of(
    pool: asyncpg.Pool, workspace_id: str, where: ShiftFilter, limit: int, cursor: str | None
) -> Page:
    """Earliest start first. A shift lasts at most MAX_LENGTH: one overlapping ``since``
    started at most that long before it, which bounds the index range read."""
    args: list[Any] = [workspace_id]
    conditions = ["workspace_id = $1"]
    earliest = _minus(where.since, MAX_LENGTH) if where.since is not None else None
    for condition, value in (
        ("member_id = ${}", where.member_id),
        ("ends_at > ${}", where.since),
        ("starts_at >= ${}", earliest),
        ("starts_at < ${}", where.until),
    ):
        if value is not None:
            args.append(value)
            conditions.append(condition.format(len(args)))
    if where.scope is not None:
        args.append(list(where.scope))
        conditions.append(f"(accounts IS NULL OR accounts && ${len(args)}::text[])")
    if cursor:
        args.extend(decode_cursor(cursor, tuple[datetime, str]))
        conditions.append(f"(starts_at, shift_id) > (${len(args) - 1}, ${len(args)})")
    args.append(limit + 1)
    rows = await pool.fetch(
        _SHIFT
        + "WHERE "
        + " AND ".join(conditions)
        + f" ORDER BY starts_at, shift_id LIMIT ${len(args)}",
        *args,
    )
    items = [ShiftView(**dict(row)) for row in rows[:limit]]
    next_cursor = None
    if len(rows) > limit:
        last = items[-1]
        next_cursor = encode_cursor(last.starts_at, last.shift_id)
    return Page(items, next_cursor)


def _minus(at: datetime, length: timedelta) -> datetime | None:
    try:
        return at - length
    except OverflowError:
        return None  # before the calendar's first day: no lower bound
