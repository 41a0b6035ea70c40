"""Hand-written SQL over the scripts and sensitive_words read tables."""

from __future__ import annotations

from typing import Any

import asyncpg

from adapters.postgres.cursors import decode_cursor, encode_cursor
from application.script_queries import ScriptMetrics, ScriptPage, ScriptView

_BIGINT = range(-(2**63), 2**63)

_SCRIPT = """
SELECT script_id, name, content, price_cents, attachments, created_at, updated_at, version,
       sent, purchased, revenue_cents, shared
FROM scripts
"""


# The account's own scripts, and the ones its workspace (its founding account) shares.
_OWNED = "WHERE (tenant_id = $1 OR (tenant_id = $2 AND shared))"


class PostgresScriptReadModel:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def list_scripts(
        self, tenant: str, limit: int, cursor: str | None, workspace_id: str | None = None
    ) -> ScriptPage:
        """Newest first: the account's, and those its workspace shares."""
        before = decode_cursor(cursor, tuple[int])[0] if cursor else 2**63 - 1
        rows = await self._pool.fetch(
            _SCRIPT + _OWNED + " AND script_id < $3 ORDER BY script_id DESC LIMIT $4",
            tenant,
            workspace_id or tenant,
            before,
            limit + 1,
        )
        items = [_view(row) for row in rows[:limit]]
        next_cursor = encode_cursor(items[-1].script_id) if len(rows) > limit else None
        return ScriptPage(items, next_cursor)

    async def get_script(
        self, tenant: str, script_id: int, workspace_id: str | None = None
    ) -> ScriptView | None:
        if script_id not in _BIGINT:
            return None
        row = await self._pool.fetchrow(
            _SCRIPT + _OWNED + " AND script_id = $3", tenant, workspace_id or tenant, script_id
        )
        return _view(row) if row else None

    async def sensitive_words(self, tenant: str) -> list[str]:
        words = await self._pool.fetchval(
            "SELECT words FROM sensitive_words WHERE tenant_id = $1", tenant
        )
        return list(words or [])


def _view(row: Any) -> ScriptView:
    return ScriptView(
        script_id=row["script_id"],
        name=row["name"],
        content=row["content"],
        price_cents=row["price_cents"],
        media_urls=[item["url"] for item in row["attachments"]],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        version=row["version"],
        metrics=ScriptMetrics(
            sent=row["sent"], purchased=row["purchased"], revenue_cents=row["revenue_cents"]
        ),
        shared=row["shared"],
    )
