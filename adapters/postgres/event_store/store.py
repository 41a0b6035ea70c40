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
from uuid import UUID

import asyncpg
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from adapters.postgres import idempotency_keys
from adapters.postgres.event_store import recorder
from adapters.postgres.event_store.mapper import event_rows, from_text, typed_events
from adapters.postgres.event_store.sealing import seal_writes
from adapters.postgres.listen import Notifier
from adapters.postgres.personal_data import PendingKeys, PersonalDataCodec
from adapters.postgres.unique_claims import Hashers, has_claims, hasher_for, write_claims
from adapters.postgres.written_positions import note_written
from application.errors import AlreadyProcessed, ConcurrencyError
from application.ports import (
    Checkpoint,
    EventMetadata,
    OutboxEntry,
    RecordedEvent,
    StreamWrite,
    event_ids_for,
)
from domain.base import DomainEvent


class _KeyMadeElsewhere(Exception):
    """A new stream's subject had a data key already: its append is tried again with every
    key looked up."""


def _key_made_elsewhere(error: asyncpg.UniqueViolationError) -> bool:
    # Appends take a new stream's own subject to have no key yet (sealing.py): true unless
    # another stream's event (a message to a fan not yet created) made the key first.
    return getattr(error, "constraint_name", None) == "subject_keys_pkey"


def _distinct_streams(writes: Sequence[StreamWrite]) -> bool:
    """Whether one statement may take the writes at once: two writes to one stream must go
    in order, each checked after the other."""
    return len({write.stream_id for write in writes}) == len(writes)


