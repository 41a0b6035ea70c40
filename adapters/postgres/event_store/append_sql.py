"""The append statement, in fragments: the one ``INSERT INTO events`` of the code base, the
expected-version check, the subjects' data keys, the outbox rows, and whatever the caller adds
(an Idempotency-Key reservation, the import's index claims), composed per shape.

The event columns travel as one text each, their values joined by the ASCII record separator
(chr(30)): the driver encodes an array element by element, a text in one go, which made a
1,000-event batch's arrays the largest cost of an import (bench/import.py). None of these
values can hold the separator: JSON escapes control characters, stream ids and type names are
checked (``joined``), versions are digits, keys go as hex. Event ids stay an array (uuid[]):
the driver encodes those natively, faster than their text. Metadata is a short array of the
append's distinct metadata values, each already stamped with its schema version, indexed
per event: no jsonb is built per row.

All sub-statements of one statement commit together or not at all, which is what makes each
append one round trip.
"""

from __future__ import annotations

import functools

from adapters.postgres.event_store.composition import Fragment, Statement, compose

SEPARATOR = chr(30)


def joined(values: list[str]) -> str:
    """``values`` as one parameter text; refuses a value that holds the separator."""
    text = SEPARATOR.join(values)
    if text.count(SEPARATOR) != max(len(values) - 1, 0):
        raise ValueError("a stream id, type name or subject holds the ASCII record separator")
    return text


def _texts(name: str) -> str:
    return f"string_to_array(:{name}::text, chr(30))"


# A stream that is not at its expected version: none may be, or nothing is inserted.
MOVED = Fragment(
    "moved",
    f"""
    SELECT 1 FROM unnest({_texts("checked_streams")}, {_texts("expected_versions")}::int[])
         AS x(stream_id, expected)
    WHERE (SELECT coalesce(max(version), 0) FROM events WHERE stream_id = x.stream_id)
          <> x.expected
    LIMIT 1
    """,
)

INSERTED = Fragment(
    "inserted",
    f"""
    INSERT INTO events (event_id, stream_id, stream_type, version, event_type, data, metadata)
    SELECT e.event_id, e.stream_id, e.stream_type, e.version, e.event_type, e.data::jsonb,
           (:metadata::jsonb[])[e.meta]
    FROM unnest(:event_ids::uuid[], {_texts("event_streams")}, {_texts("stream_types")},
                {_texts("versions")}::int[], {_texts("event_types")}, {_texts("data")},
                {_texts("meta")}::int[])
         WITH ORDINALITY AS e(event_id, stream_id, stream_type, version, event_type, data,
                              meta, n)
    WHERE EXISTS (SELECT 1 FROM allowed)
    ORDER BY e.n
    RETURNING position
    """,
)

NEW_KEYS = Fragment(
    "new_keys",
    f"""
    INSERT INTO subject_keys (subject_id, wrapped_key, master_key_id)
    SELECT k.subject_id, decode(k.wrapped_key, 'hex'), :master_key_id
    FROM unnest({_texts("new_subjects")}, {_texts("wrapped_keys")}) AS k(subject_id, wrapped_key)
    WHERE EXISTS (SELECT 1 FROM inserted)
    """,
)

DESTROYED_KEYS = Fragment(
    "destroyed_keys",
    f"""
    INSERT INTO subject_keys (subject_id, wrapped_key, master_key_id, destroyed_at)
    SELECT s.subject_id, NULL, NULL, now() FROM unnest({_texts("destroyed_subjects")})
         AS s(subject_id)
    WHERE EXISTS (SELECT 1 FROM inserted)
    ON CONFLICT (subject_id) DO UPDATE
    SET wrapped_key = NULL, master_key_id = NULL, destroyed_at = now()
    """,
)

# The command's outbox rows: committed with its events, and only when they go in.
OUTBOXED = Fragment(
    "outboxed",
    """
    INSERT INTO outbox (queue, message_id, body, attributes, stream_version)
    SELECT o.queue, o.message_id, o.body, o.attributes, o.stream_version
    FROM unnest(:outbox_queues::text[], :outbox_message_ids::text[], :outbox_bodies::text[],
                :outbox_attributes::jsonb[], :outbox_stream_versions::int[])
         WITH ORDINALITY AS o(queue, message_id, body, attributes, stream_version, n)
    WHERE EXISTS (SELECT 1 FROM allowed)
    ORDER BY o.n
    """,
)

POSITIONS = "SELECT position FROM inserted ORDER BY position"
LAST_POSITION = "SELECT max(position) FROM inserted"


@functools.cache
def append_statement(
    *,
    checked: bool,
    outbox: bool = False,
    new_keys: bool = True,
    destroys_keys: bool = False,
    guards: tuple[Fragment, ...] = (),
    then: tuple[Fragment, ...] = (),
    select: str = POSITIONS,
) -> Statement:
    """The append of one shape.

    ``checked``: every stream must be at its expected version (else nothing is inserted);
    without it the unique (stream_id, version) index is the check, and a stream that moved on
    fails the statement. ``new_keys``, ``destroys_keys``: whether the append stores or
    destroys data keys. ``guards``: fragments that must each return a row for anything to be
    inserted (they may read ``moved``). ``then``: fragments after the insert (they may read
    ``inserted``)."""
    conditions = ["NOT EXISTS (SELECT 1 FROM moved)"] if checked else []
    conditions += [f"EXISTS (SELECT 1 FROM {guard.name})" for guard in guards]
    allowed = Fragment("allowed", "SELECT 1 WHERE " + (" AND ".join(conditions) or "true"))
    fragments = [MOVED] if checked else []
    fragments += [*guards, allowed, INSERTED]
    if new_keys:
        fragments.append(NEW_KEYS)
    if destroys_keys:
        fragments.append(DESTROYED_KEYS)
    if outbox:
        fragments.append(OUTBOXED)
    return compose((*fragments, *then), select)
