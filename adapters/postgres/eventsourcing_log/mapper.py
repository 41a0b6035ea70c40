"""What fancrm's log hands eventsourcing: notifications carrying their decoded event, the
mapper that passes that event on, and topics (eventsourcing's Python paths of the event
classes, or fancrm's stable type names) turned into the stable type names the log stores."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from eventsourcing.domain import DomainEventProtocol
from eventsourcing.persistence import (
    Mapper,
    MapperDeserialisationError,
    Notification,
    NotSupportedError,
    StoredEvent,
)
from eventsourcing.utils import get_topic, resolve_topic

from adapters.postgres.event_store.notifications import SealedEvent
from application.ports import RecordedEvent
from domain.events import EVENT_NAMES, EVENT_TYPES

REFUSED = (
    "fancrm's log takes events only from its own domain (the API, the workers, the import):"
    " this recorder reads it"
)


@dataclass(frozen=True)
class LogNotification(Notification):
    """``state`` is the event's fields as stored (personal ones sealed); ``recorded`` the event
    decoded, with its place in the log, metadata (tenant, actor...) and time."""

    recorded: RecordedEvent = field(compare=False, repr=False)


@dataclass(frozen=True)
class LogStoredEvent(StoredEvent):
    recorded: RecordedEvent = field(compare=False, repr=False)


class LogMapper(Mapper[str]):
    """Hands on the events the recorder decoded; there is nothing left to deserialise."""

    def to_domain_event(self, stored_event: StoredEvent) -> DomainEventProtocol[str]:
        recorded = getattr(stored_event, "recorded", None)
        if recorded is None:
            raise MapperDeserialisationError(f"not an event of fancrm's log: {stored_event!r}")
        event: DomainEventProtocol[str] = recorded.event
        return event

    def to_stored_event(self, domain_event: DomainEventProtocol[Any]) -> StoredEvent:
        raise NotSupportedError(REFUSED)


# Keyed by the stable type name: hashing an event class (its metaclass's) cost more.
_topics: dict[str, str] = {}


def topic_of(event_type: str) -> str:
    """The eventsourcing topic of the event class fancrm stores as ``event_type``."""
    topic = _topics.get(event_type)
    if topic is None:
        topic = _topics[event_type] = get_topic(EVENT_TYPES[event_type])
    return topic


def event_types(topics: Sequence[str]) -> list[str] | None:
    """The stable type names ``topics`` name (None: no filter). A topic that names no event
    of fancrm's matches nothing, as a topic nobody records does elsewhere."""
    if not topics:
        return None
    names = []
    for topic in topics:
        if topic in EVENT_TYPES:
            names.append(topic)
            continue
        try:
            name = EVENT_NAMES.get(resolve_topic(topic))
        except Exception:  # eventsourcing's TopicError and import errors alike
            name = None
        if name is not None:
            names.append(name)
    return names


def notification(sealed: SealedEvent) -> LogNotification:
    recorded = sealed.recorded
    return LogNotification(
        originator_id=recorded.stream_id,
        originator_version=recorded.version,
        topic=topic_of(recorded.event_type),
        state=sealed.data.encode(),
        id=sealed.seq,
        recorded=recorded,
    )
