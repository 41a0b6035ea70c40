"""Campaigns the campaign worker could not move on (table ``campaign_stalls``): recorded by the
worker when a fan-out step fails all its attempts, cleared by the next chunk it queues, and
shown by `crm campaigns status` beside each open campaign's progress.

Worker state, not a projection: nothing in the event log says that a step failed.
"""

from __future__ import annotations

from datetime import datetime

import asyncpg
import msgspec


class CampaignState(msgspec.Struct, frozen=True, kw_only=True):
    campaign_id: int
    tenant: str
    status: str
    total_recipients: int
    queued: int
    skipped: int
    fanned_out: bool
    updated_at: datetime
    # Set while the campaign is stalled: why, since when, and how many worker rounds.
    stalled_reason: str | None = None
    stalled_since: datetime | None = None
    stalled_rounds: int = 0


async def record_stall(pool: asyncpg.Pool, campaign_id: int, tenant: str, reason: str) -> int:
    """Note another round without progress; returns how many in a row."""
    return int(
        await pool.fetchval(
            """
            INSERT INTO campaign_stalls AS s (campaign_id, tenant_id, reason)
            VALUES ($1, $2, $3)
            ON CONFLICT (campaign_id) DO UPDATE
            SET reason = EXCLUDED.reason, rounds = s.rounds + 1, last_stalled_at = now()
            RETURNING rounds
            """,
            campaign_id,
            tenant,
            reason[:1000],
        )
    )


async def clear_stall(pool: asyncpg.Pool, campaign_id: int) -> None:
    await pool.execute("DELETE FROM campaign_stalls WHERE campaign_id = $1", campaign_id)


async def open_campaign_states(pool: asyncpg.Pool) -> list[CampaignState]:
    """Every active or paused campaign, with its stall if it has one, oldest first (a stall
    of a campaign since cancelled or completed is history: not shown)."""
    rows = await pool.fetch(
        """
        SELECT c.campaign_id, c.tenant_id AS tenant, c.status, c.total_recipients, c.queued,
               c.skipped, c.fanned_out_at IS NOT NULL AS fanned_out, c.updated_at,
               s.reason AS stalled_reason, s.first_stalled_at AS stalled_since,
               coalesce(s.rounds, 0) AS stalled_rounds
        FROM campaigns c
        -- A paused campaign is not stalled, whatever its last round met; resumed, its next
        -- chunk clears the record (or the next stalled round renews it).
        LEFT JOIN campaign_stalls s ON s.campaign_id = c.campaign_id AND c.status = 'active'
        WHERE c.status IN ('active', 'paused')
        ORDER BY c.campaign_id
        """
    )
    return [CampaignState(**dict(row)) for row in rows]


async def stalled_campaigns(pool: asyncpg.Pool) -> int:
    """How many active campaigns are stalled now."""
    return int(
        await pool.fetchval(
            "SELECT count(*) FROM campaign_stalls s JOIN campaigns c USING (campaign_id)"
            " WHERE c.status = 'active'"
        )
    )
