"""Inside one import batch's transaction: find fans through the write-side index, claim index
entries, load fans, and append every stream's events at once.

Why not ``PostgresEventStore.append_all`` (adapters/postgres/event_store/recorder.py), which also
appends many streams in one statement: an import batch runs inside the transaction that also
claims its index entries, and its hot path differs. It sends each column as one text joined
by a separator instead of an array (the driver's per-element cost was the import's largest),
and it skips the per-stream version read: the expected-version check is the unique
(stream_id, version) index, so a stream that moved on since it was loaded makes the insert
fail, the transaction roll back, and the batch re-run. Personal fields are encrypted by the
same PersonalDataCodec.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from typing import Any
from uuid import UUID

import asyncpg
import msgspec

from adapters.postgres.event_store import to_recorded
from adapters.postgres.event_store.mapper import (
    encode_json,
    event_fields,
    event_type_of,
    schema_version,
)
from adapters.postgres.imports_index import IndexHasher
from adapters.postgres.personal_data import PersonalDataCodec
from application.context import CommandContext
from application.errors import ConcurrencyError
from application.imports import Applied, Indexed, Row
from application.ports import StreamWrite
from domain.fan import Fan, fan_stream_id


def _claims(first: int) -> str:
    """An INSERT of index entries from the four texts from parameter ``first`` on (key
    hashes, streams, row digests, versions; $14 is the tenant). seen_version: the key is the
    fan's own at that version (migrations/019). One order for every importer: fewer
    deadlocks."""
    texts = ", ".join(f"string_to_array(${n}::text, chr(30))" for n in range(first, first + 4))
    return f"""INSERT INTO import_fan_keys
        (tenant_id, key_hash, stream_id, row_digest, fan_version, seen_version)
    SELECT $14, decode(c.key_hash, 'hex'), c.stream_id, decode(nullif(c.row_digest, ''), 'hex'),
           nullif(c.fan_version, '')::int, nullif(c.fan_version, '')::int
    FROM unnest({texts}) AS c(key_hash, stream_id, row_digest, fan_version)
    ORDER BY c.key_hash"""


# The text columns come as one text each, their values joined by the ASCII record separator
# (chr(30)): none of them can hold it (JSON escapes control characters; stream ids and type
# names are identifiers; binary values go as hex). An array parameter costs the driver per
# element; a string does not.
_APPEND_MANY = f"""
WITH inserted AS (
    INSERT INTO events (event_id, stream_id, stream_type, version, event_type, data, metadata)
    SELECT e.event_id, e.stream_id, e.stream_type, e.version, e.event_type, e.data::jsonb,
           CASE WHEN e.schema_version = $12 THEN $13::jsonb
                ELSE $7::jsonb || jsonb_build_object('schema_version', e.schema_version) END
    FROM unnest($1::uuid[], string_to_array($2::text, chr(30)),
                string_to_array($3::text, chr(30)), string_to_array($4::text, chr(30))::int[],
                string_to_array($5::text, chr(30)), string_to_array($6::text, chr(30)),
                string_to_array($8::text, chr(30))::int[])
         WITH ORDINALITY AS e(event_id, stream_id, stream_type, version, event_type, data,
                              schema_version, n)
    ORDER BY e.n
    RETURNING position
), new_keys AS (
    INSERT INTO subject_keys (subject_id, wrapped_key, master_key_id)
    SELECT k.subject_id, decode(k.wrapped_key, 'hex'), $11
    FROM unnest(string_to_array($9::text, chr(30)), string_to_array($10::text, chr(30)))
         AS k(subject_id, wrapped_key)
), claimed AS (
    -- A key another import holds fails the statement (unique violation): the batch re-runs.
    {_claims(15)}
), claimed_if_free AS (
    {_claims(19)}
    ON CONFLICT DO NOTHING
), remembered AS (
    UPDATE import_fan_keys k SET row_digest = decode(nullif(r.row_digest, ''), 'hex'),
                                 fan_version = nullif(r.fan_version, '')::int
    FROM unnest(string_to_array($23::text, chr(30)), string_to_array($24::text, chr(30)),
                string_to_array($25::text, chr(30))) AS r(stream_id, row_digest, fan_version)
    WHERE k.tenant_id = $14 AND k.stream_id = r.stream_id
      -- One statement may change a row once: the released ones are only deleted.
      AND encode(k.key_hash, 'hex') <> ALL(string_to_array($26::text, chr(30)))
), released AS (
    -- Handles the batch renamed fans away from: freed, as an API rename frees them.
    DELETE FROM import_fan_keys k
    USING unnest(string_to_array($26::text, chr(30)), string_to_array($27::text, chr(30)))
          AS r(key_hash, stream_id)
    WHERE k.tenant_id = $14 AND k.key_hash = decode(r.key_hash, 'hex')
      AND k.stream_id = r.stream_id
)
SELECT max(position) FROM inserted
"""
_SEPARATOR = chr(30)

# A batch that meets these lost a race (a fan's stream moved on, an index key was taken):
# it is rolled back and re-run.
CONFLICTS = (
    asyncpg.UniqueViolationError,
    asyncpg.DeadlockDetectedError,
    asyncpg.SerializationError,
)

# An entry is unchanged if its fan's stream is still at the version the entry remembers.
_FIND = """
SELECT k.key_hash, k.stream_id, k.row_digest,
       k.fan_version IS NOT NULL AND k.fan_version = (
           SELECT max(e.version) FROM events e WHERE e.stream_id = k.stream_id
       )
