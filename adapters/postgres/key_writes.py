"""Read-your-writes by API key: what a request wrote, recorded before it answers, and how far
the views a later read needs must have come.

A request collects the positions of the events it committed (``collecting``; the event store
and the import note them with ``note_written``). Before its response starts, the newest of
them in commit order is recorded against the caller's key in ``key_writes``, a table every API
process shares, so a read by the same key on any process or machine finds it. A read then
waits until each view it reads has a checkpoint at or past that (transaction id, position).

The comparison is in commit order, as the projectors read the log (adapters/postgres/
event_store.py): a checkpoint at (t, p) means every event before (t, p) in that order has been
applied, whatever its type. So any position qualifies, including one of events a view never
handles (a message sent, then the fans listed): that view's checkpoint passes it as its
projector reads on. Positions alone would not do: of two concurrent writes, the higher
position may commit first.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar

import asyncpg
import msgspec

from application.ports import Checkpoint

# A list, not a value set per append: appends may run in tasks the request spawns, whose
# contexts are copies; they all share the one list.
_written: ContextVar[list[int] | None] = ContextVar("written_positions", default=None)


def note_written(position: int) -> None:
    """A transaction that wrote ``position`` (its last event) has committed."""
    written = _written.get()
    if written is not None:
        written.append(position)


@contextmanager
def collecting() -> Iterator[list[int]]:
    """Collect what is committed within (a request): the positions ``note_written`` saw."""
    written: list[int] = []
    token = _written.set(written)
    try:
        yield written
    finally:
        _written.reset(token)


class Target(msgspec.Struct, frozen=True):
    """Where the views a read needs must be; ``unknown``: a minPosition no event holds."""

    checkpoint: Checkpoint | None
    behind: list[str]
    unknown: bool = False


_RECORD = """
INSERT INTO key_writes AS k (key_id, transaction_id, position)
SELECT $1, e.transaction_id, e.position FROM events e WHERE e.position = ANY($2::bigint[])
ORDER BY e.transaction_id DESC, e.position DESC LIMIT 1
ON CONFLICT (key_id) DO UPDATE
SET transaction_id = EXCLUDED.transaction_id, position = EXCLUDED.position
WHERE (EXCLUDED.transaction_id, EXCLUDED.position) > (k.transaction_id, k.position)
"""

# The views (of $1) whose checkpoints have not reached (transaction id, position) ($2, $3).
_BEHIND = """
SELECT coalesce(array_agg(v.name), '{}') FROM unnest($1::text[]) AS v(name)
WHERE NOT EXISTS (
    SELECT FROM projection_checkpoints c
    WHERE c.name = v.name AND (c.transaction_id, c.position) >= ($2::xid8, $3::bigint)
)
"""

# The newer of the key's last write and the event at minPosition ($3), and which views are
# behind it: one round trip, and index lookups only, for every read.
_TARGET = f"""
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
       ({_BEHIND.replace("$2::xid8", "t.transaction_id").replace("$3::bigint", "t.position")})
       AS behind
FROM (SELECT) AS one LEFT JOIN target t ON true
"""


class KeyWrites:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool
        self._rounds: dict[str, _Round] = {}
        self._locks: dict[str, _KeyLock] = {}

    async def record(self, key_id: str, positions: Sequence[int]) -> None:
        """Record that ``key_id`` wrote ``positions`` (committed), keeping the newest.

        Concurrent requests of one key in this process share upserts: while one is in flight
        the others' positions gather into the next round, which the first of them to get the
        key's turn records for all. Fifty clients sending with one key would otherwise queue
        on that key's row lock, one upsert each."""
        round_ = self._rounds.get(key_id)
        if round_ is None:
            round_ = self._rounds[key_id] = _Round()
        round_.positions.extend(positions)
        lock = self._locks.get(key_id)
        if lock is None:
            lock = self._locks[key_id] = _KeyLock()
        lock.users += 1
        try:
            async with lock.lock:
                if round_.recorded:
                    return
                if self._rounds.get(key_id) is round_:
                    del self._rounds[key_id]  # later arrivals start the next round
                await self._pool.execute(_RECORD, key_id, round_.positions)
                round_.recorded = True
        finally:
            lock.users -= 1
            if not lock.users:
                del self._locks[key_id]

    async def target(self, key_id: str, views: Sequence[str], min_position: int | None) -> Target:
        row = await self._pool.fetchrow(_TARGET, list(views), key_id, min_position)
        if row["unknown"]:
            return Target(None, [], unknown=True)
        if row["position"] is None:
            return Target(None, [])
        return Target(Checkpoint(row["transaction_id"], row["position"]), list(row["behind"]))

    async def behind(self, views: Sequence[str], target: Checkpoint) -> list[str]:
        found = await self._pool.fetchval(
            _BEHIND, list(views), target.transaction_id, target.position
        )
        return list(found)


class _Round:
    __slots__ = ("positions", "recorded")

    def __init__(self) -> None:
        self.positions: list[int] = []
        self.recorded = False


class _KeyLock:
    __slots__ = ("lock", "users")

    def __init__(self) -> None:
        self.lock = asyncio.Lock()
        self.users = 0
