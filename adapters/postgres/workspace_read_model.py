"""Hand-written SQL over the workspaces view (projections/workspaces.py): the member list."""

from __future__ import annotations

from datetime import datetime

import asyncpg
import msgspec

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
