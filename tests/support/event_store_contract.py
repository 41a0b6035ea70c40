"""The ``EventStore`` port's contract: one suite of tests, run against every implementation, as
the eventsourcing library runs one recorder test case per backend.

``EventStoreContract`` is not collected on its own (its name does not start with ``Test``): a
test module subclasses it once per implementation and gives it a ``backend`` fixture, a store
holding nothing this test wrote and a way to see the outbox rows it stored
(tests/integration/test_event_store_contract.py: Postgres with personal data encrypted;
tests/unit/test_event_store_contract.py: the in-memory store of the unit tests).

What is promised is what application/ports.py says; where its words leave a case open, the
Postgres store's behaviour is the contract (the in-memory store is held to it, never the other
way round). Everything is observed through the port itself, but the outbox, which only the
relay reads. Stores may be shared between tests: every test uses streams and tenants of its
own, and reads the global log only after the place it found it at.
"""

from __future__ import annotations

import asyncio
import itertools
import random
import uuid
from abc import ABC, abstractmethod
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from application.errors import AlreadyProcessed, ClaimTaken, ConcurrencyError
from application.ports import (
    Checkpoint,
    Claim,
    EventMetadata,
    EventStore,
    OutboxEntry,
    RecordedEvent,
    StreamWrite,
)
from domain.base import DomainEvent
from domain.events import EVENT_NAMES, PERSONAL_DATA, SCHEMA_VERSIONS
from domain.fan import Fan, fan_stream_id
from domain.message import Message, message_stream_id

START = Checkpoint()

# Fan ids no other test of a shared store uses.
_fan_ids = itertools.count(random.SystemRandom().randrange(10**12, 10**13, 10**6))


def new_fan_id() -> int:
    return next(_fan_ids)


def new_tenant() -> str:
    return f"user-{uuid.uuid4().hex[:12]}"


def meta(tenant: str = "user-1", **changes: object) -> EventMetadata:
    base = EventMetadata(
        tenant=tenant,
        actor=f"{tenant}:key-1",
        correlation_id=uuid.uuid4().hex,
        causation_id=uuid.uuid4().hex,
        trace_id=uuid.uuid4().hex,
    )
    return msgspec.structs.replace(base, **changes)


def as_stored(metadata: EventMetadata, event: DomainEvent) -> EventMetadata:
    """The metadata an event reads back with: the store stamps the event's own schema."""
    return msgspec.structs.replace(
        metadata, schema_version=SCHEMA_VERSIONS[EVENT_NAMES[type(event)]]
    )


def fan_events(
    fan_id: int, *, updates: int = 0, delete: bool = False, tenant: str = "user-1"
) -> list[DomainEvent]:
    """A new fan's pending events: Created, ``updates`` Updated, then Deleted if asked."""
    fan = Fan.register(
        fan_id=fan_id, tenant=tenant, name=f"Fan {fan_id}", email="fan@example.com", tags=["VIP"]
    )
    for i in range(updates):
        fan.update(value_cents=100 * (i + 1), notes=f"note {i}")
    if delete:
        fan.delete()
    return list(fan.collect_events())


def fan_event_at(fan_id: int, version: int) -> DomainEvent:
    """An event of the fan's stream for ``version`` (1: it is created), built without loading."""
    if version == 1:
        return Fan.registered(fan_id=fan_id, tenant="user-1", name=f"Fan {fan_id}")
    return Fan.conversation_opened_at(fan_id, version - 1, conversation_id=version)


def new_fan(tenant: str, handle: str = "ann") -> StreamWrite:
    """A new fan's stream, claiming ``handle`` on OnlyFans."""
    fan = Fan.register(fan_id=new_fan_id(), tenant=tenant, handle=handle)
    key = f"onlyfans:handle:{handle}"
    return StreamWrite(fan.id, "fan", list(fan.collect_events()), 0, claims=(Claim(key),))


def renamed(write: StreamWrite, version: int, **changes: Any) -> StreamWrite:
    """Another event on ``write``'s stream at ``version``, with these claims and releases."""
    fan = write.events[0].mutate(None)
    assert isinstance(fan, Fan)
    for n in range(version):
        fan.update(notes=f"v{n + 1}")
    event = fan.collect_events()[-1]
    return StreamWrite(write.stream_id, "fan", [event], version, **changes)


def queued(tenant: str, fan_id: int, message_id: str | None = None) -> Message:
    return Message.queue(
        message_id=message_id or str(uuid.uuid4()),
        tenant=tenant,
        conversation_id=7,
        fan_id=fan_id,
        content=f"for fan {fan_id} only",
        price_cents=500,
        attachments=[("image", "https://cdn.example.com/a.jpg")],
        campaign_id=3,
    )


def outbox_entry(message: Message) -> OutboxEntry:
    return OutboxEntry(
        queue="high",
        message_id=message.message_id,
        stream_version=message.version,
        subject=fan_stream_id(message.fan_id),
        body={"messageId": message.message_id, "recipientId": message.fan_id},
        personal={"content": message.content},
        attributes={"creator": message.tenant},
    )


def checkpoint_of(event: RecordedEvent) -> Checkpoint:
    return Checkpoint(event.transaction_id, event.position)


async def read_everything(
    store: EventStore, after: Checkpoint = START, limit: int = 1000
) -> list[RecordedEvent]:
    """The global log after ``after``, read in batches of at most ``limit``."""
    out: list[RecordedEvent] = []
    while batch := await store.read_all(after, limit):
        assert len(batch) <= limit
        out.extend(batch)
        after = checkpoint_of(batch[-1])
    return out


