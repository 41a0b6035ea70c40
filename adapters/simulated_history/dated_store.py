"""The event store as the application's handlers see it, with each event dated at the
simulated moment its command runs.

Why not a time-travel library: time-machine (or freezegun) moves the process's one clock, so
commands at different simulated times could never run at once, and a 20,000-fan history run
one command at a time takes far too long. Domain events take their timestamp from
eventsourcing's ``create_timestamp()`` when an aggregate decides; every handler then hands
them to its ``EventStore`` port to append. This wrapper is that port: it replaces each event's
timestamp (``dataclasses.replace``, as the events are frozen dataclasses) with the moment set
by ``at()`` in the calling task's context, so concurrent tasks each run at their own time,
and the handlers, aggregates and store are the application's own, unchanged.

Outbox rows are dropped: a simulated past message was sent in the past (the history records
its ``Sent`` outcome as the sender would), so there is nothing left to deliver.
"""

from __future__ import annotations

import contextlib
import contextvars
import dataclasses
from collections.abc import Iterator, Sequence
from datetime import datetime
from typing import Any

import msgspec

from application.ports import EventMetadata, EventStore, OutboxEntry, StreamWrite
from domain.base import DomainEvent

_now: contextvars.ContextVar[datetime | None] = contextvars.ContextVar(
    "simulated_now", default=None
)


@contextlib.contextmanager
def at(moment: datetime) -> Iterator[None]:
    token = _now.set(moment)
    try:
        yield
    finally:
        _now.reset(token)


def _dated(events: Sequence[DomainEvent]) -> list[DomainEvent]:
    moment = _now.get()
    if moment is None:
        raise RuntimeError("a simulated history's command ran outside `at(moment)`")
    # Events are frozen dataclasses (MetaDomainEvent), which mypy cannot see.
    return [dataclasses.replace(event, timestamp=moment) for event in events]  # type: ignore[type-var]


class DatedEventStore:
    def __init__(self, store: EventStore) -> None:
        self._store = store
        self.appended = 0  # events appended through this store
        self.last_position = 0

    def __getattr__(self, name: str) -> Any:
        # Reads (load, read_all, latest_event_type, ...) are the store's own.
        return getattr(self._store, name)

    async def append(
        self,
        stream_id: str,
        stream_type: str,
        events: Sequence[DomainEvent],
        *,
        expected_version: int,
        metadata: EventMetadata,
        event_ids: Sequence[Any] | None = None,
    ) -> list[int]:
        positions = await self._store.append(
            stream_id,
            stream_type,
            _dated(events),
            expected_version=expected_version,
            metadata=metadata,
            event_ids=event_ids,
        )
        self._count(positions)
        return positions

    async def append_all(
        self,
        writes: Sequence[StreamWrite],
        *,
        metadata: EventMetadata,
        outbox: Sequence[OutboxEntry] = (),
        once: str | None = None,
    ) -> list[int]:
        dated = [
            write if not write.events else _replace_events(write, _dated(write.events))
            for write in writes
        ]
        positions = await self._store.append_all(dated, metadata=metadata, once=once)
        self._count(positions)
        return positions

    def _count(self, positions: list[int]) -> None:
        self.appended += len(positions)
        self.last_position = max(self.last_position, *positions, 0)


def _replace_events(write: StreamWrite, events: list[DomainEvent]) -> StreamWrite:
    return msgspec.structs.replace(write, events=events)