FROM import_fan_keys k WHERE k.tenant_id = $1 AND k.key_hash = ANY($2::bytea[])
"""


class PostgresImportBatch:
    def __init__(
        self, conn: Any, tenant: str, hasher: IndexHasher, personal: PersonalDataCodec
    ) -> None:
        self._conn = conn
        self._tenant = tenant
        self._hasher = hasher
        self._personal = personal
        self.appended = False
        self.position = 0
        self.loaded_subjects: list[str] = []
        self._hashed: dict[str, bytes] = {}
        self._staged: tuple[Sequence[StreamWrite], list[Any]] | None = None
        self._tenant_bytes = tenant.encode()
        self._claims: list[tuple[bytes, Applied]] = []
        self._claims_if_free: list[tuple[bytes, Applied]] = []
        self._remembered: list[Applied] = []
        self._released: list[tuple[bytes, int]] = []

    def _hashes(self, keys: Sequence[str]) -> dict[bytes, str]:
        known = self._hashed
        for key in keys:
            if key not in known:
                known[key] = self._hasher.key_hash(self._tenant, key)
        return {known[key]: key for key in keys}

    async def find(self, keys: Sequence[str]) -> dict[str, Indexed]:
        if not keys:
            return {}
        hashes = self._hashes(keys)
        rows = await self._conn.fetch(_FIND, self._tenant, list(hashes))
        return {
            hashes[key_hash]: Indexed(_fan_id(stream_id), digest, unchanged)
            for key_hash, stream_id, digest, unchanged in rows
        }

    def row_digest(self, row: Row) -> bytes:
        return self._hasher.row_digest(self._tenant_bytes, row)

    async def claim(self, claims: dict[str, Applied], *, exclusive: bool) -> None:
        """Staged: ``append`` writes the claims in its statement."""
        staged = self._claims if exclusive else self._claims_if_free
        for key_hash, match_key in self._hashes(list(claims)).items():
            staged.append((key_hash, claims[match_key]))

    async def remember(self, applied: Sequence[Applied]) -> None:
        """Staged: ``append`` updates the entries in its statement."""
        self._remembered += applied

    async def release(self, keys: dict[str, int]) -> None:
        """Staged: ``append`` deletes the entries in its statement."""
        self._released += [(h, keys[key]) for h, key in self._hashes(list(keys)).items()]

    async def new_fan_ids(self, count: int) -> list[int]:
        rows = await self._conn.fetch(
            "SELECT nextval('fan_id_seq') FROM generate_series(1, $1)", count
        )
        return [row[0] for row in rows]

    async def load_fans(self, fan_ids: Sequence[int]) -> dict[int, Fan]:
        if not fan_ids:
            return {}
        rows = await self._conn.fetch(
            "SELECT position, transaction_id, event_id, stream_id, stream_type, version,"
            " event_type, data, metadata, recorded_at FROM events"
            " WHERE stream_id = ANY($1::text[]) ORDER BY stream_id, version",
            [fan_stream_id(fan_id) for fan_id in fan_ids],
        )
        keys = await self._personal.keys_for(self._conn, rows)
        self.loaded_subjects += keys
        fans: dict[str, Any] = {}
        for row in rows:
            recorded = to_recorded(row, keys)
            if recorded.version == 1 and recorded.metadata.tenant != self._tenant:
                fans[recorded.stream_id] = None  # never another tenant's fan
            elif fans.get(recorded.stream_id, 0) is not None:
                fans[recorded.stream_id] = recorded.event.mutate(fans.get(recorded.stream_id))
        return {_fan_id(stream): fan for stream, fan in fans.items() if isinstance(fan, Fan)}

    async def stage(self, writes: Sequence[StreamWrite], ctx: CommandContext) -> None:
        """Encrypt and encode ``writes`` now; ``append`` of the same writes then only sends."""
        self._staged = (writes, await self._arguments(writes, ctx))

    async def append(self, writes: Sequence[StreamWrite], ctx: CommandContext) -> int:
        staged, self._staged = self._staged, None
        if staged is not None and staged[0] is writes:
            arguments = staged[1]
        else:
            arguments = await self._arguments(writes, ctx)
        try:
            position = await self._conn.fetchval(_APPEND_MANY, *arguments, *self._index_writes())
        except CONFLICTS as error:
            raise ConcurrencyError(f"import batch conflicted: {error}") from None
        self.appended = True
        self.position = int(position)
        return self.position

    def _index_writes(self) -> list[str]:
        """The statement's arguments that claim index entries and update remembered ones."""
        arguments = [self._tenant]
        for claims in (self._claims, self._claims_if_free):
            arguments += [
                _SEPARATOR.join(key.hex() for key, _ in claims),
                _SEPARATOR.join(fan_stream_id(entry.fan_id) for _, entry in claims),
                _SEPARATOR.join(_hex(entry.row_digest) for _, entry in claims),
                _SEPARATOR.join(_text(entry.version) for _, entry in claims),
            ]
        remembered = self._remembered
        arguments += [
            _SEPARATOR.join(fan_stream_id(entry.fan_id) for entry in remembered),
            _SEPARATOR.join(_hex(entry.row_digest) for entry in remembered),
            _SEPARATOR.join(_text(entry.version) for entry in remembered),
            _SEPARATOR.join(key.hex() for key, _ in self._released),
            _SEPARATOR.join(fan_stream_id(fan_id) for _, fan_id in self._released),
        ]
        return arguments

    async def _arguments(self, writes: Sequence[StreamWrite], ctx: CommandContext) -> list[Any]:
        """The append statement's arguments: every event, its personal fields sealed."""
        metadata = ctx.metadata()
        ids: list[UUID] = []
        streams: list[str] = []
        stream_types: list[str] = []
        versions: list[int] = []
        types: list[str] = []
        data: list[str] = []
        schemas: list[int] = []
        new_subjects: list[str] = []
        wrapped: list[str] = []  # hex
        personal = self._personal
        seals_alone = personal.seals_alone
        # New fans (most of an import): one event each, sealed all at once after the loop
        # (their fields stay the same dicts, so data is encoded then, at these indexes).
        alone: list[tuple[str, str, UUID, dict[str, Any]]] = []
        alone_at: list[int] = []
        new_ids = iter(time_ordered_ids(sum(len(write.events) for write in writes)))
        for write in writes:
            events = write.events
            stream_id = write.stream_id
            expected = write.expected_version
            event_type = event_type_of(events[0]) if len(events) == 1 else ""
            if expected == 0 and event_type and seals_alone(event_type):
                event = events[0]
                event_id = next(new_ids)
                alone.append((stream_id, event_type, event_id, event_fields(event)))
                alone_at.append(len(data))
                ids.append(event_id)
                streams.append(stream_id)
                stream_types.append(write.stream_type)
                versions.append(1)
                types.append(event_type)
                data.append("")
                schemas.append(schema_version(event_type))
                continue
            count = len(events)
            event_ids = [next(new_ids) for _ in events]
            event_types = [event_type_of(event) for event in events]
            field_list = [event_fields(event) for event in events]
            items = list(zip(event_types, event_ids, field_list, strict=True))
            keys = await personal.protect(self._conn, stream_id, expected, items)
            for subject, (_, wrapped_key) in keys.new_keys.items():
                new_subjects.append(subject)
                wrapped.append(wrapped_key.hex())
            ids += event_ids
            streams += [stream_id] * count
            stream_types += [write.stream_type] * count
            versions += range(expected + 1, expected + count + 1)
            types += event_types
            data += map(encode_json, field_list)
            schemas += map(schema_version, event_types)
        if alone:
            for subject, wrapped_key in personal.seal_new_streams(alone):
                new_subjects.append(subject)
                wrapped.append(wrapped_key.hex())
            for index, (*_, fields) in zip(alone_at, alone, strict=True):
                data[index] = encode_json(fields)
        return [
            ids,
            _joined(streams),
            _joined(stream_types),
            _SEPARATOR.join(map(str, versions)),
            _joined(types),
            _joined(data),
            metadata,
            _SEPARATOR.join(map(str, schemas)),
            _joined(new_subjects),
            _SEPARATOR.join(wrapped),
            self._personal.master_key_id,
            # Most events of a batch share a schema version: their metadata is one value
            # instead of one jsonb concatenation per row.
            schemas[0] if schemas else 1,
            msgspec.structs.replace(metadata, schema_version=schemas[0] if schemas else 1),
        ]