async def end_of_log(store: EventStore) -> Checkpoint:
    """Where the global log ends now: a test reads only what it wrote after it."""
    found = await read_everything(store)
    return checkpoint_of(found[-1]) if found else START


class Outboxed(msgspec.Struct, frozen=True, kw_only=True):
    """An outbox row as the relay will find it: clear body and personal fields apart."""

    queue: str
    message_id: str
    stream_version: int | None
    body: dict[str, Any]
    personal: dict[str, Any]
    attributes: dict[str, str]


def outboxed(entry: OutboxEntry) -> Outboxed:
    return Outboxed(
        queue=entry.queue,
        message_id=entry.message_id,
        stream_version=entry.stream_version,
        body=entry.body,
        personal=entry.personal,
        attributes=entry.attributes,
    )


class Backend(ABC):
    """An implementation under test: its store, and what the contract cannot ask the port."""

    store: EventStore

    @abstractmethod
    async def outbox(self, message_ids: Sequence[str], subject: str | None) -> list[Outboxed]:
        """The stored outbox rows of these messages, in the order they were added; their
        personal fields opened with ``subject``'s key."""


class EventStoreContract:
    """Subclass with a ``backend`` fixture; every test below runs on that implementation."""

    @pytest.fixture
    def store(self, backend: Backend) -> EventStore:
        return backend.store

    # --- streams ---------------------------------------------------------------------------

    async def test_appended_events_load_back_equal_with_versions_and_metadata(
        self, store: EventStore
    ) -> None:
        fan_id = new_fan_id()
        stream = fan_stream_id(fan_id)
        events = fan_events(fan_id, updates=3, delete=True)
        metadata = meta()

        positions = await store.append(stream, "fan", events, expected_version=0, metadata=metadata)
        loaded = await store.load(stream)

        assert len(positions) == len(events) == 5
        assert positions == sorted(positions)
        assert [r.event for r in loaded] == events
        assert [r.version for r in loaded] == [1, 2, 3, 4, 5]
        assert [r.position for r in loaded] == positions
        assert [r.event_type for r in loaded] == [
            "FanCreated",
            "FanUpdated",
            "FanUpdated",
            "FanUpdated",
            "FanDeleted",
        ]
        assert {r.stream_id for r in loaded} == {stream}
        assert {r.stream_type for r in loaded} == {"fan"}
        assert len({r.transaction_id for r in loaded}) == 1, "one append is one transaction"
        assert len({r.recorded_at for r in loaded}) == 1, "recorded when its transaction began"
        assert len({r.event_id for r in loaded}) == 5
        assert [r.metadata for r in loaded] == [as_stored(metadata, e) for e in events]
        assert all(r.erased == () for r in loaded)
        fan = None
        for recorded in loaded:
            fan = recorded.event.mutate(fan)
        assert isinstance(fan, Fan)
        assert (fan.deleted, fan.value_cents, fan.email) == (True, 300, "fan@example.com")

    async def test_the_store_stamps_each_events_own_schema_version_into_its_metadata(
        self, store: EventStore
    ) -> None:
        fan_id = new_fan_id()
        stale = meta(schema_version=99)
        await store.append(
            fan_stream_id(fan_id), "fan", fan_events(fan_id), expected_version=0, metadata=stale
        )
        (loaded,) = await store.load(fan_stream_id(fan_id))
        assert loaded.metadata.schema_version == SCHEMA_VERSIONS["FanCreated"]
        assert loaded.metadata == msgspec.structs.replace(stale, schema_version=1)

    async def test_a_message_with_personal_fields_loads_back_equal(self, store: EventStore) -> None:
        tenant = new_tenant()
        message = queued(tenant, new_fan_id())
        message.dispatch("high")
        events = list(message.collect_events())
        metadata = meta(tenant)

        await store.append(message.id, "message", events, expected_version=0, metadata=metadata)
        loaded = await store.load(message.id)

        assert [r.event for r in loaded] == events
        assert [r.event_type for r in loaded] == ["MessageQueued", "MessageDispatched"]
        assert [r.metadata for r in loaded] == [as_stored(metadata, e) for e in events]
        replayed = None
        for recorded in loaded:
            replayed = recorded.event.mutate(replayed)
        assert isinstance(replayed, Message)
        assert (replayed.content, replayed.status) == (message.content, "dispatched")

    async def test_a_fan_whose_messages_were_stored_first_is_created_at_version_0(
        self, store: EventStore
    ) -> None:
        """ConcurrencyError is for a stream not at its expected version, only. No use case
        stores a message before its fan today, but a message's personal fields (sealed with
        its fan's key) must not keep the fan's stream from starting."""
        tenant = new_tenant()
        fan_id = new_fan_id()
        message = queued(tenant, fan_id)
        sent = list(message.collect_events())
        await store.append(message.id, "message", sent, expected_version=0, metadata=meta(tenant))
        events = fan_events(fan_id, tenant=tenant)

        await store.append(
            fan_stream_id(fan_id), "fan", events, expected_version=0, metadata=meta(tenant)
        )

        assert [r.event for r in await store.load(fan_stream_id(fan_id))] == events
        assert [r.event for r in await store.load(message.id)] == sent

    @pytest.mark.parametrize("once", [False, True], ids=["one statement", "in a transaction"])
    async def test_append_all_starts_a_fan_whose_messages_were_stored_first(
        self, store: EventStore, once: bool
    ) -> None:
        tenant = new_tenant()
        fan_id = new_fan_id()
        message = queued(tenant, fan_id)
        await store.append_all(
            [StreamWrite(message.id, "message", list(message.collect_events()), 0)],
            metadata=meta(tenant),
        )
        events = fan_events(fan_id, tenant=tenant)

        await store.append_all(
            [StreamWrite(fan_stream_id(fan_id), "fan", events, 0)],
            metadata=meta(tenant),
            once=f"{tenant}:start-{fan_id}" if once else None,
        )

        assert [r.event for r in await store.load(fan_stream_id(fan_id))] == events

    async def test_an_erased_fans_personal_fields_read_back_none_and_say_so(
        self, store: EventStore
    ) -> None:
        tenant = new_tenant()
        fan = Fan.register(
            fan_id=new_fan_id(), tenant=tenant, name="Ann", handle="ann", email="ann@example.com"
        )
        fan.update(notes="likes cats", value_cents=900)
        message = queued(tenant, fan.fan_id)
        start = await end_of_log(store)
        await store.append_all(
            [
                StreamWrite(fan.id, "fan", list(fan.collect_events()), 0),
                StreamWrite(message.id, "message", list(message.collect_events()), 0),
            ],
            metadata=meta(tenant),
        )
        fan.erase()
        await store.append(
            fan.id, "fan", fan.collect_events(), expected_version=2, metadata=meta(tenant)
        )

        created, updated, erased = await store.load(fan.id)
        [sent] = await store.load(message.id)
        assert isinstance(created.event, Fan.Created)
        assert isinstance(updated.event, Fan.Updated)
        assert isinstance(sent.event, Message.Queued)
        assert (created.event.name, created.event.handle, created.event.email) == (None,) * 3
        assert (updated.event.notes, updated.event.value_cents) == (None, 900)
        assert (sent.event.content, sent.event.attachments, sent.event.price_cents) == (
            None,
            None,
            500,
        )
        assert created.erased == PERSONAL_DATA["FanCreated"].fields
        assert updated.erased == PERSONAL_DATA["FanUpdated"].fields
        assert sent.erased == PERSONAL_DATA["MessageQueued"].fields
        assert erased.erased == ()
        assert await read_everything(store, start) == [created, updated, sent, erased]
        replayed = None
        for recorded in (created, updated, erased):
            replayed = recorded.event.mutate(replayed)
        assert isinstance(replayed, Fan)
        assert (replayed.erased, replayed.name, replayed.value_cents) == (True, None, 900)

    async def test_given_event_ids_are_stored_one_per_event(self, store: EventStore) -> None:
        fan_id = new_fan_id()
        stream = fan_stream_id(fan_id)
        events = fan_events(fan_id, updates=2)
        ids = [uuid.uuid4(), uuid.uuid4()]
        await store.append(
            stream, "fan", events[:2], expected_version=0, metadata=meta(), event_ids=ids
        )
        with pytest.raises(ValueError, match="one event id per event"):
            await store.append(
                stream, "fan", events[2:], expected_version=2, metadata=meta(), event_ids=[]
            )
        assert [r.event_id for r in await store.load(stream)] == ids

    async def test_appending_nothing_stores_nothing(self, store: EventStore) -> None:
        stream = fan_stream_id(new_fan_id())
        assert await store.append(stream, "fan", [], expected_version=0, metadata=meta()) == []
        assert await store.load(stream) == []

    async def test_load_stops_at_up_to_version_and_at_as_of(self, store: EventStore) -> None:
        fan_id = new_fan_id()
        stream = fan_stream_id(fan_id)
        everything = fan_events(fan_id, updates=4)
        await store.append(stream, "fan", everything[:3], expected_version=0, metadata=meta())
        first = await store.load(stream)
        await clock_passes(first[-1].recorded_at)
        await store.append(stream, "fan", everything[3:], expected_version=3, metadata=meta())
        full = await store.load(stream)

        assert [r.version for r in full] == [1, 2, 3, 4, 5]
        assert full[3].recorded_at > full[2].recorded_at
        assert [r.event for r in await store.load(stream, up_to_version=2)] == everything[:2]
        assert await store.load(stream, up_to_version=0) == []
        assert await store.load(stream, up_to_version=99) == full
        assert await store.load(stream, as_of=first[-1].recorded_at) == first
        assert await store.load(stream, as_of=first[0].recorded_at - timedelta(seconds=1)) == []
        assert await store.load(stream, as_of=full[-1].recorded_at) == full
        both = await store.load(stream, up_to_version=2, as_of=full[-1].recorded_at)
        assert [r.version for r in both] == [1, 2]
        assert await store.load(fan_stream_id(new_fan_id())) == []

    async def test_latest_event_type_names_the_newest_of_the_types_asked_and_none_without_one(
        self, store: EventStore
    ) -> None:
        fan_id = new_fan_id()
        stream = fan_stream_id(fan_id)
        # FanCreated, FanUpdated x3, FanDeleted
        events = fan_events(fan_id, updates=3, delete=True)
        await store.append(stream, "fan", events, expected_version=0, metadata=meta())
        assert await store.latest_event_type(stream, ["FanCreated", "FanUpdated"]) == "FanUpdated"
        assert await store.latest_event_type(stream, ["FanDeleted", "FanCreated"]) == "FanDeleted"
        assert await store.latest_event_type(stream, ["FanCreated"]) == "FanCreated"
        assert await store.latest_event_type(stream, ["CampaignPaused"]) is None
        assert await store.latest_event_type(stream, []) is None
        assert await store.latest_event_type(fan_stream_id(new_fan_id()), ["FanCreated"]) is None

    # --- optimistic concurrency ------------------------------------------------------------

    async def test_an_append_continues_after_the_expected_version_and_a_stale_one_writes_nothing(
        self, store: EventStore
    ) -> None:
        fan_id = new_fan_id()
        stream = fan_stream_id(fan_id)
        events = fan_events(fan_id, updates=3)
        with pytest.raises(ConcurrencyError):
            await store.append(stream, "fan", events[1:2], expected_version=1, metadata=meta())
        assert await store.load(stream) == []

        await store.append(stream, "fan", events[:2], expected_version=0, metadata=meta())
        with pytest.raises(ConcurrencyError):  # beyond the head
            await store.append(stream, "fan", events[3:], expected_version=3, metadata=meta())
        with pytest.raises(ConcurrencyError):  # behind it
            await store.append(stream, "fan", events[2:3], expected_version=1, metadata=meta())
        with pytest.raises(ConcurrencyError):
            await store.append(stream, "fan", events[:1], expected_version=0, metadata=meta())
        assert [r.version for r in await store.load(stream)] == [1, 2]

        await store.append(stream, "fan", events[2:], expected_version=2, metadata=meta())
        assert [r.event for r in await store.load(stream)] == events

    @pytest.mark.parametrize("head", [0, 2])
    async def test_of_eight_concurrent_appends_at_one_expected_version_exactly_one_wins(
        self, store: EventStore, head: int
    ) -> None:
        async with asyncio.timeout(20):
            for _ in range(5):  # several streams, so the appends really do race
                fan_id = new_fan_id()
                stream = fan_stream_id(fan_id)
                history = [fan_event_at(fan_id, v) for v in range(1, head + 1)]
                if head:
                    await store.append(stream, "fan", history, expected_version=0, metadata=meta())
                decisions = [contender(fan_id, head, k) for k in range(8)]
                results = await asyncio.gather(
                    *(
                        store.append(stream, "fan", [d], expected_version=head, metadata=meta())
                        for d in decisions
                    ),
                    return_exceptions=True,
                )
                winners = [(k, r) for k, r in enumerate(results) if isinstance(r, list)]
                losers = [r for r in results if not isinstance(r, list)]
                assert len(winners) == 1, results
                assert all(isinstance(e, ConcurrencyError) for e in losers), losers
                ((k, positions),) = winners
                loaded = await store.load(stream)
                assert [r.version for r in loaded] == list(range(1, head + 2))
                assert [r.event for r in loaded] == [*history, decisions[k]]
                assert loaded[-1].position == positions[0]

    # --- idempotent appends ----------------------------------------------------------------

    async def test_reappending_stored_event_ids_returns_their_positions_and_stores_nothing(
        self, store: EventStore
    ) -> None:
        fan_id = new_fan_id()
        stream = fan_stream_id(fan_id)
        events = fan_events(fan_id, updates=2)
        ids = [uuid.uuid4() for _ in events]
        positions = await store.append(
            stream, "fan", events, expected_version=0, metadata=meta(), event_ids=ids
        )
        stored = await store.load(stream)
        start = checkpoint_of(stored[-1])

        # A retry of the same append (same expected version).
        again = await store.append(
            stream, "fan", events, expected_version=0, metadata=meta(), event_ids=ids
        )
        # A retry that believes the stream is at its head.
        at_head = await store.append(
            stream, "fan", events, expected_version=3, metadata=meta(), event_ids=ids
        )
        # A retry of only the tail of the batch, and one from a version the stream never had.
        tail = await store.append(
            stream, "fan", events[1:], expected_version=1, metadata=meta(), event_ids=ids[1:]
        )
        beyond = await store.append(
            stream, "fan", events[:1], expected_version=7, metadata=meta(), event_ids=ids[:1]
        )

        assert again == at_head == positions
        assert tail == positions[1:]
        assert beyond == positions[:1]
        assert await store.load(stream) == stored
        assert await store.read_all(start, 10) == []

    async def test_known_event_ids_mixed_with_new_ones_are_a_conflict_storing_nothing(
        self, store: EventStore
    ) -> None:
        fan_id = new_fan_id()
        stream = fan_stream_id(fan_id)
        events = fan_events(fan_id, updates=2)
        ids = [uuid.uuid4() for _ in events]
        await store.append(
            stream, "fan", events[:2], expected_version=0, metadata=meta(), event_ids=ids[:2]
        )
        stored = await store.load(stream)

        for expected in (0, 2):
            with pytest.raises(ConcurrencyError):
                await store.append(
                    stream, "fan", events, expected_version=expected, metadata=meta(), event_ids=ids
                )
        assert await store.load(stream) == stored

    async def test_event_ids_of_another_stream_are_a_conflict_storing_nothing(
        self, store: EventStore
    ) -> None:
        first, second = new_fan_id(), new_fan_id()
        ids = [uuid.uuid4()]
        await store.append(
            fan_stream_id(first),
            "fan",
            fan_events(first),
            expected_version=0,
            metadata=meta(),
            event_ids=ids,
        )
        with pytest.raises(ConcurrencyError):
            await store.append(
                fan_stream_id(second),
                "fan",
                fan_events(second),
                expected_version=0,
                metadata=meta(),
                event_ids=ids,
            )
        assert await store.load(fan_stream_id(second)) == []

    async def test_append_all_of_a_stored_event_id_is_a_conflict_storing_nothing(
        self, store: EventStore
    ) -> None:
        """Only ``append`` takes a retry for a no-op: to ``append_all``, a stored event id is
        a conflict, even at the stream's head."""
        fan_id, other = new_fan_id(), new_fan_id()
        stream = fan_stream_id(fan_id)
        ids = [uuid.uuid4()]
        await store.append(
            stream, "fan", fan_events(fan_id), expected_version=0, metadata=meta(), event_ids=ids
        )
        stored = await store.load(stream)
        writes = [
            StreamWrite(fan_stream_id(other), "fan", fan_events(other), 0),
            StreamWrite(stream, "fan", [fan_event_at(fan_id, 2)], 1, event_ids=ids),
        ]
        with pytest.raises(ConcurrencyError):
            await store.append_all(writes, metadata=meta())
        assert await store.load(stream) == stored
        assert await store.load(fan_stream_id(other)) == []

    async def test_the_same_event_ids_appended_concurrently_are_stored_once(
        self, store: EventStore
    ) -> None:
        async with asyncio.timeout(20):
            for _ in range(10):
                fan_id = new_fan_id()
                stream = fan_stream_id(fan_id)
                events = fan_events(fan_id, updates=2)
                ids = [uuid.uuid4() for _ in events]
                first, second = await asyncio.gather(
                    *(
                        store.append(
                            stream,
                            "fan",
                            events,
                            expected_version=0,
                            metadata=meta(),
                            event_ids=ids,
                        )
                        for _ in range(2)
                    )
                )
                assert first == second
                stored = await store.load(stream)
                assert [r.event_id for r in stored] == ids
                assert [r.position for r in stored] == first

    # --- several streams at once -----------------------------------------------------------

    async def test_append_all_writes_every_stream_and_its_outbox_in_one_transaction(
        self, backend: Backend, store: EventStore
    ) -> None:
        tenant = new_tenant()
        fan_id = new_fan_id()
        fan = Fan.register(fan_id=fan_id, tenant=tenant, name="Ann")
        messages = [queued(tenant, fan_id) for _ in range(2)]
        writes = [
            StreamWrite(fan.id, "fan", list(fan.collect_events()), 0),
            *(StreamWrite(m.id, "message", list(m.collect_events()), 0) for m in messages),
        ]
        outbox = [outbox_entry(m) for m in messages]
        start = await end_of_log(store)

        positions = await store.append_all(writes, metadata=meta(tenant), outbox=outbox)

        appended = await read_everything(store, start)
        assert [r.position for r in appended] == positions == sorted(positions)
        assert [r.stream_id for r in appended] == [w.stream_id for w in writes]
        assert [r.event for r in appended] == [w.events[0] for w in writes]
        assert len({r.transaction_id for r in appended}) == 1
        ids = [m.message_id for m in messages]
        assert await backend.outbox(ids, fan.id) == [outboxed(e) for e in outbox]

    async def test_one_stale_stream_rolls_back_every_stream_and_the_outbox(
        self, backend: Backend, store: EventStore
    ) -> None:
        tenant = new_tenant()
        fan_id = new_fan_id()
        stream = fan_stream_id(fan_id)
        await store.append(stream, "fan", fan_events(fan_id), expected_version=0, metadata=meta())
        message = queued(tenant, fan_id)
        sent = list(message.collect_events())
        fresh_fan = new_fan_id()
        start = await end_of_log(store)

        for stale in (0, 2):
            with pytest.raises(ConcurrencyError):
                await store.append_all(
                    [
                        StreamWrite(message.id, "message", sent, 0),
                        StreamWrite(
                            fan_stream_id(fresh_fan), "fan", [fan_event_at(fresh_fan, 1)], 0
                        ),
                        StreamWrite(stream, "fan", [fan_event_at(fan_id, stale + 1)], stale),
                    ],
                    metadata=meta(tenant),
                    outbox=[outbox_entry(message)],
                )

        assert await read_everything(store, start) == []
        assert await backend.outbox([message.message_id], fan_stream_id(fan_id)) == []

    async def test_two_writes_to_one_stream_in_one_append_go_in_order(
        self, backend: Backend, store: EventStore
    ) -> None:
        tenant = new_tenant()
        fan_id = new_fan_id()
        stream = fan_stream_id(fan_id)
        events = [fan_event_at(fan_id, v) for v in (1, 2, 3)]
        message = queued(tenant, fan_id)

        positions = await store.append_all(
            [
                StreamWrite(stream, "fan", events[:1], 0),
                StreamWrite(message.id, "message", list(message.collect_events()), 0),
                StreamWrite(stream, "fan", events[1:], 1),
            ],
            metadata=meta(tenant),
            outbox=[outbox_entry(message)],
        )

        loaded = await store.load(stream)
        assert [r.event for r in loaded] == events
        assert [r.version for r in loaded] == [1, 2, 3]
        assert positions == sorted(positions)
        assert [r.position for r in loaded] == [positions[0], *positions[2:]]
        assert [r.position for r in await store.load(message.id)] == [positions[1]]
        assert len(await backend.outbox([message.message_id], stream)) == 1
        # The second write is checked after the first: both at 3 is a conflict.
        other = queued(tenant, fan_id)
        with pytest.raises(ConcurrencyError):
            await store.append_all(
                [
                    StreamWrite(other.id, "message", list(other.collect_events()), 0),
                    StreamWrite(stream, "fan", [fan_event_at(fan_id, 4)], 3),
                    StreamWrite(stream, "fan", [fan_event_at(fan_id, 4)], 3),
                ],
                metadata=meta(tenant),
                outbox=[outbox_entry(other)],
            )
        assert [r.version for r in await store.load(stream)] == [1, 2, 3]
        assert await store.load(other.id) == []
        assert await backend.outbox([other.message_id], stream) == []

    async def test_each_write_keeps_its_own_metadata(self, store: EventStore) -> None:
        first, second = new_fan_id(), new_fan_id()
        default, own = meta(actor="default"), meta("user-2", actor="other")
        await store.append_all(
            [
                StreamWrite(fan_stream_id(first), "fan", fan_events(first), 0),
                StreamWrite(fan_stream_id(second), "fan", fan_events(second), 0, metadata=own),
            ],
            metadata=default,
        )

        [a] = await store.load(fan_stream_id(first))
        [b] = await store.load(fan_stream_id(second))
        assert a.metadata == as_stored(default, a.event)
        assert b.metadata == as_stored(own, b.event)

    async def test_once_appends_only_the_first_time_and_a_refused_append_does_not_use_it(
        self, backend: Backend, store: EventStore
    ) -> None:
        tenant = new_tenant()
        fan_id = new_fan_id()
        stream = fan_stream_id(fan_id)
        once = f"webhook:{uuid.uuid4()}"
        message = queued(tenant, fan_id)
        write = StreamWrite(message.id, "message", list(message.collect_events()), 0)
        outbox = [outbox_entry(message)]
        with pytest.raises(ConcurrencyError):
            await store.append_all(
                [write, StreamWrite(stream, "fan", [fan_event_at(fan_id, 2)], 1)],
                metadata=meta(tenant),
                outbox=outbox,
                once=once,
            )

        positions = await store.append_all([write], metadata=meta(tenant), outbox=outbox, once=once)
        start = await end_of_log(store)
        with pytest.raises(AlreadyProcessed):
            await store.append_all(
                [StreamWrite(stream, "fan", [fan_event_at(fan_id, 1)], 0)],
                metadata=meta(tenant),
                outbox=[outbox_entry(queued(tenant, fan_id, message.message_id))],
                once=once,
            )

        assert [r.position for r in await store.load(message.id)] == positions
        assert await read_everything(store, start) == []
        assert len(await backend.outbox([message.message_id], stream)) == 1
        # Another key is another command.
        dispatched = Message.dispatched_at(message.id, 1, "high")
        await store.append_all(
            [StreamWrite(message.id, "message", [dispatched], 1)],
            metadata=meta(tenant),
            once=f"webhook:{uuid.uuid4()}",
        )
        assert [r.event for r in await store.load(message.id)][1:] == [dispatched]

    # --- unique claims ---------------------------------------------------------------------

    async def test_a_key_another_stream_claimed_refuses_the_whole_append_naming_the_holder(
        self, backend: Backend, store: EventStore
    ) -> None:
        tenant = new_tenant()
        first, second = new_fan(tenant), new_fan(tenant)
        await store.append_all([first], metadata=meta(tenant))
        message = queued(tenant, new_fan_id())
        start = await end_of_log(store)

        with pytest.raises(ClaimTaken) as taken:
            await store.append_all(
                [StreamWrite(message.id, "message", list(message.collect_events()), 0), second],
                metadata=meta(tenant),
                outbox=[outbox_entry(message)],
            )

        assert taken.value.key == "onlyfans:handle:ann"
        assert taken.value.holder.stream_id == first.stream_id
        assert await read_everything(store, start) == []
        assert await backend.outbox([message.message_id], fan_stream_id(message.fan_id)) == []

    async def test_a_holder_claims_its_key_again_and_a_released_key_is_free_for_another(
        self, store: EventStore
    ) -> None:
        tenant = new_tenant()
        first, second = new_fan(tenant), new_fan(tenant)
        key = "onlyfans:handle:ann"
        await store.append_all([first], metadata=meta(tenant))
        await store.append_all([renamed(first, 1, claims=(Claim(key),))], metadata=meta(tenant))

        await store.append_all([renamed(first, 2, releases=(key,))], metadata=meta(tenant))
        await store.append_all([second], metadata=meta(tenant))

        with pytest.raises(ClaimTaken):
            await store.append_all([renamed(first, 3, claims=(Claim(key),))], metadata=meta(tenant))
        assert [r.version for r in await store.load(first.stream_id)] == [1, 2, 3]

    async def test_releasing_a_key_another_stream_holds_leaves_it_held(
        self, store: EventStore
    ) -> None:
        tenant = new_tenant()
        holder, other = new_fan(tenant), new_fan(tenant, handle="bob")
        await store.append_all([holder, other], metadata=meta(tenant))

        await store.append_all(
            [renamed(other, 1, releases=("onlyfans:handle:ann",))], metadata=meta(tenant)
        )

        with pytest.raises(ClaimTaken) as taken:
            await store.append_all([new_fan(tenant)], metadata=meta(tenant))
        assert taken.value.holder.stream_id == holder.stream_id

    async def test_claims_of_one_key_in_two_tenants_never_meet(self, store: EventStore) -> None:
        mine, theirs = new_tenant(), new_tenant()
        held, their_held = new_fan(mine), new_fan(theirs)
        await store.append_all([held], metadata=meta(mine))
        # A write's own metadata names its tenant, over the append's.
        await store.append_all(
            [msgspec.structs.replace(their_held, metadata=meta(theirs))], metadata=meta(mine)
        )

        for tenant, holder in ((mine, held), (theirs, their_held)):
            with pytest.raises(ClaimTaken) as taken:
                await store.append_all([new_fan(tenant)], metadata=meta(tenant))
            assert taken.value.holder.stream_id == holder.stream_id

    async def test_a_refused_append_keeps_none_of_its_claims_or_releases(
        self, store: EventStore
    ) -> None:
        tenant = new_tenant()
        holder = new_fan(tenant, handle="bob")
        await store.append_all([holder], metadata=meta(tenant))
        claimer = new_fan(tenant)
        stale = renamed(holder, 5, releases=("onlyfans:handle:bob",))

        with pytest.raises(ConcurrencyError):
            await store.append_all([claimer, stale], metadata=meta(tenant))

        await store.append_all([new_fan(tenant)], metadata=meta(tenant))
        with pytest.raises(ClaimTaken) as taken:
            await store.append_all([new_fan(tenant, handle="bob")], metadata=meta(tenant))
        assert taken.value.holder.stream_id == holder.stream_id

    async def test_a_takeover_wins_only_while_the_holder_has_not_claimed_again(
        self, store: EventStore
    ) -> None:
        tenant = new_tenant()
        holder, stale_taker, taker = new_fan(tenant), new_fan(tenant), new_fan(tenant)
        key = "onlyfans:handle:ann"
        await store.append_all([holder], metadata=meta(tenant))
        with pytest.raises(ClaimTaken) as seen:
            await store.append_all([stale_taker], metadata=meta(tenant))
        await store.append_all([renamed(holder, 1, claims=(Claim(key),))], metadata=meta(tenant))
        with pytest.raises(ClaimTaken) as now:
            await store.append_all(
                [msgspec.structs.replace(stale_taker, claims=(Claim(key, seen.value.holder),))],
                metadata=meta(tenant),
            )
        assert now.value.holder.stream_id == holder.stream_id
        assert now.value.holder.token != seen.value.holder.token

        await store.append_all(
            [msgspec.structs.replace(taker, claims=(Claim(key, now.value.holder),))],
            metadata=meta(tenant),
        )

        with pytest.raises(ClaimTaken) as after:
            await store.append_all([new_fan(tenant)], metadata=meta(tenant))
        assert after.value.holder.stream_id == taker.stream_id

    async def test_a_takeover_of_a_holder_that_does_not_hold_the_key_is_refused(
        self, store: EventStore
    ) -> None:
        tenant = new_tenant()
        holder, bystander = new_fan(tenant), new_fan(tenant, handle="bob")
        await store.append_all([holder, bystander], metadata=meta(tenant))
        with pytest.raises(ClaimTaken) as bob:
            await store.append_all([new_fan(tenant, handle="bob")], metadata=meta(tenant))

        with pytest.raises(ClaimTaken) as taken:
            await store.append_all(
                [
                    msgspec.structs.replace(
                        new_fan(tenant), claims=(Claim("onlyfans:handle:ann", bob.value.holder),)
                    )
                ],
                metadata=meta(tenant),
            )
        assert taken.value.holder.stream_id == holder.stream_id

    async def test_of_eight_concurrent_claims_of_one_key_exactly_one_wins(
        self, store: EventStore
    ) -> None:
        tenant = new_tenant()
        writes = [new_fan(tenant) for _ in range(8)]

        async with asyncio.timeout(20):
            results = await asyncio.gather(
                *(store.append_all([w], metadata=meta(tenant)) for w in writes),
                return_exceptions=True,
            )

        winners = [w for w, r in zip(writes, results, strict=True) if isinstance(r, list)]
        assert len(winners) == 1, results
        assert all(isinstance(r, ClaimTaken) for r in results if not isinstance(r, list)), results
        for write in writes:
            assert bool(await store.load(write.stream_id)) == (write in winners)

    # --- the global log --------------------------------------------------------------------

    async def test_read_all_gives_what_follows_a_checkpoint_in_commit_order_by_batches(
        self, store: EventStore
    ) -> None:
        start = await end_of_log(store)
        a, b = new_fan_id(), new_fan_id()
        appends = [
            await store.append(
                fan_stream_id(a),
                "fan",
                fan_events(a, updates=2),
                expected_version=0,
                metadata=meta(),
            ),
            await store.append(
                fan_stream_id(b),
                "fan",
                fan_events(b, updates=1),
                expected_version=0,
                metadata=meta(),
            ),
            await store.append_all(
                [
                    StreamWrite(fan_stream_id(a), "fan", [fan_event_at(a, 4)], 3),
                    StreamWrite(fan_stream_id(b), "fan", [fan_event_at(b, 3)], 2),
                ],
                metadata=meta(),
            ),
        ]

        everything = await read_everything(store, start)
        assert [r.position for r in everything] == [p for ps in appends for p in ps]
        assert sorted(everything, key=checkpoint_of) == everything
        assert [r.position for r in everything] == sorted(r.position for r in everything)
        transactions = [
            {r.transaction_id for r in everything if r.position in ps} for ps in appends
        ]
        assert [len(t) for t in transactions] == [1, 1, 1], "an append is one transaction"
        assert min(transactions[0]) < min(transactions[1]) < min(transactions[2])
        loaded = [*await store.load(fan_stream_id(a)), *await store.load(fan_stream_id(b))]
        assert sorted(everything, key=lambda r: r.position) == sorted(
            loaded, key=lambda r: r.position
        )
        for limit in (1, 2, 4):
            assert await read_everything(store, start, limit) == everything
            assert await store.read_all(start, limit) == everything[:limit]
        # A checkpoint inside one transaction's events resumes after that event.
        for cut in range(len(everything)):
            rest = await store.read_all(checkpoint_of(everything[cut]), 100)
            assert rest == everything[cut + 1 :]

    async def test_the_log_holds_every_tenants_events_each_in_its_own_streams(
        self, store: EventStore
    ) -> None:
        mine, theirs = new_tenant(), new_tenant()
        message_id = str(uuid.uuid4())
        start = await end_of_log(store)
        for tenant in (mine, theirs):
            message = queued(tenant, new_fan_id(), message_id)
            await store.append(
                message.id,
                "message",
                list(message.collect_events()),
                expected_version=0,
                metadata=meta(tenant),
            )

        for tenant in (mine, theirs):
            [recorded] = await store.load(message_stream_id(tenant, message_id))
            assert recorded.metadata.tenant == tenant
            assert isinstance(recorded.event, Message.Queued)
            assert recorded.event.tenant == tenant
        seen = await read_everything(store, start)
        assert [(r.stream_id, r.metadata.tenant) for r in seen] == [
            (message_stream_id(mine, message_id), mine),
            (message_stream_id(theirs, message_id), theirs),
        ]

    # --- a property ------------------------------------------------------------------------

    @settings(
        max_examples=25,
        deadline=None,
        # One method, run by a subclass per implementation: the executors differ on purpose,
        # and the fixture's store is shared by the examples, which use streams of their own.
        suppress_health_check=[
            HealthCheck.function_scoped_fixture,
            HealthCheck.too_slow,
            HealthCheck.differing_executors,
        ],
    )
    @given(data=st.data())
    async def test_any_sequence_of_appends_keeps_streams_gap_free_and_the_log_in_order(
        self, store: EventStore, data: st.DataObject
    ) -> None:
        """Appends and multi-stream appends at versions right, stale or ahead, in any order:
        each stream holds exactly the events of the accepted appends, versions 1..n, and the
        log holds them once each, positions growing in commit order."""
        start = await end_of_log(store)
        fan_ids = [new_fan_id() for _ in range(3)]
        heads = dict.fromkeys(fan_ids, 0)
        accepted: dict[int, list[DomainEvent]] = {fan_id: [] for fan_id in fan_ids}
        for _ in range(data.draw(st.integers(1, 10), label="appends")):
            chosen = data.draw(
                st.lists(st.sampled_from(fan_ids), min_size=1, max_size=3, unique=True)
            )
            planned = []
            for fan_id in chosen:
                head = heads[fan_id]
                expected = data.draw(st.sampled_from([head, head, max(head - 1, 0), head + 1]))
                count = data.draw(st.integers(1, 3))
                events = [fan_event_at(fan_id, expected + n) for n in range(1, count + 1)]
                planned.append((fan_id, expected, events))
            writes = [StreamWrite(fan_stream_id(f), "fan", ev, ex) for f, ex, ev in planned]
            right = all(expected == heads[fan_id] for fan_id, expected, _ in planned)
            try:
                if len(writes) == 1:
                    await store.append(
                        writes[0].stream_id,
                        "fan",
                        writes[0].events,
                        expected_version=writes[0].expected_version,
                        metadata=meta(),
                    )
                else:
                    await store.append_all(writes, metadata=meta())
            except ConcurrencyError:
                assert not right
            else:
                assert right
                for fan_id, _, events in planned:
                    accepted[fan_id] += events
                    heads[fan_id] += len(events)

        stored: list[RecordedEvent] = []
        for fan_id in fan_ids:
            loaded = await store.load(fan_stream_id(fan_id))
            assert [r.version for r in loaded] == list(range(1, heads[fan_id] + 1))
            assert [r.event for r in loaded] == accepted[fan_id]
            stored += loaded
        seen = await read_everything(store, start)
        assert sorted(seen, key=lambda r: r.position) == sorted(stored, key=lambda r: r.position)
        assert len({r.event_id for r in seen}) == len(seen)
        assert [r.position for r in seen] == sorted({r.position for r in seen})
        assert sorted(seen, key=checkpoint_of) == seen


def contender(fan_id: int, head: int, k: int) -> DomainEvent:
    """Contender ``k``'s own decision for version ``head + 1`` of the fan's stream."""
    if head == 0:
        return Fan.registered(fan_id=fan_id, tenant="user-1", name=f"Contender {k}")
    return Fan.conversation_opened_at(fan_id, head, conversation_id=k)


async def clock_passes(moment: datetime) -> None:
    """Wait until the clock is past ``moment``, so that the next append is recorded later."""
    async with asyncio.timeout(5):
        while True:
            if datetime.now(UTC) > moment:
                return
            await asyncio.sleep(0.001)
