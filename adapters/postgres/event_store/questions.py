"""The narrow questions other code asks of the log, each one statement named for its answer.

The rest of the code base never reads ``events`` itself (tests/unit/
test_event_store_boundary.py): what it needs to know of the log is asked here. A statement
that joins the log with another table (projection checkpoints, key writes, the import's fan
index) is here whole, so that it stays one round trip with the plan it had.

Each takes ``db``, a pool or a connection (inside the caller's transaction when it has one).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import asyncpg
import msgspec

Db = asyncpg.Pool | asyncpg.Connection


async def last_processed_at(db: Db) -> datetime | None:
    """When the newest outcome of a send (sent or failed) was recorded."""
    value: datetime | None = await db.fetchval(
        """
        SELECT recorded_at FROM events
        WHERE event_type IN ('MessageSent', 'MessageFailed')
        ORDER BY transaction_id DESC, position DESC LIMIT 1
        """
    )
    return value


async def head_position(db: Db) -> int | None:
    """The highest position taken in the log (None: the log is empty)."""
    value: int | None = await db.fetchval("SELECT max(position) FROM events")
    return value


class ProjectorLag(msgspec.Struct, frozen=True, kw_only=True):
    """A projector's checkpoint and what of the log lies after it."""

    position: int
    lag_events: int
    lag_seconds: float
    updated_at: datetime | None
    last_error: str | None


