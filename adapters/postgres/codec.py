"""Domain events <-> stored rows, with msgspec.

Stored data holds the event's own fields only: the stream id and version live in their columns,
and eventsourcing's ``originator_topic`` (a Python path) is never stored, so classes can move.
Older shapes are upcast on read by the functions in ``UPCASTERS``; the log is never rewritten.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import msgspec
from eventsourcing.domain import CanInitAggregate, get_topic

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


_topics: dict[type, str] = {}


def _aggregate_topic(cls: type) -> str:
    # Created events are nested in their aggregate class: Fan.Created -> Fan.
    topic = _topics.get(cls)
    if topic is None:
        owner_name = cls.__qualname__.rsplit(".", 1)[0]
        module = __import__(cls.__module__, fromlist=[owner_name])
        topic = _topics[cls] = get_topic(getattr(module, owner_name))
    return topic
