"""The scans of the time-based triggers (application/automation_scan.py) on Postgres: fans
by their last activity (the analytics view), conversations by their last message, fans at
risk by the account's latest churn scores, and each sequence's place (automation_scans, this
adapter's own table)."""

from __future__ import annotations

from datetime import datetime

import asyncpg

from application.automation_scan import SCANNED, Silent
from application.churn import AT_RISK

_AFTER = "LEFT JOIN automation_scans s ON s.sequence_id = $1"
_QUERIES = {
    "inactive": f"""
        SELECT a.fan_id, a.last_active_at AS since, a.fan_id AS key
        FROM analytics_fan_activity a {_AFTER}
        WHERE a.tenant_id = $2 AND a.last_active_at <= $3
          AND (s.sequence_id IS NULL OR (a.last_active_at, a.fan_id) > (s.after_at, s.after_id))
        ORDER BY a.last_active_at, a.fan_id LIMIT $4
    """,
    "noReply": f"""
        SELECT c.fan_id, c.last_message_at AS since, c.conversation_id AS key
        FROM conversations c {_AFTER}
        WHERE c.tenant_id = $2 AND c.unread_count = 0 AND c.message_count > 0
          AND c.last_message_at <= $3
          AND (s.sequence_id IS NULL
               OR (c.last_message_at, c.conversation_id) > (s.after_at, s.after_id))
        ORDER BY c.last_message_at, c.conversation_id LIMIT $4
    """,
    # The latest model's scores (scoring replaces them all at once), in fan order under the
    # model's training time; the threshold is the campaigns' segment's, the one constant.
    "atRisk": f"""
        WITH m AS (
            SELECT version, trained_at FROM churn_models WHERE tenant_id = $2
            ORDER BY version DESC LIMIT 1
        )
        SELECT r.fan_id, m.trained_at AS since, r.fan_id AS key
        FROM m JOIN churn_scores r ON r.tenant_id = $2 AND r.model_version = m.version
        {_AFTER}
        WHERE r.risk >= {float(AT_RISK)!r} AND m.trained_at <= $3
          AND (s.sequence_id IS NULL OR (m.trained_at, r.fan_id) > (s.after_at, s.after_id))
        ORDER BY r.fan_id LIMIT $4
    """,
}
_TYPES = ", ".join(f"'{name}'" for name in sorted(SCANNED))


class PostgresSilentFans:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def scanned_sequences(self) -> list[tuple[int, str]]:
        rows = await self._pool.fetch(
            "SELECT sequence_id, tenant_id FROM sequences"
            f" WHERE status = 'active' AND trigger->>'type' IN ({_TYPES})"
            " ORDER BY sequence_id"
        )
        return [(row["sequence_id"], row["tenant_id"]) for row in rows]

    async def silent(
        self, sequence_id: int, tenant: str, trigger: str, before: datetime, limit: int
    ) -> list[Silent]:
        rows = await self._pool.fetch(_QUERIES[trigger], sequence_id, tenant, before, limit)
        return [Silent(row["fan_id"], row["since"], row["key"]) for row in rows]

    async def advance(self, sequence_id: int, since: datetime, key: int) -> None:
        # Never backwards: two workers scanning at once each leave the furthest place.
        await self._pool.execute(
            """
            INSERT INTO automation_scans (sequence_id, after_at, after_id) VALUES ($1, $2, $3)
            ON CONFLICT (sequence_id) DO UPDATE SET after_at = EXCLUDED.after_at,
                after_id = EXCLUDED.after_id
            WHERE (automation_scans.after_at, automation_scans.after_id)
                < (EXCLUDED.after_at, EXCLUDED.after_id)
            """,
            sequence_id,
            since,
            key,
        )
