"""The ports the application needs, as Protocols. Adapters implement them; tests use fakes."""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractAsyncContextManager
from datetime import datetime
from typing import Any, Protocol
from uuid import UUID, uuid4

import msgspec

from domain.base import DomainEvent


class EventMetadata(msgspec.Struct, frozen=True, kw_only=True):
    """Who and what caused an event. Stored in clear beside every event."""

    tenant: str
    actor: str
    correlation_id: str
    causation_id: str
    trace_id: str | None = None
    schema_version: int = 1


class RecordedEvent(msgspec.Struct, frozen=True, kw_only=True):
    """A domain event as the log holds it: decoded, with its place in the log."""

    position: int
    transaction_id: int
    event_id: UUID
    stream_id: str
    stream_type: str
    version: int
    event_type: str
    event: DomainEvent
    metadata: EventMetadata
    recorded_at: datetime
    # Personal fields that read back as None because their subject was erased.
    erased: tuple[str, ...] = ()


class Checkpoint(msgspec.Struct, frozen=True, order=True):
    """A place in the global log in commit order: (transaction id, position)."""

    transaction_id: int = 0
    position: int = 0


class ClaimHolder(msgspec.Struct, frozen=True):
    """The stream holding a unique claim, and a token that changes whenever it claims again."""

    stream_id: str
    token: str


class Claim(msgspec.Struct, frozen=True):
    """A value that one stream of a tenant holds alone (a fan's handle on a platform).

    The store keeps a keyed hash of ``key``, never ``key`` itself (it is personal data).
    ``replaces``: a holder the caller found, in the log, no longer holding the value: the
    claim takes it over if that holder has not claimed again since (its token unchanged)."""

    key: str
    replaces: ClaimHolder | None = None


class StreamWrite(msgspec.Struct, frozen=True):
    """Events one aggregate decided, to append after ``expected_version`` of its stream.

    ``claims`` and ``releases`` (keys this stream gives up) commit with the events, or
    nothing does: a claim another stream of the tenant holds raises ClaimTaken."""

    stream_id: str
    stream_type: str
    events: list[DomainEvent]
    expected_version: int
    event_ids: Sequence[UUID] | None = None
    # Metadata of this stream's events, when it differs from the rest of the append.
    metadata: EventMetadata | None = None
    claims: tuple[Claim, ...] = ()
    releases: tuple[str, ...] = ()


def event_ids_for(events: Sequence[DomainEvent], given: Sequence[UUID] | None) -> list[UUID]:
    """The ids an append gives ``events``: ``given``, one per event, or new ones."""
    if given is None:
        return [uuid4() for _ in events]
    if len(given) != len(events):
        raise ValueError("one event id per event")
    return list(given)


class OutboxEntry(msgspec.Struct, frozen=True, kw_only=True):
    """A message for a queue, stored in the command's transaction and relayed after commit.

    ``personal`` holds the body's personal fields: the store seals them with ``subject``'s
    key, so neither the outbox nor the queue holds them in clear."""

    queue: str
    message_id: str
    body: dict[str, Any]
    # The message stream's version once this entry's events are appended.
    stream_version: int | None = None
    subject: str | None = None
    personal: dict[str, Any] = {}
    attributes: dict[str, str] = {}


class EventStore(Protocol):
    async def load(
        self,
        stream_id: str,
        *,
        up_to_version: int | None = None,
        as_of: datetime | None = None,
    ) -> list[RecordedEvent]: ...

    async def append(
        self,
        stream_id: str,
        stream_type: str,
        events: Sequence[DomainEvent],
        *,
        expected_version: int,
        metadata: EventMetadata,
        event_ids: Sequence[UUID] | None = None,
    ) -> list[int]:
        """Append atomically after ``expected_version``; returns the events' positions.

        Raises ConcurrencyError if the stream is not at ``expected_version``. Appending event
        ids that are already stored is a no-op returning their original positions.
        """
        ...

    async def append_all(
        self,
        writes: Sequence[StreamWrite],
        *,
        metadata: EventMetadata,
        outbox: Sequence[OutboxEntry] = (),
        once: str | None = None,
    ) -> list[int]:
        """Append to several streams and add outbox rows in one transaction; with ``once``,
        only the first call with that key appends (later ones raise AlreadyProcessed)."""
        ...

    async def read_all(self, after: Checkpoint, limit: int) -> list[RecordedEvent]:
        """Events after ``after`` in commit order, never past an uncommitted transaction."""
        ...

    async def latest_event_type(self, stream_id: str, among: Sequence[str]) -> str | None:
        """The type name of the stream's newest committed event whose type is in ``among``;
        None if it has none. Cheap (no event is decoded): asked often, by the sender."""
        ...


class IdAllocator(Protocol):
    async def next_id(self, kind: str) -> int: ...

    async def next_ids(self, kind: str, count: int) -> list[int]: ...


class Sql(Protocol):
    """The slice of a database connection that projections use to write their tables."""

    async def execute(self, query: str, *args: Any) -> str: ...

    async def executemany(self, command: str, args: Any) -> None: ...

    async def fetchrow(self, query: str, *args: Any) -> Any: ...

    async def fetch(self, query: str, *args: Any) -> list[Any]: ...


class ProjectionStore(Protocol):
    """Where a projector reads the log and keeps its tables and checkpoint."""

    async def checkpoint(self, name: str) -> Checkpoint: ...

    def transaction(self, schema: str) -> AbstractAsyncContextManager[Sql]:
        """A transaction whose unqualified table names resolve to ``schema``."""
        ...

    async def claim(self, sql: Sql, name: str) -> Checkpoint:
        """Make this transaction the only one working for projector ``name`` until it ends,
        and return the checkpoint as the previous holder left it."""
        ...

    async def save_checkpoint(self, sql: Sql, name: str, checkpoint: Checkpoint) -> None: ...

    async def record_error(self, name: str, error: str) -> None: ...

    async def read_all(self, after: Checkpoint, limit: int) -> list[RecordedEvent]: ...

    async def listen(self) -> None:
        """Start listening for new events, so that no notification is missed after it."""
        ...

    async def wait_for_events(self, timeout: float) -> None:
        """Return when new events may be readable, or after ``timeout`` seconds."""
        ...
