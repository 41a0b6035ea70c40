"""Every SQL statement on the ``events`` table: appends (append_sql.py composes them), stream
loads, the global log in commit order, and the narrow questions the store and the import ask.
Each function takes the connection (or pool) to run on: a caller's transaction is simply its
connection.

Appending stream by stream cost two or three round trips per stream: a campaign chunk of 500
messages made 1,000 to 2,000 of them. Here one statement checks every stream's expected
version and inserts all the events, the new data keys, the destroyed ones and the outbox rows.
The checks are all-or-nothing: a single stream that moved on inserts nothing (the caller
raises ConcurrencyError); the unique (stream_id, version) index still catches a writer that
commits in between.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple
from uuid import UUID

from adapters.postgres import idempotency_keys
from adapters.postgres.event_store.append_sql import (
    LAST_POSITION,
    SEPARATOR,
    append_statement,
    joined,
)
from adapters.postgres.event_store.composition import Fragment
from adapters.postgres.event_store.mapper import EventRows

# Metadata comes back as text and is decoded straight into EventMetadata (a cache serves the
# many events of one command, which share it): decoding jsonb into a dict and converting that
# cost five times as much, on every event of a replay. Data comes back as text too, decoded
# straight into its event class (mapper.from_text reads these columns by place).
COLUMNS = (
    "position, transaction_id, event_id, stream_id, stream_type, version, event_type,"
    " data::text AS data, metadata::text AS metadata, recorded_at"
)

_LOAD = f"""
SELECT {COLUMNS} FROM events
WHERE stream_id = $1
  AND ($2::int IS NULL OR version <= $2)
  AND ($3::timestamptz IS NULL OR recorded_at <= $3)
ORDER BY version
"""

_LOAD_STREAMS = (
    f"SELECT {COLUMNS} FROM events WHERE stream_id = ANY($1::text[]) ORDER BY stream_id, version"
)

# Why (transaction id, position) and the snapshot's xmin: see store.py.
_READ_ALL = f"""
SELECT {COLUMNS} FROM events
WHERE (transaction_id, position) > ($1::xid8, $2)
  AND transaction_id < pg_snapshot_xmin(pg_current_snapshot())
ORDER BY transaction_id, position
LIMIT $3
"""

_HEAD = """
SELECT transaction_id, position FROM events
WHERE transaction_id < pg_snapshot_xmin(pg_current_snapshot())
ORDER BY transaction_id DESC, position DESC LIMIT 1
"""

# The stream's (stream_id, version) index read backwards: it stops at the first match, and
# only the type is read, never the event's data.
_LATEST_EVENT_TYPE = """
SELECT event_type FROM events WHERE stream_id = $1 AND event_type = ANY($2::text[])
ORDER BY version DESC LIMIT 1
"""

_POSITIONS_OF = (
    "SELECT event_id, position FROM events WHERE event_id = ANY($1::uuid[]) AND stream_id = $2"
)

_STREAM_VERSION = "SELECT coalesce(max(version), 0) FROM events WHERE stream_id = $1"

_CLAIM_ONCE = "INSERT INTO processed_once (key) VALUES ($1) ON CONFLICT DO NOTHING RETURNING true"


# The request's Idempotency-Key reservation, completed by its append (idempotency_keys.py).
_RESERVED_GUARDS = (Fragment("reserved", idempotency_keys.RESERVED_CTE),)


class KeyChanges(NamedTuple):
    """The subjects' data keys an append stores (subject, wrapped key) and destroys."""

    new: list[tuple[str, bytes]]
    destroyed: list[str]
    master_key_id: str | None


class OutboxRows(NamedTuple):
    queues: list[str]
    message_ids: list[str]
    bodies: list[str]  # sealed already
    attributes: list[dict[str, str]]
    stream_versions: list[int | None]


def event_arguments(rows: EventRows) -> dict[str, Any]:
    """The insert's parameters for ``rows``. Only the stream ids are checked for the
    separator: type names are the code's own, data is JSON (which escapes it), subjects are
    stream ids."""
    metadata, meta = rows.stamped_metadata()
    join = SEPARATOR.join
    return {
        "event_ids": rows.ids,
        "event_streams": joined(rows.streams),
        "stream_types": join(rows.stream_types),
        "versions": join(map(str, rows.versions)),
        "event_types": join(rows.event_types),
        "data": join(rows.data),
        "meta": join(map(str, meta)),
        "metadata": metadata,
    }


def key_arguments(keys: KeyChanges) -> dict[str, Any]:
    return {
        "new_subjects": SEPARATOR.join([subject for subject, _ in keys.new]),
        "wrapped_keys": SEPARATOR.join([wrapped.hex() for _, wrapped in keys.new]),
        "master_key_id": keys.master_key_id,
        "destroyed_subjects": SEPARATOR.join(keys.destroyed),
    }