async def projector_lag(db: Db, name: str) -> ProjectorLag:
    """How far the checkpoint ``name`` is behind the log: the events after it and the age of
    the oldest of them (a checkpoint never saved stands at the start)."""
    row = await db.fetchrow(
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
    return ProjectorLag(
        position=row["pos"],
        lag_events=row["lag_events"],
        lag_seconds=float(row["lag_seconds"]),
        updated_at=row["updated_at"],
        last_error=row["last_error"],
    )


async def events_after_checkpoints(db: Db, names: Sequence[str]) -> int:
    """Events after the least advanced of the checkpoints ``names``; the whole log while any
    of them has not been saved yet."""
    return int(
        await db.fetchval(
            """
            WITH cp AS (
                SELECT coalesce(min(c.transaction_id), '0') AS tx, coalesce(min(c.position), 0)
                       AS pos, count(c.name) AS found
                FROM projection_checkpoints c WHERE c.name = ANY($1::text[])
            )
            SELECT count(*) FROM events, cp
            WHERE cp.found < $2 OR (events.transaction_id, events.position) > (cp.tx, cp.pos)
            """,
            list(names),
            len(names),
        )
    )


async def projector_applied(db: Db, name: str, position: int) -> bool | None:
    """Whether the checkpoint ``name`` has passed the event at ``position``, in commit order;
    None when no committed event holds that position (beyond the head, or a rolled-back gap)."""
    row = await db.fetchrow(
        """
        SELECT coalesce((e.transaction_id, e.position) <= (c.transaction_id, c.position),
                        false) AS applied
        FROM events e LEFT JOIN projection_checkpoints c ON c.name = $1
        WHERE e.position = $2
        """,
        name,
        position,
    )
    return None if row is None else bool(row["applied"])


_UNINDEXED_FANS = """
SELECT f.fan_id, f.platform, f.platform_id, f.handle, f.identity_version FROM fans f
WHERE f.tenant_id = $1 AND (f.handle IS NOT NULL OR f.platform_id IS NOT NULL)
  -- Fewer entries seen at the fan's identity than it has keys: the API claims a handle in
  -- the index, never a platform id, so one entry does not mean both are there.
  AND (
      SELECT count(*) FROM import_fan_keys k
      WHERE k.stream_id = 'fan-' || f.fan_id AND k.seen_version >= f.identity_version
  ) < (f.handle IS NOT NULL)::int + (f.platform_id IS NOT NULL)::int
  AND NOT EXISTS (
      SELECT 1 FROM events e
      WHERE e.stream_id = 'fan-' || f.fan_id AND e.event_type IN ('FanDeleted', 'FanErased')
  )
ORDER BY f.fan_id
"""


async def unindexed_fans(db: Db, tenant: str) -> list[asyncpg.Record]:
    """The tenant's fans (fan_id, platform, platform_id, handle, identity_version) whose
    import index entries have not all seen their current handle and platform id: made through
    the API (before it claimed handles: migrations/029), or with a platform id the API does
    not claim, or renamed through it since an import (migrations/019). The read model may
    still show a fan deleted a moment ago, whose deletion freed its handle: the log decides.
    Oldest fan first: where two hold one handle (made before handles were claimed), the first
    indexed keeps it."""
    rows: list[asyncpg.Record] = await db.fetch(_UNINDEXED_FANS, tenant)
    return rows


# -- read-your-writes (adapters/postgres/key_writes.py) ----------------------------------------

_RECORD_KEY_WRITE = """
INSERT INTO key_writes AS k (key_id, transaction_id, position)
SELECT $1, e.transaction_id, e.position FROM events e WHERE e.position = ANY($2::bigint[])
ORDER BY e.transaction_id DESC, e.position DESC LIMIT 1
ON CONFLICT (key_id) DO UPDATE
SET transaction_id = EXCLUDED.transaction_id, position = EXCLUDED.position
WHERE (EXCLUDED.transaction_id, EXCLUDED.position) > (k.transaction_id, k.position)
"""


async def record_key_write(db: Db, key_id: str, positions: Sequence[int]) -> None:
    """Keep against ``key_id`` the newest, in commit order, of the committed events at
    ``positions`` and the write it already holds."""
    await db.execute(_RECORD_KEY_WRITE, key_id, list(positions))


# The views (of $1) whose checkpoints have not reached (transaction id, position) ($2, $3).
_VIEWS_BEHIND = """
SELECT coalesce(array_agg(v.name), '{}') FROM unnest($1::text[]) AS v(name)
WHERE NOT EXISTS (
    SELECT FROM projection_checkpoints c
    WHERE c.name = v.name AND (c.transaction_id, c.position) >= ($2::xid8, $3::bigint)
)
"""

# The newer of the key's last write and the event at minPosition ($3), and which views are
# behind it: one round trip, and index lookups only, for every read.
_KEY_WRITE_TARGET = f"""
WITH wanted AS (
    SELECT transaction_id, position FROM events WHERE position = $3
    UNION ALL
    SELECT transaction_id, position FROM key_writes WHERE key_id = $2
), target AS (
    SELECT transaction_id, position FROM wanted
    ORDER BY transaction_id DESC, position DESC LIMIT 1
)
SELECT $3::bigint IS NOT NULL
       AND NOT EXISTS (SELECT FROM events WHERE position = $3) AS unknown,
       t.transaction_id, t.position,
       ({_VIEWS_BEHIND.replace("$2::xid8", "t.transaction_id").replace("$3::bigint", "t.position")})
       AS behind
FROM (SELECT) AS one LEFT JOIN target t ON true
"""


async def key_write_target(
    db: Db, key_id: str, views: Sequence[str], min_position: int | None
) -> Any:
    """A row: ``unknown`` (no event holds ``min_position``), the (``transaction_id``,
    ``position``) a read by ``key_id`` must see (the newer of the key's last write and the
    event at ``min_position``; both None when neither is), and the ``views`` ``behind`` it."""
    return await db.fetchrow(_KEY_WRITE_TARGET, list(views), key_id, min_position)


async def views_behind(
    db: Db, views: Sequence[str], transaction_id: int, position: int
) -> list[str]:
    """Which of ``views`` have a checkpoint short of (``transaction_id``, ``position``)."""
    return list(await db.fetchval(_VIEWS_BEHIND, list(views), transaction_id, position))


# -- the live stream (adapters/live/) ---------------------------------------------------------


async def position_in_log(db: Db, position: int) -> tuple[int, int] | None:
    """(transaction id, position) of the committed event at ``position``, so that a reader
    can go on strictly after it in commit order; None when no event holds it."""
    row = await db.fetchrow(
        "SELECT transaction_id, position FROM events WHERE position = $1", position
    )
    return None if row is None else (int(row[0]), int(row[1]))


async def events_after(db: Db, transaction_id: int, position: int, at_most: int) -> int:
    """How many committed events follow (transaction id, position) in commit order, counting
    no further than ``at_most`` (the answer is capped there: a resume only needs to know
    whether the gap fits its replay window)."""
    return int(
        await db.fetchval(
            """
            SELECT count(*) FROM (
                SELECT 1 FROM events WHERE (transaction_id, position) > ($1::xid8, $2)
                LIMIT $3
            ) AS gap
            """,
            transaction_id,
            position,
            at_most,
        )
    )
