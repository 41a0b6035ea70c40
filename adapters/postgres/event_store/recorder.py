"""Appending events, of one stream or many, in one statement (``PostgresEventStore``).

Appending stream by stream costs two or three round trips per stream (the subject's key, the
insert): a campaign chunk of 500 messages made 1,000 to 2,000 of them. Here the keys of every
subject are looked up in one query, each stream's personal fields are sealed in memory, and
one statement checks every stream's expected version and inserts all the events, the new data
keys and the destroyed ones. The checks are all-or-nothing: a single stream that moved on
inserts nothing, and the caller raises ConcurrencyError; the unique (stream_id, version) index
still catches a writer that commits in between.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any
from uuid import UUID, uuid4

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from adapters import tracing
from adapters.postgres import idempotency_keys
from adapters.postgres.event_store.mapper import (
    encode_json,
    event_fields,
    event_type_of,
    schema_version,
)
from adapters.postgres.personal_data import PendingKeys, PersonalDataCodec, subject_of
from application.errors import ConcurrencyError
from application.ports import EventMetadata, OutboxEntry, StreamWrite
from domain.events import PERSONAL_DATA

_APPEND_MANY = """
WITH moved AS (
    SELECT 1 FROM unnest($1::text[], $2::int[]) AS x(stream_id, expected)
    WHERE (SELECT coalesce(max(version), 0) FROM events WHERE stream_id = x.stream_id)
          <> x.expected
    LIMIT 1
), inserted AS (
    INSERT INTO events (event_id, stream_id, stream_type, version, event_type, data, metadata)
    SELECT e.event_id, e.stream_id, e.stream_type, e.version, e.event_type, e.data::jsonb,
           ($10::jsonb[])[e.meta] || jsonb_build_object('schema_version', e.schema_version)
    FROM unnest($3::uuid[], $4::text[], $5::text[], $6::int[], $7::text[], $8::text[],
                $9::int[], $11::int[])
         WITH ORDINALITY AS e(event_id, stream_id, stream_type, version, event_type, data,
                              schema_version, meta, n)
    WHERE NOT EXISTS (SELECT 1 FROM moved)
    ORDER BY e.n
    RETURNING position
), new_keys AS (
    INSERT INTO subject_keys (subject_id, wrapped_key, master_key_id)
    SELECT k.subject_id, k.wrapped_key, $14
    FROM unnest($12::text[], $13::bytea[]) AS k(subject_id, wrapped_key)
    WHERE EXISTS (SELECT 1 FROM inserted)
), destroyed_keys AS (
    INSERT INTO subject_keys (subject_id, wrapped_key, master_key_id, destroyed_at)
    SELECT s.subject_id, NULL, NULL, now() FROM unnest($15::text[]) AS s(subject_id)
    WHERE EXISTS (SELECT 1 FROM inserted)
    ON CONFLICT (subject_id) DO UPDATE
    SET wrapped_key = NULL, master_key_id = NULL, destroyed_at = now()
)
SELECT position FROM inserted ORDER BY position
"""

# The same, with the outbox rows of the command in a last CTE: one statement is its own
# transaction, so events and outbox rows still commit together, in one round trip where
# BEGIN, the append, the outbox insert and COMMIT took four (a send spent most of its
# connection time idle in transaction, waiting for the next of them).
_APPEND_MANY_WITH_OUTBOX = _APPEND_MANY.replace(
    "\nSELECT position FROM inserted",
    """, outboxed AS (
    INSERT INTO outbox (queue, message_id, body, attributes, stream_version)
    SELECT o.queue, o.message_id, o.body, o.attributes, o.stream_version
    FROM unnest($16::text[], $17::text[], $18::text[], $19::jsonb[], $20::int[])
         WITH ORDINALITY AS o(queue, message_id, body, attributes, stream_version, n)
    WHERE NOT EXISTS (SELECT 1 FROM moved)  -- every stream where it was expected
    ORDER BY o.n
)
SELECT position FROM inserted""",
)

_NOT_MOVED = "WHERE NOT EXISTS (SELECT 1 FROM moved)"


def _completing_reservation(sql: str, first_param: int) -> str:
    """``sql`` for a request holding an Idempotency-Key: the same statement also marks the
    reservation committed, and inserts nothing (no events, no outbox rows) unless the request
    still holds it (adapters/postgres/idempotency_keys.py says why)."""
    reserved = idempotency_keys.RESERVED_CTE.format(first_param, first_param + 1, first_param + 2)
    sql = sql.replace(_NOT_MOVED, _NOT_MOVED + " AND EXISTS (SELECT 1 FROM reserved)")
    return sql.replace("\n), inserted AS (", f"\n), {reserved}, inserted AS (", 1)


# Parameters: the append's 15, the outbox's 5, then the reservation's 3.
_APPEND_MANY_RESERVED = _completing_reservation(_APPEND_MANY, 16)
_APPEND_MANY_WITH_OUTBOX_RESERVED = _completing_reservation(_APPEND_MANY_WITH_OUTBOX, 21)


def distinct_streams(writes: Sequence[StreamWrite]) -> bool:
    """Whether ``append_many`` may take the writes at once: two writes to one stream must go
    in order, each checked after the other."""
    return len({write.stream_id for write in writes}) == len(writes)


async def append_many(
    conn: Any,
    personal: PersonalDataCodec,
    writes: Sequence[StreamWrite],
    metadata: EventMetadata,
    outbox: Sequence[OutboxEntry] = (),
) -> tuple[list[int], list[PendingKeys]]:
    """Insert every write's events, and the ``outbox`` rows with them in the same statement;
    returns their positions (none if a stream moved on: then no outbox row either) and the key
    changes to report once committed."""
    typed = [
        [(event_type_of(e), _event_id(w, i), event_fields(e)) for i, e in enumerate(w.events)]
        for w in writes
    ]
    known, looked_up = await _prefetch_keys(conn, personal, writes, typed)
    metas: dict[int, int] = {}
    meta_values: list[EventMetadata] = []
    columns: dict[str, list[Any]] = {
        k: [] for k in ("ids", "streams", "types", "versions", "events", "data", "schemas", "meta")
    }
    pending_all: list[PendingKeys] = []
    new_subjects: list[str] = []
    wrapped: list[bytes] = []
    erased: set[str] = set()
    for write, items in zip(writes, typed, strict=True):
        pending = await personal.protect(
            conn, write.stream_id, write.expected_version, items, known, looked_up
        )
        for subject, (aead, wrapped_key) in pending.new_keys.items():
            known[subject] = aead
            new_subjects.append(subject)
            wrapped.append(wrapped_key)
        erased |= pending.erased_subjects
        pending_all.append(pending)
        meta = write.metadata or metadata
        index = metas.setdefault(id(meta), len(meta_values) + 1)
        if index == len(meta_values) + 1:
            meta_values.append(meta)
        count = len(items)
        columns["ids"] += [event_id for _, event_id, _ in items]
        columns["streams"] += [write.stream_id] * count
        columns["types"] += [write.stream_type] * count
        columns["versions"] += range(write.expected_version + 1, write.expected_version + count + 1)
        columns["events"] += [event_type for event_type, _, _ in items]
        columns["data"] += [encode_json(fields) for _, _, fields in items]
        columns["schemas"] += [schema_version(event_type) for event_type, _, _ in items]
        columns["meta"] += [index] * count
    extra: list[Any] = []
    if outbox:
        extra = [
            [entry.queue for entry in outbox],
            [entry.message_id for entry in outbox],
            [await personal.seal_body(conn, e.body, e.subject, e.personal, known) for e in outbox],
            # The command's trace context (W3C traceparent) rides with each message, so the
            # relay and the sender continue the request's trace (adapters/tracing.py).
            [tracing.with_trace_context(entry.attributes) for entry in outbox],
            [entry.stream_version for entry in outbox],
        ]
    # Nothing to insert commits nothing: such an append leaves the reservation as it is.
    reservation = idempotency_keys.current() if columns["ids"] else None
    if reservation is None:
        sql = _APPEND_MANY_WITH_OUTBOX if outbox else _APPEND_MANY
    else:
        sql = _APPEND_MANY_WITH_OUTBOX_RESERVED if outbox else _APPEND_MANY_RESERVED
        extra += list(reservation)
    rows = await conn.fetch(
        sql,
        [write.stream_id for write in writes],
        [write.expected_version for write in writes],
        columns["ids"],
        columns["streams"],
        columns["types"],
        columns["versions"],
        columns["events"],
        columns["data"],
        columns["schemas"],
        meta_values,
        columns["meta"],
        new_subjects,
        wrapped,
        personal.master_key_id,
        sorted(erased),
        *extra,
    )
    if not rows and reservation is not None:
        await _check_still_held(conn, reservation)
    return [row["position"] for row in rows], pending_all


async def _check_still_held(conn: Any, reservation: idempotency_keys.Reservation) -> None:
    """Nothing appended: say so if it is because the request lost its key (a retry took it
    over after waiting for it), rather than let the caller report a stale version."""
    if not await idempotency_keys.still_held(conn, reservation):
        raise ConcurrencyError(
            "this request's Idempotency-Key was taken over by a retry of it: nothing recorded"
        )


async def _prefetch_keys(
    conn: Any,
    personal: PersonalDataCodec,
    writes: Sequence[StreamWrite],
    typed: list[list[tuple[str, UUID, dict[str, Any]]]],
) -> tuple[dict[str, AESGCM | None], set[str]]:
    """Every stored key the writes need, in one query: the keys found (None: erased), and
    every subject looked up (those without a key get a new one)."""
    subjects: set[str] = set()
    if personal.keys is None:
        return {}, subjects
    for write, items in zip(writes, typed, strict=True):
        for event_type, _, fields in items:
            spec = PERSONAL_DATA.get(event_type)
            if spec is not None:
                subject = subject_of(spec, event_type, write.stream_id, fields)
                if not (subject == write.stream_id and write.expected_version == 0):
                    subjects.add(subject)
    found = await personal.keys.load(conn, subjects) if subjects else {}
    return found, subjects


def _event_id(write: StreamWrite, index: int) -> UUID:
    return write.event_ids[index] if write.event_ids is not None else uuid4()
