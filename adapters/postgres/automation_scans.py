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
    # model's training time, from the place (a fan id under the same model, else the start):
    # a walk of the scores' primary key, short once the scan has caught up. The threshold is
    # the campaigns' segment's, the one constant.
    "atRisk": f"""
        WITH p AS (
            SELECT m.version, m.trained_at,
                CASE WHEN s.sequence_id IS NULL OR s.after_at < m.trained_at THEN 0
                     WHEN s.after_at = m.trained_at THEN s.after_id END AS after_id  -- NULL: past
            FROM (SELECT version, trained_at FROM churn_models WHERE tenant_id = $2
                  ORDER BY version DESC LIMIT 1) m
            {_AFTER}
        )
        SELECT r.fan_id, p.trained_at AS since, r.fan_id AS key
        FROM p CROSS JOIN LATERAL (
            SELECT fan_id FROM churn_scores
            WHERE tenant_id = $2 AND fan_id > p.after_id AND model_version = p.version
              AND risk >= {float(AT_RISK)!r}
            ORDER BY fan_id LIMIT $4
        ) r
        WHERE p.trained_at <= $3
        ORDER BY r.fan_id
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