def _conflict(writes: Sequence[StreamWrite]) -> ConcurrencyError:
    return ConcurrencyError(
        "not at the expected version: "
        + ", ".join(f"{w.stream_id}@{w.expected_version}" for w in writes)
    )


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
        ids = event_ids_for(events, event_ids)
        write = StreamWrite(stream_id, stream_type, list(events), expected_version, ids)
        async with self._pool.acquire() as conn:
            try:
                positions, committed = await self._append_on_keys_checked(conn, [write], metadata)
            except asyncpg.UniqueViolationError:
                positions, committed = [], []
            if len(positions) == len(events):
                for keys in committed:
                    self._personal.committed(keys)
                self._notify("events")
                note_written(positions[-1])
                return positions
            # The caller's retry of events already stored is a no-op, as much its own write
            # as the first; anything else is a conflict.
            positions = await self._already_appended(conn, stream_id, ids, expected_version)
            note_written(positions[-1])
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
        if once is None and _distinct_streams(writes) and not has_claims(writes):
            # The common case needs no transaction block: one statement writes the events
            # and the outbox rows, and commits or fails as a whole (one round trip instead of
            # BEGIN, append, outbox insert, COMMIT).
            async with self._pool.acquire() as conn:
                try:
                    positions, committed = await self._append_on_keys_checked(
                        conn, writes, metadata, outbox
                    )
                except asyncpg.UniqueViolationError as error:
                    raise ConcurrencyError(str(error)) from None
            if len(positions) != sum(len(write.events) for write in writes):
                raise _conflict(writes)
        else:
            try:
                positions, committed = await self._append_in_transaction(
                    writes, metadata, outbox, once
                )
            except _KeyMadeElsewhere:
                positions, committed = await self._append_in_transaction(
                    writes, metadata, outbox, once, new_streams_keyless=False
                )
        for keys in committed:
            self._personal.committed(keys)
        self._notify("events")
        if outbox:
            self._notify("outbox")
        if positions:
            note_written(max(positions))
        return positions

    async def _append_in_transaction(
        self,
        writes: Sequence[StreamWrite],
        metadata: EventMetadata,
        outbox: Sequence[OutboxEntry],
        once: str | None,
        *,
        new_streams_keyless: bool = True,
    ) -> tuple[list[int], list[PendingKeys]]:
        positions: list[int] = []
        committed: list[PendingKeys] = []
        hasher = await hasher_for(self._index_hashers, writes)
        async with self._pool.acquire() as conn:
            try:
                async with conn.transaction():
                    if once is not None and not await recorder.claim_once(conn, once):
                        raise AlreadyProcessed(once)
                    # Two writes to one stream go in order, each checked after the other;
                    # the outbox rows go with the last group.
                    groups = [writes] if _distinct_streams(writes) else [[w] for w in writes]
                    for n, group in enumerate(groups, 1):
                        last = n == len(groups)
                        appended, pending = await self._append_on(
                            conn,
                            group,
                            metadata,
                            outbox if last else (),
                            new_streams_keyless=new_streams_keyless,
                        )
                        if len(appended) != sum(len(write.events) for write in group):
                            raise _conflict(group)
                        await write_claims(conn, hasher, group, metadata)
                        positions += appended
                        committed += pending
            except asyncpg.UniqueViolationError as error:
                if new_streams_keyless and _key_made_elsewhere(error):
                    raise _KeyMadeElsewhere from None
                raise ConcurrencyError(str(error)) from None
            except asyncpg.DeadlockDetectedError as error:
                # Two writers claiming each other's keys (fans swapping handles): one is
                # rolled back, and reads, decides and appends again.
                raise ConcurrencyError(str(error)) from None
        return positions, committed

    async def _append_on_keys_checked(
        self,
        conn: Any,
        writes: Sequence[StreamWrite],
        metadata: EventMetadata,
        outbox: Sequence[OutboxEntry] = (),
    ) -> tuple[list[int], list[PendingKeys]]:
        """``_append_on``; again, with every key looked up, if a new stream's subject turned
        out to have a key already (another stream's event made it first)."""
        try:
            return await self._append_on(conn, writes, metadata, outbox)
        except asyncpg.UniqueViolationError as error:
            if not _key_made_elsewhere(error):
                raise
        return await self._append_on(conn, writes, metadata, outbox, new_streams_keyless=False)

    async def _append_on(
        self,
        conn: Any,
        writes: Sequence[StreamWrite],
        metadata: EventMetadata,
        outbox: Sequence[OutboxEntry] = (),
        *,
        new_streams_keyless: bool = True,
    ) -> tuple[list[int], list[PendingKeys]]:
        """Every write's events (personal fields sealed) and the ``outbox`` rows, in one
        statement on ``conn``: their positions (none if a stream moved on: then no outbox row
        either) and the key changes to report once committed."""
        typed = typed_events(writes)
        keys, pending, outbox_rows = await seal_writes(
            conn, self._personal, writes, typed, outbox, new_streams_keyless=new_streams_keyless
        )
        rows = event_rows(writes, typed, metadata)
        # Nothing to insert commits nothing: such an append leaves the reservation as it is.
        reservation = idempotency_keys.current() if rows.ids else None
        expected = [(write.stream_id, write.expected_version) for write in writes]
        positions = await recorder.append(conn, expected, rows, keys, outbox_rows, reservation)
        # Nothing appended: say so if it is because the request lost its key (a retry took
        # it over after waiting for it), rather than report a stale version.
        if (
            not positions
            and reservation is not None
            and not await idempotency_keys.still_held(conn, reservation)
        ):
            raise ConcurrencyError(
                "this request's Idempotency-Key was taken over by a retry of it: nothing recorded"
            )
        return positions, pending

    def _notify(self, channel: str) -> None:
        if self._notifier is not None:
            self._notifier.poke(channel)

    async def _already_appended(
        self, conn: asyncpg.Connection, stream_id: str, ids: list[UUID], expected: int
    ) -> list[int]:
        """A retried append of events already stored is a no-op; anything else is a conflict."""
        found = await recorder.positions_of(conn, stream_id, ids)
        if len(found) == len(ids):
            return [found[event_id] for event_id in ids]
        actual = await recorder.stream_version(conn, stream_id)
        raise ConcurrencyError(f"{stream_id} is at version {actual}, expected {expected}")

    async def load(
        self,
        stream_id: str,
        *,
        up_to_version: int | None = None,
        as_of: datetime | None = None,
    ) -> list[RecordedEvent]:
        rows = await recorder.load(self._pool, stream_id, up_to_version, as_of)
        return (await decode_rows(self._pool, self._personal, rows))[0]

    async def load_streams(self, stream_ids: Sequence[str]) -> dict[str, list[RecordedEvent]]:
        """Several streams in one query: those with no event are absent from the answer."""
        if not stream_ids:
            return {}
        return (await load_streams_on(self._pool, self._personal, stream_ids))[0]

    async def read_all(self, after: Checkpoint, limit: int) -> list[RecordedEvent]:
        rows = await recorder.read_all(self._pool, after.transaction_id, after.position, limit)
        return (await decode_rows(self._pool, self._personal, rows))[0]

    async def latest_event_type(self, stream_id: str, among: Sequence[str]) -> str | None:
        return await recorder.latest_event_type(self._pool, stream_id, among)

    async def head(self) -> Checkpoint:
        """The newest place a reader of the global log can reach now."""
        found = await recorder.head(self._pool)
        return Checkpoint(*found) if found else Checkpoint()


async def load_streams_on(
    db: Any, personal: PersonalDataCodec, stream_ids: Sequence[str]
) -> tuple[dict[str, list[RecordedEvent]], dict[str, AESGCM | None]]:
    """Several streams read on ``db`` (a caller's transaction, say), by stream id, and the
    subjects' keys that opened them."""
    found: dict[str, list[RecordedEvent]] = {}
    rows = await recorder.load_streams(db, stream_ids)
    events, keys = await decode_rows(db, personal, rows)
    for recorded in events:
        found.setdefault(recorded.stream_id, []).append(recorded)
    return found, keys


async def decode_rows(
    db: Any, personal: PersonalDataCodec, rows: list[Any]
) -> tuple[list[RecordedEvent], dict[str, AESGCM | None]]:
    """Rows the recorder read, decoded, and the keys that opened their personal fields."""
    sealed_in = PersonalDataCodec.sealed_in
    # Columns by place (recorder.COLUMNS): 3 stream_id, 6 event_type, 7 data.
    sealed = [sealed_in(row[6], row[3], row[7]) for row in rows]
    keys = await personal.keys_for_sealed(db, rows, sealed)
    events = [from_text(row, found, keys) for row, found in zip(rows, sealed, strict=True)]
    return events, keys
