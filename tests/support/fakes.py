"""Small fakes implementing the application's ports, for unit tests of handlers."""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Sequence
from datetime import UTC, datetime
from uuid import UUID, uuid4

import msgspec

from application.context import CommandContext
from application.errors import AlreadyProcessed, ClaimTaken, ConcurrencyError
from application.ports import (
    Checkpoint,
    ClaimHolder,
    EventMetadata,
    OutboxEntry,
    RecordedEvent,
    StreamWrite,
    event_ids_for,
)
from domain.base import DomainEvent
from domain.events import ERASES_SUBJECT, EVENT_NAMES, PERSONAL_DATA, SCHEMA_VERSIONS
from domain.fan import fan_stream_id


class InMemoryEventStore:
    """The ``EventStore`` port in memory, held to the Postgres store's behaviour by the contract
    in tests/support/event_store_contract.py (tests/unit/test_event_store_contract.py)."""

    def __init__(self) -> None:
        self.log: list[RecordedEvent] = []
        self._positions = itertools.count(1)
        self._transactions = itertools.count(1)
        # Lets a test slip another writer's events in between a handler's load and append.
        self.before_append: list[object] = []
        # Outbox entries committed with their events by append_all, in order.
        self.outbox: list[OutboxEntry] = []
        self.processed: set[str] = set()
        # Unique claims: (tenant, key) -> its holder. The real store keeps keyed hashes.
        self.claims: dict[tuple[str, str], ClaimHolder] = {}
        self._tokens = itertools.count(1)
        # Subjects whose data key an erasing event destroyed: their personal fields read None.
        self._erased: set[str] = set()

    async def load(
        self, stream_id: str, *, up_to_version: int | None = None, as_of: datetime | None = None
    ) -> list[RecordedEvent]:
        return [
            self._as_read(r)
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
        if not events:
            return []
        write = StreamWrite(stream_id, stream_type, list(events), expected_version, event_ids)
        ids = _ids_of(write)
        await self._run_hooks()
        try:
            return self._commit([write], metadata)
        except ConcurrencyError:
            # A retried append of events already stored is a no-op; anything else a conflict.
            stored = {r.event_id: r.position for r in self.log if r.stream_id == stream_id}
            if all(event_id in stored for event_id in ids):
                return [stored[event_id] for event_id in ids]
            raise

    async def append_all(
        self,
        writes: Sequence[StreamWrite],
        *,
        metadata: EventMetadata,
        outbox: Sequence[OutboxEntry] = (),
        once: str | None = None,
    ) -> list[int]:
        await self._run_hooks()
        if once is not None and once in self.processed:
            raise AlreadyProcessed(once)
        positions = self._commit(writes, metadata, outbox)
        if once is not None:
            self.processed.add(once)
        return positions

    def _commit(
        self,
        writes: Sequence[StreamWrite],
        metadata: EventMetadata,
        outbox: Sequence[OutboxEntry] = (),
    ) -> list[int]:
        """One transaction: every write's events, claims and releases, and the outbox entries,
        or nothing. Every check comes before anything is recorded."""
        ids = [_ids_of(write) for write in writes]
        self._check(writes, ids)
        claims = self._claimed(writes, metadata)
        transaction = next(self._transactions)
        # Postgres records an event at its transaction's start: one time for the whole append.
        recorded_at = datetime.now(UTC)
        positions: list[int] = []
        for write, event_ids in zip(writes, ids, strict=True):
            positions += self._record(
                write, event_ids, write.metadata or metadata, transaction, recorded_at
            )
        self.claims = claims
        self.outbox.extend(outbox)
        return positions

    def _check(self, writes: Sequence[StreamWrite], ids: list[list[UUID]]) -> None:
        """Each write at its stream's version (after the writes before it), and no event id
        stored twice (the log's unique index)."""
        versions: dict[str, int] = {}
        taken = {r.event_id for r in self.log}
        for write, event_ids in zip(writes, ids, strict=True):
            current = versions.get(write.stream_id, self._version(write.stream_id))
            if current != write.expected_version:
                raise ConcurrencyError(
                    f"{write.stream_id} is at version {current}, expected {write.expected_version}"
                )
            versions[write.stream_id] = current + len(write.events)
            for event_id in event_ids:
                if event_id in taken:
                    raise ConcurrencyError(f"event {event_id} is already stored")
                taken.add(event_id)

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

    def _record(
        self,
        write: StreamWrite,
        event_ids: list[UUID],
        metadata: EventMetadata,
        transaction: int,
        recorded_at: datetime,
    ) -> list[int]:
        positions = []
        for version, (event, event_id) in enumerate(
            zip(write.events, event_ids, strict=True), start=write.expected_version + 1
        ):
            position = next(self._positions)
            event_type = EVENT_NAMES[type(event)]
            if event_type in ERASES_SUBJECT:
                self._erased.add(write.stream_id)
            self.log.append(
                RecordedEvent(
                    position=position,
                    transaction_id=transaction,
                    event_id=event_id,
                    stream_id=write.stream_id,
                    stream_type=write.stream_type,
                    version=version,
                    event_type=event_type,
                    event=event,
                    # The store stamps the schema the event is stored in.
                    metadata=msgspec.structs.replace(
                        metadata, schema_version=SCHEMA_VERSIONS[event_type]
                    ),
                    recorded_at=recorded_at,
                )
            )
            positions.append(position)
        return positions

    def _as_read(self, recorded: RecordedEvent) -> RecordedEvent:
        """The event as a reader gets it: personal fields None once their subject is erased."""
        spec = PERSONAL_DATA.get(recorded.event_type)
        if spec is None:
            return recorded
        event = recorded.event
        subject = (
            recorded.stream_id
            if spec.subject_field is None
            else fan_stream_id(getattr(event, spec.subject_field))
        )
        if subject not in self._erased or all(getattr(event, f) is None for f in spec.fields):
            return recorded
        blank = dataclasses.replace(event, **dict.fromkeys(spec.fields))  # type: ignore[type-var]
        return msgspec.structs.replace(recorded, event=blank, erased=spec.fields)

    async def read_all(self, after: Checkpoint, limit: int) -> list[RecordedEvent]:
        # The log is in commit order: transactions are numbered as they commit.
        start = (after.transaction_id, after.position)
        found = [r for r in self.log if (r.transaction_id, r.position) > start][:limit]
        return [self._as_read(r) for r in found]

    async def latest_event_type(self, stream_id: str, among: Sequence[str]) -> str | None:
        found = [
            r.event_type for r in self.log if r.stream_id == stream_id and r.event_type in among
        ]
        return found[-1] if found else None


def _ids_of(write: StreamWrite) -> list[UUID]:
    return event_ids_for(write.events, write.event_ids)


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
