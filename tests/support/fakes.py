"""Small fakes implementing the application's ports, for unit tests of handlers."""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from datetime import UTC, datetime
from uuid import UUID, uuid4

from application.context import CommandContext
from application.errors import AlreadyProcessed, ClaimTaken, ConcurrencyError
from application.ports import (
    Checkpoint,
    ClaimHolder,
    EventMetadata,
    OutboxEntry,
    RecordedEvent,
    StreamWrite,
)
from domain.base import DomainEvent
from domain.events import EVENT_NAMES


class InMemoryEventStore:
    def __init__(self) -> None:
        self.log: list[RecordedEvent] = []
        self._positions = itertools.count(1)
        # Lets a test slip another writer's events in between a handler's load and append.
        self.before_append: list[object] = []
        # Outbox entries committed with their events by append_all, in order.
        self.outbox: list[OutboxEntry] = []
        self.processed: set[str] = set()
        # Unique claims: (tenant, key) -> its holder. The real store keeps keyed hashes.
        self.claims: dict[tuple[str, str], ClaimHolder] = {}
        self._tokens = itertools.count(1)

    async def load(
        self, stream_id: str, *, up_to_version: int | None = None, as_of: datetime | None = None
    ) -> list[RecordedEvent]:
        return [
            r
            for r in self.log
            if r.stream_id == stream_id
            and (up_to_version is None or r.version <= up_to_version)
            and (as_of is None or r.recorded_at <= as_of)
        ]

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
        await self._run_hooks()
        self._check_version(stream_id, expected_version)
        return self._record(stream_id, stream_type, events, expected_version, metadata, event_ids)

    async def append_all(
        self,
        writes: Sequence[StreamWrite],
        *,
        metadata: EventMetadata,
        outbox: Sequence[OutboxEntry] = (),
        once: str | None = None,
    ) -> list[int]:
        """All streams and outbox entries, or nothing: every expected version is checked
        before anything is recorded."""
        await self._run_hooks()
        if once is not None and once in self.processed:
            raise AlreadyProcessed(once)
        versions: dict[str, int] = {}
        for write in writes:
            current = versions.get(write.stream_id, self._version(write.stream_id))
            if current != write.expected_version:
                raise ConcurrencyError(
                    f"{write.stream_id} at {current}, expected {write.expected_version}"
                )
            versions[write.stream_id] = current + len(write.events)
        claims = self._claimed(writes, metadata)
        positions: list[int] = []
        for write in writes:
            positions += self._record(
                write.stream_id,
                write.stream_type,
                write.events,
                write.expected_version,
                metadata,
                write.event_ids,
            )
        self.claims = claims
        self.outbox.extend(outbox)
        if once is not None:
            self.processed.add(once)
        return positions

    def _claimed(
        self, writes: Sequence[StreamWrite], metadata: EventMetadata
    ) -> dict[tuple[str, str], ClaimHolder]:
        """The claims once ``writes`` are appended: releases first, then claims, as Postgres
        does; ClaimTaken (and nothing changed) for a key another stream holds."""
        claims = dict(self.claims)
        for write in writes:
            tenant = (write.metadata or metadata).tenant
            for key in write.releases:
                if claims.get((tenant, key), _NOBODY).stream_id == write.stream_id:
                    del claims[tenant, key]
            for claim in write.claims:
                holder = claims.get((tenant, claim.key))
                taken = holder is not None and holder.stream_id != write.stream_id
                if taken and holder != claim.replaces:
                    raise ClaimTaken(claim.key, holder)
                claims[tenant, claim.key] = ClaimHolder(write.stream_id, str(next(self._tokens)))
        return claims

    async def _run_hooks(self) -> None:
        while self.before_append:
            hook = self.before_append.pop(0)
            await hook()  # type: ignore[operator]

    def _version(self, stream_id: str) -> int:
        return sum(1 for r in self.log if r.stream_id == stream_id)

    def _check_version(self, stream_id: str, expected_version: int) -> None:
        current = self._version(stream_id)
        if current != expected_version:
            raise ConcurrencyError(f"{stream_id} at {current}, expected {expected_version}")

    def _record(
        self,
        stream_id: str,
        stream_type: str,
        events: Sequence[DomainEvent],
        expected_version: int,
        metadata: EventMetadata,
        event_ids: Sequence[UUID] | None,
    ) -> list[int]:
        ids = list(event_ids or [uuid4() for _ in events])
        positions = []
        for offset, (event, event_id) in enumerate(zip(events, ids, strict=True), start=1):
            position = next(self._positions)
            self.log.append(
                RecordedEvent(
                    position=position,
                    transaction_id=position,
                    event_id=event_id,
                    stream_id=stream_id,
                    stream_type=stream_type,
                    version=expected_version + offset,
                    event_type=EVENT_NAMES[type(event)],
                    event=event,
                    metadata=metadata,
                    recorded_at=datetime.now(UTC),
                )
            )
            positions.append(position)
        return positions

    async def read_all(self, after: Checkpoint, limit: int) -> list[RecordedEvent]:
        return [r for r in self.log if r.position > after.position][:limit]

    async def latest_event_type(self, stream_id: str, among: Sequence[str]) -> str | None:
        found = [
            r.event_type for r in self.log if r.stream_id == stream_id and r.event_type in among
        ]
        return found[-1] if found else None


_NOBODY = ClaimHolder("", "")


class CountingIds:
    def __init__(self) -> None:
        self._next = itertools.count(1)

    async def next_id(self, kind: str) -> int:
        return next(self._next)

    async def next_ids(self, kind: str, count: int) -> list[int]:
        return [next(self._next) for _ in range(count)]


def creator_context() -> CommandContext:
    """A command context of a creator account of its own."""
    tenant = f"user-{uuid4().hex[:12]}"
    return CommandContext(tenant=tenant, actor="apikey:k", correlation_id=f"c-{tenant}")
