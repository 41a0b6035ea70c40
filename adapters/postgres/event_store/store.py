"""The event store on asyncpg: append to one stream with an expected version, read a stream,
read the global log in commit order.

Why the global log is read by (transaction id, position) and only below the snapshot's xmin:
a position is taken from the identity sequence when a row is inserted, but the row becomes
visible only when its transaction commits. Transaction A may insert position 10 and commit
after B inserted and committed position 11; a reader that had already read 11 and kept
"position > 11" as its checkpoint would never see 10. Instead each reader asks Postgres for
``pg_snapshot_xmin(pg_current_snapshot())``, the oldest transaction that may still be running,
and reads only rows written by transactions older than it: all of those have committed or
aborted, so nothing can still appear behind the checkpoint. Ordering by (transaction id,
position) gives every reader the same total order. No global lock is taken on append (a lock
serialising writers costs about 9x in throughput here); the price is that a long-open
transaction delays readers — it never makes them skip.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any
from uuid import UUID, uuid4

import asyncpg

from adapters.postgres.event_store.mapper import from_text
from adapters.postgres.event_store.recorder import append_many, distinct_streams
from adapters.postgres.key_writes import note_written
from adapters.postgres.listen import Notifier
from adapters.postgres.personal_data import PersonalDataCodec
from adapters.postgres.unique_claims import Hashers, has_claims, hasher_for, write_claims
from application.errors import AlreadyProcessed, ConcurrencyError
from application.ports import (
    Checkpoint,
    EventMetadata,
    OutboxEntry,
    RecordedEvent,
    StreamWrite,
)
from domain.base import DomainEvent

# Metadata comes back as text and is decoded straight into EventMetadata (a cache serves the
# many events of one command, which share it): decoding jsonb into a dict and converting that
# cost five times as much, on every event of a replay. Data comes back as text too, decoded
# straight into its event class with its personal fields revealed as JSON (``from_text``).
_COLUMNS = (
    "position, transaction_id, event_id, stream_id, stream_type, version, event_type,"
    " data::text AS data, metadata::text AS metadata, recorded_at"
)

_READ_ALL = f"""
SELECT {_COLUMNS} FROM events
WHERE (transaction_id, position) > ($1::xid8, $2)
  AND transaction_id < pg_snapshot_xmin(pg_current_snapshot())
