"""Where each projector stands: its checkpoint, how far behind the log it is, its last error."""

from __future__ import annotations

from datetime import datetime

import asyncpg
import msgspec

from adapters.postgres.event_store import questions
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
        lag = await questions.projector_lag(pool, name)
        statuses.append(
            ProjectorStatus(
                name=name,
                position=lag.position,
                lag_events=lag.lag_events,
                lag_seconds=lag.lag_seconds,
                updated_at=lag.updated_at,
                last_error=lag.last_error,
            )
        )
    return statuses
