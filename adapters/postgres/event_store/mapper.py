"""Domain events <-> stored rows, with msgspec.

Stored data holds the event's own fields only: the stream id and version live in their columns,
and eventsourcing's ``originator_topic`` (a Python path) is never stored, so classes can move.
Older shapes are upcast on read by the functions in ``UPCASTERS``; the log is never rewritten.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

import msgspec
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from eventsourcing.domain import CanInitAggregate, get_topic

from adapters.postgres.personal_data import PersonalDataCodec, SealedFields
from application.ports import EventMetadata, RecordedEvent, StreamWrite, event_ids_for
from domain.base import DomainEvent
from domain.events import EVENT_NAMES, EVENT_TYPES, SCHEMA_VERSIONS

_ENVELOPE = ("originator_id", "originator_version", "originator_topic")
_encoder = msgspec.json.Encoder()

# (event type, stored schema version) -> function turning that shape into the next version's.
UPCASTERS: dict[tuple[str, int], Callable[[dict[str, Any]], dict[str, Any]]] = {}


class UnknownEventType(Exception):
    pass


def event_type_of(event: DomainEvent) -> str:
    try:
        return EVENT_NAMES[type(event)]
    except KeyError:
        raise UnknownEventType(f"{type(event).__qualname__} has no stable name") from None


def event_fields(event: DomainEvent) -> dict[str, Any]:
    """The event's own fields as JSON-ready builtins (no stream id, version or topic)."""
    fields: dict[str, Any] = msgspec.to_builtins(event)
    for key in _ENVELOPE:
        fields.pop(key, None)
    return fields


def encode_json(fields: dict[str, Any]) -> str:
    return _encoder.encode(fields).decode()


def schema_version(event_type: str) -> int:
    return SCHEMA_VERSIONS[event_type]


# An event on its way in: (stable type name, event id, its own fields as builtins). The fields
# are sealed in place (adapters/postgres/personal_data.py) before they are encoded.
TypedEvent = tuple[str, UUID, dict[str, Any]]


def typed_events(writes: Sequence[StreamWrite]) -> list[list[TypedEvent]]:
    """Every write's events as ``TypedEvent``, with the ids ``event_ids_for`` gives them."""
    return [
        [
            (event_type_of(e), event_id, event_fields(e))
            for e, event_id in zip(w.events, event_ids_for(w.events, w.event_ids), strict=True)
        ]
        for w in writes
    ]


@dataclass(slots=True)
class EventRows:
    """The rows of one append, column by column in insert order. ``meta`` numbers each
    event's metadata in ``metadata`` (from 1): the events of one command share one."""

    ids: list[UUID] = field(default_factory=list)
    streams: list[str] = field(default_factory=list)
    stream_types: list[str] = field(default_factory=list)
    versions: list[int] = field(default_factory=list)
    event_types: list[str] = field(default_factory=list)
    data: list[str] = field(default_factory=list)
    schemas: list[int] = field(default_factory=list)
    meta: list[int] = field(default_factory=list)
    metadata: list[EventMetadata] = field(default_factory=list)

    def stamped_metadata(self) -> tuple[list[EventMetadata], list[int]]:
        """Each distinct (metadata, schema version) once, the version written into it, and
        which of them each event has (from 1): the metadata stored with each event."""
        replace = msgspec.structs.replace
        if len(self.metadata) == 1:  # one command's events (an import batch: thousands)
            versions = set(self.schemas)
            if len(versions) == 1:
                return [replace(self.metadata[0], schema_version=self.schemas[0])], self.meta
            number_of = {schema: n for n, schema in enumerate(sorted(versions), 1)}
            stamped = [replace(self.metadata[0], schema_version=s) for s in number_of]
            return stamped, [number_of[schema] for schema in self.schemas]
        stamped = []
        numbers: dict[tuple[int, int], int] = {}
        index = []
        for meta, schema in zip(self.meta, self.schemas, strict=True):
            number = numbers.get((meta, schema))
            if number is None:
                number = numbers[(meta, schema)] = len(stamped) + 1
                stamped.append(replace(self.metadata[meta - 1], schema_version=schema))
            index.append(number)
        return stamped, index


def event_rows(
    writes: Sequence[StreamWrite], typed: list[list[TypedEvent]], metadata: EventMetadata
) -> EventRows:
    """The rows of ``writes`` (their fields sealed already), each write's events after its
    expected version, with the write's own metadata or else ``metadata``."""
    if len(writes) == 1:  # most commands: no lists to extend
        write, items = writes[0], typed[0]
        count = len(items)
        first = write.expected_version + 1
        return EventRows(
            [event_id for _, event_id, _ in items],
            [write.stream_id] * count,
            [write.stream_type] * count,
            list(range(first, first + count)),
            [event_type for event_type, _, _ in items],
            [encode_json(fields) for _, _, fields in items],
            [SCHEMA_VERSIONS[event_type] for event_type, _, _ in items],
            [1] * count,
            [write.metadata or metadata],
        )
    rows = EventRows()
    numbers: dict[int, int] = {}
    for write, items in zip(writes, typed, strict=True):
        meta = write.metadata or metadata
        number = numbers.get(id(meta))
        if number is None:
            rows.metadata.append(meta)
            number = numbers[id(meta)] = len(rows.metadata)
        count = len(items)
        rows.ids += [event_id for _, event_id, _ in items]
        rows.streams += [write.stream_id] * count
        rows.stream_types += [write.stream_type] * count
        first = write.expected_version + 1
        rows.versions += range(first, first + count)
        rows.event_types += [event_type for event_type, _, _ in items]
        rows.data += [encode_json(fields) for _, _, fields in items]
        rows.schemas += [schema_version(event_type) for event_type, _, _ in items]
        rows.meta += [number] * count
    return rows