ORDER BY transaction_id, position
LIMIT $3
"""


class PostgresEventStore:
    def __init__(
        self,
        pool: asyncpg.Pool,
        personal: PersonalDataCodec,
        notifier: Notifier | None = None,
        index_hashers: Hashers | None = None,
    ) -> None:
        self._pool = pool
        self._personal = personal
        self._notifier = notifier
        # The keyed hash of unique claims (adapters/postgres/unique_claims.py).
        self._index_hashers = index_hashers

    async def append(
        self,
        stream_id: str,
        stream_type: str,
        events: Sequence[DomainEvent],
        *,
        expected_version: int,
        metadata: EventMetadata,
        event_ids: Sequence[UUID] | None = None,
    ) -> list[int]:
        if not events:
            return []
        ids = list(event_ids) if event_ids is not None else [uuid4() for _ in events]
        if len(ids) != len(events):
            raise ValueError("one event id per event")
        write = StreamWrite(stream_id, stream_type, list(events), expected_version, ids)
        async with self._pool.acquire() as conn:
            try:
                positions, committed = await append_many(conn, self._personal, [write], metadata)
            except asyncpg.UniqueViolationError:
                positions, committed = [], []
            if len(positions) == len(events):
                for keys in committed:
                    self._personal.committed(keys)
                self._notify("events")
                note_written(positions[-1])
                return positions
            positions = await self._already_appended(conn, stream_id, ids, expected_version)
            note_written(positions[-1])  # the caller's retry: the write is as much its own
            return positions

    async def append_all(
        self,
        writes: Sequence[StreamWrite],
        *,
        metadata: EventMetadata,
        outbox: Sequence[OutboxEntry] = (),
        once: str | None = None,
    ) -> list[int]:
        """Append to several streams and add outbox rows, all in one transaction; any stream
        not at its expected version rolls everything back with ConcurrencyError. With
        ``once``, a second call with the same key appends nothing (AlreadyProcessed). The
        writes' unique claims commit with them (ClaimTaken if another stream holds one)."""
        positions: list[int] = []
        committed = []
        if once is None and distinct_streams(writes) and not has_claims(writes):
            return await self._append_in_one_statement(writes, metadata, outbox)
        hasher = await hasher_for(self._index_hashers, writes)
        async with self._pool.acquire() as conn:
            try:
                async with conn.transaction():
                    if once is not None:
                        claimed = await conn.fetchval(
                            "INSERT INTO processed_once (key) VALUES ($1)"
                            " ON CONFLICT DO NOTHING RETURNING true",
                            once,
                        )
                        if not claimed:
                            raise AlreadyProcessed(once)
                    # Two writes to one stream go in order, each checked after the other;
                    # the outbox rows go with the last group.
                    groups = [writes] if distinct_streams(writes) else [[w] for w in writes]
                    for n, group in enumerate(groups, 1):
                        last = n == len(groups)
                        appended, pending = await append_many(
                            conn, self._personal, group, metadata, outbox if last else ()
                        )
                        if len(appended) != sum(len(write.events) for write in group):
                            raise ConcurrencyError(
                                "not at the expected version: "
                                + ", ".join(f"{w.stream_id}@{w.expected_version}" for w in group)
                            )
                        await write_claims(conn, hasher, group, metadata)
                        positions += appended
                        committed += pending
            except asyncpg.UniqueViolationError as error:
                raise ConcurrencyError(str(error)) from None
            except asyncpg.DeadlockDetectedError as error:
                # Two writers claiming each other's keys (fans swapping handles): one is
                # rolled back, and reads, decides and appends again.
                raise ConcurrencyError(str(error)) from None
        for keys in committed:
            self._personal.committed(keys)
        self._notify("events")
        if outbox:
            self._notify("outbox")
        if positions:
            note_written(max(positions))
        return positions

    async def _append_in_one_statement(
        self, writes: Sequence[StreamWrite], metadata: EventMetadata, outbox: Sequence[OutboxEntry]
    ) -> list[int]:
        """``append_all``'s common case without a transaction block: append_many writes the
        events and the outbox rows in one statement, which commits or fails as a whole (one
        round trip instead of BEGIN, append, outbox insert, COMMIT)."""
        async with self._pool.acquire() as conn:
            try:
                positions, committed = await append_many(
                    conn, self._personal, writes, metadata, outbox
                )
            except asyncpg.UniqueViolationError as error:
                raise ConcurrencyError(str(error)) from None
        if len(positions) != sum(len(write.events) for write in writes):
            raise ConcurrencyError(
                "not at the expected version: "
                + ", ".join(f"{w.stream_id}@{w.expected_version}" for w in writes)
            )
        for keys in committed:
            self._personal.committed(keys)
        self._notify("events")
        if outbox:
            self._notify("outbox")
        if positions:
            note_written(max(positions))
        return positions

    def _notify(self, channel: str) -> None:
        if self._notifier is not None:
            self._notifier.poke(channel)

    async def _already_appended(
        self, conn: asyncpg.Connection, stream_id: str, ids: list[UUID], expected: int
    ) -> list[int]:
        """A retried append of events already stored is a no-op; anything else is a conflict."""
        rows = await conn.fetch(
            "SELECT event_id, position FROM events"
            " WHERE event_id = ANY($1::uuid[]) AND stream_id = $2",
            ids,
            stream_id,
        )
        found = {row["event_id"]: row["position"] for row in rows}
        if len(found) == len(ids):
            return [found[event_id] for event_id in ids]
        actual = await conn.fetchval(
            "SELECT coalesce(max(version), 0) FROM events WHERE stream_id = $1", stream_id
        )
        raise ConcurrencyError(f"{stream_id} is at version {actual}, expected {expected}")

    async def load(
        self,
        stream_id: str,
        *,
        up_to_version: int | None = None,
        as_of: datetime | None = None,
    ) -> list[RecordedEvent]:
        return await self._decoded(
            f"""
            SELECT {_COLUMNS} FROM events
            WHERE stream_id = $1
              AND ($2::int IS NULL OR version <= $2)
              AND ($3::timestamptz IS NULL OR recorded_at <= $3)
            ORDER BY version
            """,
            stream_id,
            up_to_version,
            as_of,
        )

    async def load_streams(self, stream_ids: Sequence[str]) -> dict[str, list[RecordedEvent]]:
        """Several streams in one query: those with no event are absent from the answer."""
        found: dict[str, list[RecordedEvent]] = {}
        if not stream_ids:
            return found
        for recorded in await self._decoded(
            f"SELECT {_COLUMNS} FROM events WHERE stream_id = ANY($1::text[])"
            " ORDER BY stream_id, version",
            list(stream_ids),
        ):
            found.setdefault(recorded.stream_id, []).append(recorded)
        return found

    async def read_all(self, after: Checkpoint, limit: int) -> list[RecordedEvent]:
        return await self._decoded(_READ_ALL, after.transaction_id, after.position, limit)

    async def latest_event_type(self, stream_id: str, among: Sequence[str]) -> str | None:
        # The stream's (stream_id, version) index read backwards: it stops at the first match,
        # and only the type is read, never the event's data.
        value = await self._pool.fetchval(
            "SELECT event_type FROM events WHERE stream_id = $1 AND event_type = ANY($2::text[])"
            " ORDER BY version DESC LIMIT 1",
            stream_id,
            list(among),
        )
        return None if value is None else str(value)

    async def _decoded(self, query: str, *args: Any) -> list[RecordedEvent]:
        rows = await self._pool.fetch(query, *args)
        sealed_in = PersonalDataCodec.sealed_in
        # Columns by place (see _COLUMNS): 3 stream_id, 6 event_type, 7 data.
        sealed = [sealed_in(row[6], row[3], row[7]) for row in rows]
        keys = await self._personal.keys_for_sealed(self._pool, rows, sealed)
        return [from_text(row, found, keys) for row, found in zip(rows, sealed, strict=True)]

    async def head(self) -> Checkpoint:
        """The newest place a reader of the global log can reach now."""
        row = await self._pool.fetchrow(
            """
            SELECT transaction_id, position FROM events
            WHERE transaction_id < pg_snapshot_xmin(pg_current_snapshot())
            ORDER BY transaction_id DESC, position DESC LIMIT 1
            """
        )
        return Checkpoint(row["transaction_id"], row["position"]) if row else Checkpoint()