def time_ordered_ids(count: int) -> list[UUID]:
    """Version 7 UUIDs (RFC 9562): the millisecond clock, then 74 random bits, from one read of
    the OS's random source. Why not uuid4: a random id lands on a random page of the unique
    index on event_id; a million-row import then dirties (and after each checkpoint writes
    whole to the WAL) a page per event. Time-ordered ids all go in at the index's right edge.
    """
    prefix = (time.time_ns() // 1_000_000) << 80 | 0x7 << 76 | 0b10 << 62
    random = os.urandom(10 * count)
    ids = []
    for at in range(0, len(random), 10):
        bits = int.from_bytes(random[at : at + 10], "big")
        ids.append(UUID(int=prefix | (bits >> 68) << 64 | (bits & _RAND_B)))
    return ids


_RAND_B = (1 << 62) - 1


def _joined(values: list[str]) -> str:
    text = _SEPARATOR.join(values)
    if text.count(_SEPARATOR) != max(len(values) - 1, 0):
        raise ValueError("a stream id or event type holds the ASCII record separator")
    return text


def _hex(value: bytes | None) -> str:
    return "" if value is None else value.hex()


def _text(value: int | None) -> str:
    return "" if value is None else str(value)


def _fan_id(stream_id: str) -> int:
    return int(stream_id.removeprefix("fan-"))
