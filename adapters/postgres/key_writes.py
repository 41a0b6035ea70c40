"""Read-your-writes by API key: what a request wrote, recorded before it answers, and how far
the views a later read needs must have come.

A request collects the positions of the events it committed (adapters/postgres/
written_positions.py). Before its response starts, the newest of
them in commit order is recorded against the caller's key in ``key_writes``, a table every API
process shares, so a read by the same key on any process or machine finds it. A read then
waits until each view it reads has a checkpoint at or past that (transaction id, position).

The comparison is in commit order, as the projectors read the log (adapters/postgres/
event_store/store.py): a checkpoint at (t, p) means every event before (t, p) in that order has been
applied, whatever its type. So any position qualifies, including one of events a view never
handles (a message sent, then the fans listed): that view's checkpoint passes it as its
projector reads on. Positions alone would not do: of two concurrent writes, the higher
position may commit first.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import asyncpg
import msgspec

from adapters.postgres.event_store import questions
from application.ports import Checkpoint


class Target(msgspec.Struct, frozen=True):
    """Where the views a read needs must be; ``unknown``: a minPosition no event holds."""

    checkpoint: Checkpoint | None
    behind: list[str]
    unknown: bool = False


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
                await questions.record_key_write(self._pool, key_id, round_.positions)
                round_.recorded = True
        finally:
            lock.users -= 1
            if not lock.users:
                del self._locks[key_id]

    async def target(self, key_id: str, views: Sequence[str], min_position: int | None) -> Target:
        row = await questions.key_write_target(self._pool, key_id, views, min_position)
        if row["unknown"]:
            return Target(None, [], unknown=True)
        if row["position"] is None:
            return Target(None, [])
        return Target(Checkpoint(row["transaction_id"], row["position"]), list(row["behind"]))

    async def behind(self, views: Sequence[str], target: Checkpoint) -> list[str]:
        return await questions.views_behind(
            self._pool, views, target.transaction_id, target.position
        )


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
