"""fancrm's log as eventsourcing's ApplicationRecorder: read-only, numbered by the event chain.

Notification ids are the chain's ``seq`` (adapters/postgres/event_store/notifications.py says
why: commit order, ids that only grow, no late commit slipped in behind a reader), so only
sealed events are notified. Each notification carries its event decoded as the store decodes
it (stable type names, upcasting, personal fields opened by the master key if one is given,
never an erased fan's), and ``LogMapper`` hands that event on. Topics are the event classes'
eventsourcing topics (``get_topic(PurchaseRecorded)``); a stable type name (``"PurchaseRecorded"``)
filters as well. The log takes events only from fancrm's domain: inserts are refused.
"""

from __future__ import annotations

import concurrent.futures
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

import asyncpg
from eventsourcing.domain import DomainEventProtocol
from eventsourcing.persistence import (
    ApplicationRecorder,
    Mapper,
    MapperDeserialisationError,
    Notification,
    NotSupportedError,
    StoredEvent,
)
from eventsourcing.utils import get_topic, resolve_topic

from adapters.postgres.event_store import PostgresEventStore
from adapters.postgres.event_store.notifications import (
    SealedEvent,
    last_seq,
    sealed_events,
)
from adapters.postgres.eventsourcing_log.loop import LoopThread
from adapters.postgres.personal_data import PersonalDataCodec
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


_topics: dict[type, str] = {}


def topic_of(event_class: type) -> str:
    topic = _topics.get(event_class)
    if topic is None:
        topic = _topics[event_class] = get_topic(event_class)
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


class LogRecorder(ApplicationRecorder):
    def __init__(
        self,
        loop: LoopThread,
        pool: asyncpg.Pool,
        personal: PersonalDataCodec | None,
        tenant: str | None = None,
    ) -> None:
        self._loop = loop
        self._pool = pool
        self._personal = personal
        self.tenant = tenant

    def insert_events(self, stored_events: Sequence[StoredEvent], **kwargs: Any) -> None:
        raise NotSupportedError(REFUSED)

    def select_events(
        self,
        originator_id: UUID | str,
        *,
        gt: int | None = None,
        lte: int | None = None,
        desc: bool = False,
        limit: int | None = None,
    ) -> list[StoredEvent]:
        # A stream, as the store loads it (every version it holds, sealed yet or not).
        store = PostgresEventStore(self._pool, self._personal or PersonalDataCodec(None))
        recorded = self._loop.run(store.load(str(originator_id), up_to_version=lte))
        found = [r for r in recorded if gt is None or r.version > gt]
        if self.tenant is not None:
            found = [r for r in found if r.metadata.tenant == self.tenant]
        found.sort(key=lambda r: r.version, reverse=desc)
        return [
            LogStoredEvent(r.stream_id, r.version, topic_of(type(r.event)), b"", r)
            for r in found[:limit]
        ]

    def select_notifications(
        self,
        start: int | None,
        limit: int,
        stop: int | None = None,
        topics: Sequence[str] = (),
        *,
        inclusive_of_start: bool = True,
    ) -> list[Notification]:
        after = 0 if start is None else start - 1 if inclusive_of_start else start
        return self.fetch(after, limit, stop, topics).result()

    def fetch(
        self, after: int, limit: int, stop: int | None = None, topics: Sequence[str] = ()
    ) -> concurrent.futures.Future[list[Notification]]:
        """The notifications after ``after``, read and decoded on the loop: the caller may
        process a batch while the next one is read (LogSubscription does)."""
        return self._loop.submit(self._notifications(after, limit, stop, event_types(topics)))

    async def _notifications(
        self, after: int, limit: int, stop: int | None, types: list[str] | None
    ) -> list[Notification]:
        if types == [] or limit < 1:
            return []
        found = await sealed_events(
            self._pool,
            self._personal,
            after=after,
            limit=limit,
            stop=stop,
            event_types=types,
            tenant=self.tenant,
        )
        return [_notification(sealed) for sealed in found]

    def max_notification_id(self) -> int | None:
        return self._loop.run(last_seq(self._pool, self.tenant))

    async def close(self) -> None:
        await self._pool.close()

    def subscribe(self, gt: int | None = None, topics: Sequence[str] = ()) -> Any:
        from adapters.postgres.eventsourcing_log.subscription import LogSubscription

        return LogSubscription(self, gt, topics)


def _notification(sealed: SealedEvent) -> LogNotification:
    recorded = sealed.recorded
    return LogNotification(
        originator_id=recorded.stream_id,
        originator_version=recorded.version,
        topic=topic_of(type(recorded.event)),
        state=sealed.data.encode(),
        id=sealed.seq,
        recorded=recorded,
    )
