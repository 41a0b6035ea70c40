"""Where each projector stands: its checkpoint, how far behind the log it is, its last error."""

from __future__ import annotations

from datetime import datetime

import asyncpg
import msgspec

from projections.base import Projection
from projections.runner import checkpoint_name


class ProjectorStatus(msgspec.Struct, frozen=True, kw_only=True):
    name: str
    position: int
    lag_events: int
    lag_seconds: float
    updated_at: datetime | None
    last_error: str | None


async def projector_status(
    pool: asyncpg.Pool, projections: list[Projection], schema: str = "public"
) -> list[ProjectorStatus]:
    statuses = []
    for projection in projections:
        name = checkpoint_name(projection, schema)
        row = await pool.fetchrow(
            """
            WITH cp AS (
                SELECT coalesce(max(transaction_id), '0') AS tx, coalesce(max(position), 0) AS pos,
                       max(updated_at) AS updated_at, max(last_error) AS last_error
                FROM projection_checkpoints WHERE name = $1
            )
            SELECT cp.pos, cp.updated_at, cp.last_error,
                   count(e.position) AS lag_events,
                   coalesce(extract(epoch FROM now() - min(e.recorded_at)), 0) AS lag_seconds
            FROM cp LEFT JOIN events e ON (e.transaction_id, e.position) > (cp.tx, cp.pos)
            GROUP BY cp.pos, cp.updated_at, cp.last_error
            """,
            name,
        )
        statuses.append(
            ProjectorStatus(
                name=name,
                position=row["pos"],
                lag_events=row["lag_events"],
                lag_seconds=float(row["lag_seconds"]),
                updated_at=row["updated_at"],
                last_error=row["last_error"],
            )
        )
    return statuses
