"""Inside one import batch's transaction: find fans through the write-side index, claim index
entries, load fans, and append every stream's events at once.

The append is the event store's unchecked one (adapters/postgres/event_store/in_transaction.py):
it skips the per-stream version read, because the expected-version check is the unique
(stream_id, version) index: a stream that moved on since it was loaded makes the insert fail,
the transaction roll back, and the batch re-run. The index entries the batch claims, updates
and frees are fragments of the same statement. Personal fields are sealed by the same
PersonalDataCodec.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from typing import Any
from uuid import UUID

import asyncpg

from adapters.postgres.event_store import in_transaction
from adapters.postgres.event_store.in_transaction import SEPARATOR, Fragment
from adapters.postgres.event_store.mapper import (
    EventRows,
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


def _claims(prefix: str) -> str:
    """An INSERT of index entries from four chr(30)-joined texts (key hashes, streams, row
    digests, versions) named after ``prefix``. seen_version: the key is the fan's own at that
    version (migrations/019). One order for every importer: fewer deadlocks."""
    texts = ", ".join(
        f"string_to_array(:{prefix}_{column}::text, chr(30))"
        for column in ("hashes", "streams", "digests", "versions")
    )
    return f"""
    INSERT INTO import_fan_keys
        (tenant_id, key_hash, stream_id, row_digest, fan_version, seen_version)
    SELECT :tenant, decode(c.key_hash, 'hex'), c.stream_id, decode(nullif(c.row_digest, ''), 'hex'),
           nullif(c.fan_version, '')::int, nullif(c.fan_version, '')::int
    FROM unnest({texts}) AS c(key_hash, stream_id, row_digest, fan_version)
    ORDER BY c.key_hash
    """


# The index writes of a batch, run by the statement that appends its events. Texts are
# chr(30)-joined, as the events' columns are (adapters/postgres/event_store/append_sql.py).
_INDEX_WRITES = (
    # A key another import holds fails the statement (unique violation): the batch re-runs.
    Fragment("claimed", _claims("claims")),
    Fragment("claimed_if_free", _claims("free_claims") + "ON CONFLICT DO NOTHING"),
    Fragment(
        "remembered",
        """
        UPDATE import_fan_keys k SET row_digest = decode(nullif(r.row_digest, ''), 'hex'),
                                     fan_version = nullif(r.fan_version, '')::int
        FROM unnest(string_to_array(:remembered_streams::text, chr(30)),
                    string_to_array(:remembered_digests::text, chr(30)),
                    string_to_array(:remembered_versions::text, chr(30)))
             AS r(stream_id, row_digest, fan_version)
        WHERE k.tenant_id = :tenant AND k.stream_id = r.stream_id
          -- One statement may change a row once: the released ones are only deleted.
          AND encode(k.key_hash, 'hex') <> ALL(string_to_array(:released_hashes::text, chr(30)))
        """,
    ),
    Fragment(
        "released",
        """
        -- Handles the batch renamed fans away from: freed, as an API rename frees them.
        DELETE FROM import_fan_keys k
        USING unnest(string_to_array(:released_hashes::text, chr(30)),
                     string_to_array(:released_streams::text, chr(30))) AS r(key_hash, stream_id)
        WHERE k.tenant_id = :tenant AND k.key_hash = decode(r.key_hash, 'hex')
          AND k.stream_id = r.stream_id
        """,
    ),
)

# A batch that meets these lost a race (a fan's stream moved on, an index key was taken):
# it is rolled back and re-run.
CONFLICTS = (
    asyncpg.UniqueViolationError,
    asyncpg.DeadlockDetectedError,
    asyncpg.SerializationError,
)

# An entry is unchanged if its fan's stream is still at the version the entry remembers.
_FIND = f"""
SELECT k.key_hash, k.stream_id, k.row_digest,
       {in_transaction.is_at_version("k.stream_id", "k.fan_version")}
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

    @property
    def connection(self) -> Any:
        """The batch's transaction, for a write that must commit or roll back with the batch:
        a member sync's cursor, a webhook's once-only key (adapters/postgres/platform_sync.py)."""
        return self._conn

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
        streams, keys = await in_transaction.load_streams_on(
            self._conn, self._personal, [fan_stream_id(fan_id) for fan_id in fan_ids]
        )
        self.loaded_subjects += keys
        fans: dict[int, Fan] = {}
        for stream_id, events in streams.items():
            if events[0].version != 1 or events[0].metadata.tenant != self._tenant:
                continue  # never another tenant's fan
            fan = None
            for recorded in events:
                fan = recorded.event.mutate(fan)
            if isinstance(fan, Fan):
                fans[_fan_id(stream_id)] = fan
        return fans

    async def stage(self, writes: Sequence[StreamWrite], ctx: CommandContext) -> None:
        """Encrypt and encode ``writes`` now; ``append`` of the same writes then only sends."""
        self._staged = (writes, await self._arguments(writes, ctx))

    async def append(self, writes: Sequence[StreamWrite], ctx: CommandContext) -> int:
        staged, self._staged = self._staged, None
        if staged is not None and staged[0] is writes:
            values = staged[1]
        else:
            values = await self._arguments(writes, ctx)
        try:
            position = await in_transaction.append_unchecked(
                self._conn, values | self._index_writes(), then=_INDEX_WRITES
            )
        except CONFLICTS as error:
            raise ConcurrencyError(f"import batch conflicted: {error}") from None
        self.appended = True
        self.position = position
        return self.position

    def _index_writes(self) -> dict[str, str]:
        """The parameters of ``_INDEX_WRITES``: claim index entries, update remembered ones,
        free released ones."""
        values = {"tenant": self._tenant}
        for prefix, claims in (("claims", self._claims), ("free_claims", self._claims_if_free)):
            values |= {
                f"{prefix}_hashes": SEPARATOR.join(key.hex() for key, _ in claims),
                f"{prefix}_streams": SEPARATOR.join(fan_stream_id(e.fan_id) for _, e in claims),
                f"{prefix}_digests": SEPARATOR.join(_hex(e.row_digest) for _, e in claims),
                f"{prefix}_versions": SEPARATOR.join(_text(e.version) for _, e in claims),
            }
        remembered = self._remembered
        return values | {
            "remembered_streams": SEPARATOR.join(fan_stream_id(e.fan_id) for e in remembered),
            "remembered_digests": SEPARATOR.join(_hex(e.row_digest) for e in remembered),
            "remembered_versions": SEPARATOR.join(_text(e.version) for e in remembered),
            "released_hashes": SEPARATOR.join(key.hex() for key, _ in self._released),
            "released_streams": SEPARATOR.join(fan_stream_id(f) for _, f in self._released),
        }

    async def _arguments(
        self, writes: Sequence[StreamWrite], ctx: CommandContext
    ) -> dict[str, Any]:
        """The append's parameters: every event, its personal fields sealed."""
        rows = EventRows(metadata=[ctx.metadata()])
        ids = rows.ids
        streams = rows.streams
        stream_types = rows.stream_types
        versions = rows.versions
        types = rows.event_types
        data = rows.data
        schemas = rows.schemas
        new_keys: list[tuple[str, bytes]] = []
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
            new_keys += [(subject, wrapped) for subject, (_, wrapped) in keys.new_keys.items()]
            ids += event_ids
            streams += [stream_id] * count
            stream_types += [write.stream_type] * count
            versions += range(expected + 1, expected + count + 1)
            types += event_types
            data += map(encode_json, field_list)
            schemas += map(schema_version, event_types)
        if alone:
            new_keys += personal.seal_new_streams(alone)
            for index, (*_, fields) in zip(alone_at, alone, strict=True):
                data[index] = encode_json(fields)
        rows.meta = [1] * len(ids)
        keys = in_transaction.KeyChanges(new_keys, [], personal.master_key_id)
        return in_transaction.event_arguments(rows) | in_transaction.key_arguments(keys)


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


def _hex(value: bytes | None) -> str:
    return "" if value is None else value.hex()


def _text(value: int | None) -> str:
    return "" if value is None else str(value)


def _fan_id(stream_id: str) -> int:
    return int(stream_id.removeprefix("fan-"))
