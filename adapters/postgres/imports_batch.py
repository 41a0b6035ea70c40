"""Inside one import batch's transaction: find fans through the write-side index, claim index
entries, load fans, and append every stream's events at once.

Why not ``PostgresEventStore.append_all`` (adapters/postgres/append_many.py), which also
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
from collections.abc import Sequence
from typing import Any
from uuid import UUID

import msgspec

from adapters.postgres.codec import encode_json, event_fields, event_type_of, schema_version
from adapters.postgres.event_store import to_recorded
from adapters.postgres.imports_index import key_hash
from adapters.postgres.personal_data import PersonalDataCodec
from application.context import CommandContext
from application.ports import StreamWrite
from domain.fan import Fan, fan_stream_id

# The text columns come as one text each, their values joined by the ASCII record separator
# (chr(30)): none of them can hold it (JSON escapes control characters; stream ids and type
# names are identifiers; binary values go as hex). An array parameter costs the driver per
# element; a string does not.
_APPEND_MANY = """
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
)
SELECT max(position) FROM inserted
"""
_SEPARATOR = chr(30)


class PostgresImportBatch:
    def __init__(
        self, conn: Any, tenant: str, index_key: bytes, personal: PersonalDataCodec
    ) -> None:
        self._conn = conn
        self._tenant = tenant
        self._index_key = index_key
        self._personal = personal
        self.appended = False
        self.loaded_subjects: list[str] = []
        self._hashed: dict[str, bytes] = {}
        self._staged: tuple[Sequence[StreamWrite], list[Any]] | None = None

    def _hashes(self, keys: Sequence[str]) -> dict[bytes, str]:
        known = self._hashed
        for key in keys:
            if key not in known:
                known[key] = key_hash(self._index_key, self._tenant, key)
        return {known[key]: key for key in keys}

    async def find(self, keys: Sequence[str]) -> dict[str, int]:
        if not keys:
            return {}
        hashes = self._hashes(keys)
        rows = await self._conn.fetch(
            "SELECT key_hash, stream_id FROM import_fan_keys"
            " WHERE tenant_id = $1 AND key_hash = ANY($2::bytea[])",
            self._tenant,
            list(hashes),
        )
        return {hashes[row[0]]: _fan_id(row[1]) for row in rows}

    async def claim(self, claims: dict[str, int]) -> set[str]:
        hashes = self._hashes(list(claims))
        ordered = sorted(hashes)  # one order for every importer: fewer deadlocks
        rows = await self._conn.fetch(
            "INSERT INTO import_fan_keys (tenant_id, key_hash, stream_id)"
            " SELECT $1, c.key_hash, c.stream_id"
            " FROM unnest($2::bytea[], $3::text[]) AS c(key_hash, stream_id)"
            " ON CONFLICT DO NOTHING RETURNING key_hash",
            self._tenant,
            ordered,
            [fan_stream_id(claims[hashes[h]]) for h in ordered],
        )
        return {hashes[row[0]] for row in rows}

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
        position = await self._conn.fetchval(_APPEND_MANY, *arguments)
        self.appended = True
        return int(position)

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
        # Version 4 event ids, as uuid4() makes them, from one read of the OS's random source.
        random = os.urandom(16 * sum(len(write.events) for write in writes))
        offsets = iter(range(0, len(random), 16))
        for write in writes:
            events = write.events
            stream_id = write.stream_id
            expected = write.expected_version
            event_type = event_type_of(events[0]) if len(events) == 1 else ""
            if expected == 0 and event_type and seals_alone(event_type):
                event = events[0]
                at = next(offsets)
                event_id = UUID(bytes=random[at : at + 16], version=4)
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
            event_ids = [
                UUID(bytes=random[at : at + 16], version=4)
                # events first: zip stops at their end without taking another offset
                for _, at in zip(events, offsets, strict=False)
            ]
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


def _joined(values: list[str]) -> str:
    text = _SEPARATOR.join(values)
    if text.count(_SEPARATOR) != max(len(values) - 1, 0):
        raise ValueError("a stream id or event type holds the ASCII record separator")
    return text


def _fan_id(stream_id: str) -> int:
    return int(stream_id.removeprefix("fan-"))