def decode_event(
    event_type: str, stream_id: str, version: int, data: dict[str, Any], schema: int
) -> DomainEvent:
    try:
        cls = EVENT_TYPES[event_type]
    except KeyError:
        raise UnknownEventType(event_type) from None
    current = SCHEMA_VERSIONS[event_type]
    while schema < current:
        data = UPCASTERS[(event_type, schema)](data)
        schema += 1
    fields = dict(data, originator_id=stream_id, originator_version=version)
    if issubclass(cls, CanInitAggregate):
        fields["originator_topic"] = _aggregate_topic(cls)
    return msgspec.convert(fields, cls, strict=False)


def is_current(event_type: str, schema: int) -> bool:
    """Whether a stored event of this schema version decodes without upcasting."""
    try:
        return schema >= SCHEMA_VERSIONS[event_type]
    except KeyError:
        raise UnknownEventType(event_type) from None


def decode_event_json(
    event_type: str, stream_id: str, version: int, data: str, before: str = "", after: str = ""
) -> DomainEvent:
    """``decode_event`` for an event of the current schema whose stored fields are JSON text
    (a jsonb column read as text), decoded straight into the event class: no dict is built
    and converted, which cost about 1 us more per event of a replay.

    ``before`` and ``after`` are more members (``"name": value, ...``) put before and after
    the stored ones: of two members with one name the later one wins (personal fields as the
    caller revealed them). The envelope (stream id, version, topic) comes last, from the row,
    as ``decode_event`` puts it over the stored fields."""
    decode, topic = _json_decoder(event_type)
    text = "{"
    if before:
        text += before + ","
    if len(data) > 2:  # "{}" has no members
        text += data[1:-1] + ","
    if after:
        text += after + ","
    stream = _json_string(stream_id)
    return decode(f'{text}"originator_id":{stream},"originator_version":{version:d}{topic}}}')


def _json_string(text: str) -> str:
    # Stream ids ("fan-42", "message-<uuid>") need no escaping: quoted as they are. Anything
    # JSON must escape (quotes, backslashes, control characters) goes through the encoder.
    if text.isprintable() and '"' not in text and "\\" not in text:
        return '"' + text + '"'
    return _encoder.encode(text).decode()


_json_decoders: dict[str, tuple[Callable[[str], DomainEvent], str]] = {}


def _json_decoder(event_type: str) -> tuple[Callable[[str], DomainEvent], str]:
    found = _json_decoders.get(event_type)
    if found is None:
        try:
            cls = EVENT_TYPES[event_type]
        except KeyError:
            raise UnknownEventType(event_type) from None
        topic = ""
        if issubclass(cls, CanInitAggregate):
            topic = ',"originator_topic":' + _encoder.encode(_aggregate_topic(cls)).decode()
        # strict=False as decode_event converts: the same values are accepted.
        found = _json_decoders[event_type] = (msgspec.json.Decoder(cls, strict=False).decode, topic)
    return found


_topics: dict[type, str] = {}


def _aggregate_topic(cls: type) -> str:
    # Created events are nested in their aggregate class: Fan.Created -> Fan.
    topic = _topics.get(cls)
    if topic is None:
        owner_name = cls.__qualname__.rsplit(".", 1)[0]
        module = __import__(cls.__module__, fromlist=[owner_name])
        topic = _topics[cls] = get_topic(getattr(module, owner_name))
    return topic


_decode_metadata = functools.lru_cache(maxsize=4096)(msgspec.json.Decoder(EventMetadata).decode)
_decode_data = msgspec.json.Decoder(dict[str, Any]).decode


def from_text(
    row: Any, sealed: SealedFields | None, keys: dict[str, AESGCM | None]
) -> RecordedEvent:
    """A row read with ``recorder.COLUMNS`` (data as text), given ``PersonalDataCodec.sealed_in``
    of it and the keys that opens."""
    (
        position,
        transaction_id,
        event_id,
        stream_id,
        stream_type,
        version,
        event_type,
        data,
        raw_metadata,
        recorded_at,
        *_,  # a reader's own columns after these (the event chain's seq: notifications.py)
    ) = row
    metadata = _decode_metadata(raw_metadata)
    if not is_current(event_type, metadata.schema_version):
        # An old shape: upcasters work on the fields as a dict, decrypted.
        return to_recorded(dict(row.items(), data=_decode_data(data)), keys)
    before, after, erased = PersonalDataCodec.reveal_json(event_type, sealed, event_id, keys)
    return RecordedEvent(
        position=position,
        transaction_id=transaction_id,
        event_id=event_id,
        stream_id=stream_id,
        stream_type=stream_type,
        version=version,
        event_type=event_type,
        event=decode_event_json(event_type, stream_id, version, data, before, after),
        metadata=metadata,
        recorded_at=recorded_at,
        erased=erased,
    )


def to_recorded(row: Any, keys: dict[str, AESGCM | None]) -> RecordedEvent:
    """A row whose data is a dict (jsonb as the pool decodes it); metadata as text or dict."""
    raw = row["metadata"]
    metadata = (
        _decode_metadata(raw) if isinstance(raw, str) else msgspec.convert(raw, EventMetadata)
    )
    data, erased = PersonalDataCodec.reveal(
        row["event_type"], row["stream_id"], row["event_id"], row["data"], keys
    )
    return RecordedEvent(
        position=row["position"],
        transaction_id=row["transaction_id"],
        event_id=row["event_id"],
        stream_id=row["stream_id"],
        stream_type=row["stream_type"],
        version=row["version"],
        event_type=row["event_type"],
        event=decode_event(
            row["event_type"], row["stream_id"], row["version"], data, metadata.schema_version
        ),
        metadata=metadata,
        recorded_at=row["recorded_at"],
        erased=erased,
    )
