"""Inside one import batch's transaction: find fans through the write-side index, claim index
entries, load fans, and append every stream's events at once.

Why not ``PostgresEventStore.append_all``: it sends one statement per stream, so a batch of
1,000 new fans costs 1,000 round trips. Here one statement inserts all the batch's events
(and the new fans' data keys); personal fields are encrypted by the same PersonalDataCodec,
and the expected-version check is the unique (stream_id, version) index: a stream that moved
on since it was loaded makes the insert fail, the transaction roll back, and the batch re-run.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any
from uuid import UUID, uuid4

import msgspec

from adapters.postgres.codec import encode_json, event_fields, event_type_of, schema_version
from adapters.postgres.event_store import to_recorded
from adapters.postgres.imports_index import key_hash
from adapters.postgres.personal_data import PersonalDataCodec
from application.context import CommandContext
from application.ports import StreamWrite
from domain.fan import Fan, fan_stream_id

_APPEND_MANY = """
WITH inserted AS (
    INSERT INTO events (event_id, stream_id, stream_type, version, event_type, data, metadata)
    SELECT e.event_id, e.stream_id, e.stream_type, e.version, e.event_type, e.data::jsonb,
           CASE WHEN e.schema_version = $12 THEN $13::jsonb
                ELSE $7::jsonb || jsonb_build_object('schema_version', e.schema_version) END
    FROM unnest($1::uuid[], $2::text[], $3::text[], $4::int[], $5::text[], $6::text[], $8::int[])
         WITH ORDINALITY AS e(event_id, stream_id, stream_type, version, event_type, data,
                              schema_version, n)
    ORDER BY e.n
    RETURNING position
), new_keys AS (
    INSERT INTO subject_keys (subject_id, wrapped_key, master_key_id)
    SELECT k.subject_id, k.wrapped_key, $11 FROM unnest($9::text[], $10::bytea[])
           AS k(subject_id, wrapped_key)
)
SELECT max(position) FROM inserted
"""


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

    async def append(self, writes: Sequence[StreamWrite], ctx: CommandContext) -> int:
        metadata = ctx.metadata()
        ids: list[UUID] = []
        streams: list[str] = []
        stream_types: list[str] = []
        versions: list[int] = []
        types: list[str] = []
        data: list[str] = []
        schemas: list[int] = []
        new_subjects: list[str] = []
        wrapped: list[bytes] = []
        protect = self._personal.protect
        for write in writes:
            events = write.events
            count = len(events)
            event_ids = [uuid4() for _ in events]
            event_types = [event_type_of(event) for event in events]
            fields = [event_fields(event) for event in events]
            keys = await protect(
                self._conn,
                write.stream_id,
                write.expected_version,
                list(zip(event_types, event_ids, fields, strict=True)),
            )
            for subject, (_, wrapped_key) in keys.new_keys.items():
                new_subjects.append(subject)
                wrapped.append(wrapped_key)
            ids += event_ids
            streams += [write.stream_id] * count
            stream_types += [write.stream_type] * count
            versions += range(write.expected_version + 1, write.expected_version + count + 1)
            types += event_types
            data += map(encode_json, fields)
            schemas += map(schema_version, event_types)
        position = await self._conn.fetchval(
            _APPEND_MANY,
            ids,
            streams,
            stream_types,
            versions,
            types,
            data,
            metadata,
            schemas,
            new_subjects,
            wrapped,
            self._personal.master_key_id,
            # Most events of a batch share a schema version: their metadata is one value
            # instead of one jsonb concatenation per row.
            schemas[0] if schemas else 1,
            msgspec.structs.replace(metadata, schema_version=schemas[0] if schemas else 1),
        )
        self.appended = True
        return int(position)


def _fan_id(stream_id: str) -> int:
    return int(stream_id.removeprefix("fan-"))