async def append(
    conn: Any,
    expected: Sequence[tuple[str, int]],
    rows: EventRows,
    keys: KeyChanges,
    outbox: OutboxRows | None = None,
    reservation: idempotency_keys.Reservation | None = None,
) -> list[int]:
    """Insert ``rows`` if every (stream, version) of ``expected`` holds, with the key changes,
    the outbox rows, and the completed ``reservation`` (then only while the request holds
    it), all in one statement. The events' positions; none if a stream was not where
    expected. A stream expected new (version 0) that exists fails the statement instead
    (UniqueViolationError)."""
    values = event_arguments(rows)
    # Streams expected new need no version read: their first version's unique index entry
    # is the check. A stream expected further on might also be behind, which only the read
    # sees (inserting after a gap would succeed); the reservation's guard reads it too.
    checked = reservation is not None or any(version for _, version in expected)
    if checked:
        values["checked_streams"] = SEPARATOR.join([stream for stream, _ in expected])
        values["expected_versions"] = SEPARATOR.join([str(version) for _, version in expected])
    if keys.new or keys.destroyed:
        values.update(key_arguments(keys))
    if outbox is not None:
        values.update(
            outbox_queues=outbox.queues,
            outbox_message_ids=outbox.message_ids,
            outbox_bodies=outbox.bodies,
            outbox_attributes=outbox.attributes,
            outbox_stream_versions=outbox.stream_versions,
        )
    if reservation is not None:
        values.update(idempotency_keys.reserved_arguments(reservation))
    statement = append_statement(
        checked=checked,
        outbox=outbox is not None,
        new_keys=bool(keys.new),
        destroys_keys=bool(keys.destroyed),
        guards=_RESERVED_GUARDS if reservation is not None else (),
    )
    found = await conn.fetch(statement.sql, *statement.arguments(values))
    return [row[0] for row in found]


async def append_unchecked(
    conn: Any, values: Mapping[str, Any], then: tuple[Fragment, ...] = ()
) -> int:
    """Insert the events of ``values`` (``event_arguments`` and ``key_arguments``) and run
    ``then`` (fragments with their own parameters in ``values``) in one statement, without
    reading any stream's version: a stream that moved on since it was read fails the statement
    on the unique (stream_id, version) index. The last position inserted."""
    statement = append_statement(
        checked=False, destroys_keys=False, then=then, select=LAST_POSITION
    )
    return int(await conn.fetchval(statement.sql, *statement.arguments(values)))


async def load(db: Any, stream_id: str, up_to_version: int | None, as_of: Any) -> list[Any]:
    """The stream's rows in version order, up to a version and a time if given."""
    return list(await db.fetch(_LOAD, stream_id, up_to_version, as_of))


async def load_streams(db: Any, stream_ids: Sequence[str]) -> list[Any]:
    """The rows of every stream, by stream then version."""
    return list(await db.fetch(_LOAD_STREAMS, list(stream_ids)))


async def read_all(db: Any, transaction_id: int, position: int, limit: int) -> list[Any]:
    """Up to ``limit`` rows after (transaction id, position), in commit order."""
    return list(await db.fetch(_READ_ALL, transaction_id, position, limit))


async def head(db: Any) -> tuple[int, int] | None:
    """(transaction id, position) of the newest row a reader of the log can reach now."""
    row = await db.fetchrow(_HEAD)
    return (row[0], row[1]) if row else None


async def latest_event_type(db: Any, stream_id: str, among: Sequence[str]) -> str | None:
    value = await db.fetchval(_LATEST_EVENT_TYPE, stream_id, list(among))
    return None if value is None else str(value)


async def positions_of(db: Any, stream_id: str, event_ids: Sequence[UUID]) -> dict[UUID, int]:
    """The positions of those of the events that the stream holds."""
    rows = await db.fetch(_POSITIONS_OF, list(event_ids), stream_id)
    return {row[0]: row[1] for row in rows}


async def stream_version(db: Any, stream_id: str) -> int:
    return int(await db.fetchval(_STREAM_VERSION, stream_id))


async def claim_once(conn: Any, key: str) -> bool:
    """Record ``key`` as processed in the caller's transaction; False if it already was."""
    return bool(await conn.fetchval(_CLAIM_ONCE, key))


def is_at_version(stream_id: str, version: str) -> str:
    """A SQL condition: the stream named by the expression ``stream_id`` is at the version
    the expression ``version`` gives (false for a NULL version)."""
    return (
        f"({version} IS NOT NULL AND {version} = "
        f"(SELECT max(e.version) FROM events e WHERE e.stream_id = {stream_id}))"
    )
