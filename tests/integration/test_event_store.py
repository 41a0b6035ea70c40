"""The Postgres event store: streams, optimistic concurrency, idempotent appends, and the
global log read in commit order under concurrent writers."""

from __future__ import annotations

import asyncio
import itertools
import random
import uuid
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from datetime import timedelta
from typing import Any, cast

import asyncpg
import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from adapters import bootstrap
from adapters.crypto import MasterKey
from adapters.postgres.event_store import PostgresEventStore
from adapters.postgres.personal_data import PersonalDataCodec
from adapters.postgres.pool import connect, create_pool
from adapters.postgres.subject_keys import SubjectKeys
from application.errors import ClaimTaken, ConcurrencyError
from application.ports import (
    Checkpoint,
    Claim,
    EventMetadata,
    EventStore,
    RecordedEvent,
    StreamWrite,
)
from domain.base import DomainEvent
from domain.events import SCHEMA_VERSIONS
from domain.fan import Fan, fan_stream_id
from tests.support.fakes import InMemoryEventStore
from tests.support.settings import TEST_MASTER_KEY, settings_for

pytestmark = pytest.mark.timeout(60)

# Fan ids unique within the session database, which other tests share.
_fan_ids = itertools.count(random.SystemRandom().randrange(10**12, 10**13, 10**6))


def new_fan_id() -> int:
    return next(_fan_ids)


def meta(tenant: str = "user-1", **changes: object) -> EventMetadata:
    base = EventMetadata(
        tenant=tenant,
        actor=f"{tenant}:key-1",
        correlation_id=uuid.uuid4().hex,
        causation_id=uuid.uuid4().hex,
        trace_id=uuid.uuid4().hex,
    )
    return msgspec.structs.replace(base, **changes)


def fan_events(fan_id: int, *, updates: int = 0, delete: bool = False) -> list[DomainEvent]:
    """A new fan's pending events: Created, ``updates`` Updated, then Deleted if asked."""
    fan = Fan.register(fan_id=fan_id, tenant="user-1", name=f"Fan {fan_id}", tags=["VIP"])
    for i in range(updates):
        fan.update(value_cents=100 * (i + 1), notes=f"note {i}")
    if delete:
        fan.delete()
    return list(fan.collect_events())


START = Checkpoint()


async def read_everything(
    store: PostgresEventStore, after: Checkpoint = START, limit: int = 1000
) -> list[RecordedEvent]:
    """The global log after ``after``, read in batches of at most ``limit``."""
    out: list[RecordedEvent] = []
    while batch := await store.read_all(after, limit):
        assert len(batch) <= limit
        out.extend(batch)
        after = Checkpoint(batch[-1].transaction_id, batch[-1].position)
    return out


def commit_order(events: Sequence[RecordedEvent]) -> list[tuple[int, int]]:
    return [(e.transaction_id, e.position) for e in events]


@pytest.fixture
async def fresh(fresh_database_url: str) -> AsyncIterator[bootstrap.Container]:
    container = await bootstrap.build(settings_for(fresh_database_url))
    try:
        yield container
    finally:
        await container.close()


# --- streams ---------------------------------------------------------------------------------


async def test_appended_events_load_back_equal_with_versions_and_metadata(
    container: bootstrap.Container,
) -> None:
    store = container.events
    fan_id = new_fan_id()
    stream = fan_stream_id(fan_id)
    events = fan_events(fan_id, updates=3, delete=True)
    metadata = meta()

    async with asyncio.timeout(10):
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
    assert len({r.event_id for r in loaded}) == 5
    for recorded in loaded:
        assert recorded.metadata == metadata
        assert recorded.metadata.schema_version == SCHEMA_VERSIONS[recorded.event_type]
    # The aggregate replays from what was loaded.
    fan = None
    for recorded in loaded:
        fan = recorded.event.mutate(fan)
    assert fan is not None
    assert fan.deleted
    assert fan.value_cents == 300


async def test_the_store_stamps_each_events_own_schema_version_into_its_metadata(
    container: bootstrap.Container,
) -> None:
    fan_id = new_fan_id()
    stream = fan_stream_id(fan_id)
    stale = meta(schema_version=99)
    async with asyncio.timeout(10):
        await container.events.append(
            stream, "fan", fan_events(fan_id), expected_version=0, metadata=stale
        )
        (loaded,) = await container.events.load(stream)
    assert loaded.metadata.schema_version == SCHEMA_VERSIONS["FanCreated"]
    assert loaded.metadata == msgspec.structs.replace(stale, schema_version=1)


async def test_given_event_ids_are_stored(container: bootstrap.Container) -> None:
    fan_id = new_fan_id()
    stream = fan_stream_id(fan_id)
    ids = [uuid.uuid4(), uuid.uuid4()]
    async with asyncio.timeout(10):
        await container.events.append(
            stream,
            "fan",
            fan_events(fan_id, updates=1),
            expected_version=0,
            metadata=meta(),
            event_ids=ids,
        )
        loaded = await container.events.load(stream)
        with pytest.raises(ValueError, match="one event id per event"):
            await container.events.append(
                stream,
                "fan",
                fan_events(fan_id, updates=2)[2:],
                expected_version=2,
                metadata=meta(),
                event_ids=[],
            )
    assert [r.event_id for r in loaded] == ids


async def test_load_stops_at_up_to_version_and_at_as_of(container: bootstrap.Container) -> None:
    store = container.events
    fan_id = new_fan_id()
    stream = fan_stream_id(fan_id)
    everything = fan_events(fan_id, updates=4)
    async with asyncio.timeout(10):
        await store.append(stream, "fan", everything[:3], expected_version=0, metadata=meta())
        first = await store.load(stream)
        await asyncio.sleep(0.02)  # recorded_at is the transaction's start time
        await store.append(stream, "fan", everything[3:], expected_version=3, metadata=meta())
        full = await store.load(stream)

        assert [r.version for r in full] == [1, 2, 3, 4, 5]
        assert full[3].recorded_at > full[2].recorded_at

        up_to_2 = await store.load(stream, up_to_version=2)
        assert [r.event for r in up_to_2] == everything[:2]
        assert await store.load(stream, up_to_version=0) == []
        assert await store.load(stream, up_to_version=99) == full

        as_of_first = await store.load(stream, as_of=first[-1].recorded_at)
        assert [r.event for r in as_of_first] == everything[:3]
        assert await store.load(stream, as_of=first[0].recorded_at - timedelta(seconds=1)) == []
        assert await store.load(stream, as_of=full[-1].recorded_at) == full
        both = await store.load(stream, up_to_version=2, as_of=full[-1].recorded_at)
        assert [r.version for r in both] == [1, 2]

        assert await store.load("fan-does-not-exist") == []


async def test_appending_nothing_stores_nothing(container: bootstrap.Container) -> None:
    stream = fan_stream_id(new_fan_id())
    async with asyncio.timeout(10):
        assert (
            await container.events.append(stream, "fan", [], expected_version=0, metadata=meta())
            == []
        )
        assert await container.events.load(stream) == []


async def test_latest_event_type_names_the_newest_of_the_types_asked_and_none_without_one(
    container: bootstrap.Container,
) -> None:
    store = container.events
    fan_id = new_fan_id()
    stream = fan_stream_id(fan_id)
    # FanCreated, FanUpdated x3, FanDeleted
    await store.append(
        stream,
        "fan",
        fan_events(fan_id, updates=3, delete=True),
        expected_version=0,
        metadata=meta(),
    )
    assert await store.latest_event_type(stream, ["FanCreated", "FanUpdated"]) == "FanUpdated"
    assert await store.latest_event_type(stream, ["FanDeleted", "FanCreated"]) == "FanDeleted"
    assert await store.latest_event_type(stream, ["FanCreated"]) == "FanCreated"
    assert await store.latest_event_type(stream, ["CampaignPaused"]) is None
    assert await store.latest_event_type(fan_stream_id(new_fan_id()), ["FanCreated"]) is None


# --- optimistic concurrency ------------------------------------------------------------------


def contender(fan_id: int, head: int, k: int) -> DomainEvent:
    """Contender ``k``'s own decision for version ``head + 1`` of the fan's stream."""
    fan = Fan.register(fan_id=fan_id, tenant="user-1", name=f"Contender {k}")
    for i in range(head):
        fan.update(value_cents=1000 * k + i + 1)
    return fan.collect_events()[-1]


@pytest.mark.parametrize("head", [0, 2])
async def test_of_eight_concurrent_appends_at_one_expected_version_exactly_one_wins(
    container: bootstrap.Container, head: int
) -> None:
    store = container.events
    async with asyncio.timeout(20):
        for _ in range(5):  # several streams, so the appends really do race
            fan_id = new_fan_id()
            stream = fan_stream_id(fan_id)
            history = fan_events(fan_id, updates=head - 1) if head else []
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
            assert len(losers) == 7
            assert all(isinstance(e, ConcurrencyError) for e in losers), losers
            ((k, positions),) = winners
            loaded = await store.load(stream)
            assert [r.version for r in loaded] == list(range(1, head + 2))
            assert [r.event for r in loaded] == [*history, decisions[k]]
            assert loaded[-1].position == positions[0]


async def test_an_append_beyond_the_head_or_behind_it_is_a_conflict(
    container: bootstrap.Container,
) -> None:
    store = container.events
    fan_id = new_fan_id()
    stream = fan_stream_id(fan_id)
    events = fan_events(fan_id, updates=3)
    async with asyncio.timeout(10):
        with pytest.raises(ConcurrencyError, match="at version 0, expected 1"):
            await store.append(stream, "fan", events[1:2], expected_version=1, metadata=meta())
        assert await store.load(stream) == []

        await store.append(stream, "fan", events[:2], expected_version=0, metadata=meta())
        with pytest.raises(ConcurrencyError, match="at version 2, expected 3"):
            await store.append(stream, "fan", events[3:], expected_version=3, metadata=meta())
        with pytest.raises(ConcurrencyError, match="at version 2, expected 1"):
            await store.append(stream, "fan", events[2:3], expected_version=1, metadata=meta())
        with pytest.raises(ConcurrencyError):
            await store.append(stream, "fan", events[:1], expected_version=0, metadata=meta())
        assert [r.version for r in await store.load(stream)] == [1, 2]

        await store.append(stream, "fan", events[2:], expected_version=2, metadata=meta())
        assert [r.event for r in await store.load(stream)] == events


# --- idempotent appends ----------------------------------------------------------------------


async def count_stream(container: bootstrap.Container, stream: str) -> int:
    return await container.pool.fetchval("SELECT count(*) FROM events WHERE stream_id = $1", stream)


async def test_reappending_stored_event_ids_returns_their_positions_and_stores_nothing(
    container: bootstrap.Container,
) -> None:
    store = container.events
    fan_id = new_fan_id()
    stream = fan_stream_id(fan_id)
    events = fan_events(fan_id, updates=2)
    ids = [uuid.uuid4() for _ in events]
    async with asyncio.timeout(10):
        positions = await store.append(
            stream, "fan", events, expected_version=0, metadata=meta(), event_ids=ids
        )
        stored = await store.load(stream)

        # A retry of the same append (same expected version).
        again = await store.append(
            stream, "fan", events, expected_version=0, metadata=meta(), event_ids=ids
        )
        # A retry that believes the stream is at its head: the insert itself collides.
        at_head = await store.append(
            stream, "fan", events, expected_version=3, metadata=meta(), event_ids=ids
        )
        # A retry of only the tail of the batch.
        tail = await store.append(
            stream, "fan", events[1:], expected_version=1, metadata=meta(), event_ids=ids[1:]
        )

        assert again == at_head == positions
        assert tail == positions[1:]
        assert await count_stream(container, stream) == 3
        assert await store.load(stream) == stored

        # Known ids mixed with a new one are not a retry: a conflict, and nothing is stored.
        with pytest.raises(ConcurrencyError):
            await store.append(
                stream,
                "fan",
                events,
                expected_version=0,
                metadata=meta(),
                event_ids=[*ids[:2], uuid.uuid4()],
            )
        assert await count_stream(container, stream) == 3


async def test_the_same_event_ids_appended_concurrently_are_stored_once(
    container: bootstrap.Container,
) -> None:
    store = container.events
    async with asyncio.timeout(20):
        for _ in range(10):
            fan_id = new_fan_id()
            stream = fan_stream_id(fan_id)
            events = fan_events(fan_id, updates=2)
            ids = [uuid.uuid4() for _ in events]
            first, second = await asyncio.gather(
                *(
                    store.append(
                        stream, "fan", events, expected_version=0, metadata=meta(), event_ids=ids
                    )
                    for _ in range(2)
                )
            )
            assert first == second
            assert len(first) == 3
            stored = await store.load(stream)
            assert [r.event_id for r in stored] == ids
            assert [r.position for r in stored] == first
            assert await count_stream(container, stream) == 3


# --- the global log --------------------------------------------------------------------------


class OneConnection:
    """A pool of one connection, so that the store's own append runs inside a transaction
    the test opened on it, and commits (or rolls back) when the test says."""

    def __init__(self, conn: asyncpg.Connection) -> None:
        self._conn = conn

    @asynccontextmanager
    async def acquire(self) -> AsyncIterator[asyncpg.Connection]:
        yield self._conn

    def __getattr__(self, name: str) -> Any:
        return getattr(self._conn, name)


async def insert_events(
    conn: asyncpg.Connection, fan_id: int, events: Sequence[DomainEvent], first_version: int = 1
) -> list[uuid.UUID]:
    """Append with the store, in ``conn``'s open transaction; returns the events' ids."""
    pool = cast(asyncpg.Pool, OneConnection(conn))
    keys = SubjectKeys(pool, MasterKey.parse(TEST_MASTER_KEY))
    store = PostgresEventStore(pool, PersonalDataCodec(keys))
    ids = [uuid.uuid4() for _ in events]
    await store.append(
        fan_stream_id(fan_id),
        "fan",
        events,
        expected_version=first_version - 1,
        metadata=meta(),
        event_ids=ids,
    )
    return ids


class _RollBack(Exception):
    pass


async def test_read_all_stops_before_an_open_transaction_that_inserted_first(
    fresh: bootstrap.Container, fresh_database_url: str
) -> None:
    store = fresh.events
    a = await connect(fresh_database_url)
    b = await connect(fresh_database_url)
    try:
        async with asyncio.timeout(15):
            a_tx = a.transaction()
            await a_tx.start()
            a_ids = await insert_events(a, 1, fan_events(1))  # lower xid, lower position
            async with b.transaction():
                b_ids = await insert_events(b, 2, fan_events(2, updates=1))

            # B committed, but A (older, lower position) is still open: nothing is readable.
            assert await store.read_all(Checkpoint(), 100) == []
            assert await store.head() == Checkpoint()
            # Only B's two rows are visible to others; A's row exists but is uncommitted.
            assert await fresh.pool.fetchval("SELECT count(*) FROM events") == 2

            await a_tx.commit()
            seen = await store.read_all(Checkpoint(), 100)
            assert [r.event_id for r in seen] == [*a_ids, *b_ids]
            assert commit_order(seen) == sorted(commit_order(seen))
            assert seen[0].position < seen[1].position
            last = Checkpoint(seen[-1].transaction_id, seen[-1].position)
            assert await store.head() == last
            assert await store.read_all(last, 100) == []
            # Reading in small steps gives the same order.
            assert [r.event_id for r in await read_everything(store, limit=1)] == [
                *a_ids,
                *b_ids,
            ]
    finally:
        await a.close()
        await b.close()


async def test_read_all_delivers_a_late_commit_after_events_with_higher_positions(
    fresh: bootstrap.Container, fresh_database_url: str
) -> None:
    """B takes its transaction id first, A inserts (lower position), B inserts and commits.
    A reader sees B's event while A is open, and A's lower position once A commits."""
    store = fresh.events
    a = await connect(fresh_database_url)
    b = await connect(fresh_database_url)
    try:
        async with asyncio.timeout(15):
            b_tx = b.transaction()
            await b_tx.start()
            b_xid = await b.fetchval("SELECT pg_current_xact_id()::text::bigint")
            a_tx = a.transaction()
            await a_tx.start()
            a_ids = await insert_events(a, 1, fan_events(1))
            a_xid = await a.fetchval("SELECT pg_current_xact_id()::text::bigint")
            b_ids = await insert_events(b, 2, fan_events(2))
            assert b_xid < a_xid

            # B still open: it is the oldest transaction, so nothing is readable yet.
            assert await store.read_all(Checkpoint(), 100) == []
            await b_tx.commit()

            first = await store.read_all(Checkpoint(), 100)
            assert [r.event_id for r in first] == b_ids, "A is open: only B, older, is readable"
            checkpoint = Checkpoint(first[-1].transaction_id, first[-1].position)
            assert await store.read_all(checkpoint, 100) == []

            await a_tx.commit()
            second = await store.read_all(checkpoint, 100)
            assert [r.event_id for r in second] == a_ids
            assert second[0].position < first[0].position, "a lower position, delivered later"
            assert (second[0].transaction_id, second[0].position) > (
                checkpoint.transaction_id,
                checkpoint.position,
            )
            assert [r.event_id for r in await read_everything(store)] == [*b_ids, *a_ids]
    finally:
        await a.close()
        await b.close()


async def test_a_rolled_back_append_never_reaches_readers(
    fresh: bootstrap.Container, fresh_database_url: str
) -> None:
    store = fresh.events
    conn = await connect(fresh_database_url)
    try:
        async with asyncio.timeout(15):
            tx = conn.transaction()
            await tx.start()
            await insert_events(conn, 1, fan_events(1))
            assert await store.read_all(Checkpoint(), 100) == []
            await tx.rollback()
            kept = await fresh.events.append(
                "fan-2", "fan", fan_events(2), expected_version=0, metadata=meta()
            )
            seen = await read_everything(store)
            assert [r.position for r in seen] == kept
            assert [r.stream_id for r in seen] == ["fan-2"]
    finally:
        await conn.close()


class WriterPlan(msgspec.Struct, frozen=True):
    start_ms: int  # when the writer begins
    events: int  # how many events it inserts (in one or two statements)
    split: bool  # insert in two statements, pausing between them
    xid_first: bool  # take a transaction id before inserting, then pause
    hold_ms: int  # how long the transaction stays open after inserting
    rollback: bool


writer_plans = st.builds(
    WriterPlan,
    start_ms=st.integers(0, 120),
    events=st.integers(1, 4),
    split=st.booleans(),
    xid_first=st.booleans(),
    hold_ms=st.one_of(st.just(0), st.integers(0, 20), st.integers(20, 250)),
    rollback=st.sampled_from([False, False, True]),
)


@settings(
    max_examples=8,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    plans=st.lists(writer_plans, min_size=6, max_size=30),
    limit=st.integers(1, 8),
    reader_pause_ms=st.integers(0, 5),
)
@pytest.mark.timeout(90)
async def test_a_reader_tailing_the_log_sees_each_committed_event_once_in_commit_order(
    fresh: bootstrap.Container,
    fresh_database_url: str,
    plans: list[WriterPlan],
    limit: int,
    reader_pause_ms: int,
) -> None:
    store = fresh.events
    # Examples share the database: each starts where the log is now.
    start = await store.head()
    fan_ids = [new_fan_id() for _ in plans]
    committed: dict[uuid.UUID, int] = {}
    rolled_back: set[uuid.UUID] = set()
    writers_done = asyncio.Event()

    async def write(index: int, plan: WriterPlan, pool: asyncpg.Pool) -> None:
        await asyncio.sleep(plan.start_ms / 1000)
        fan_id = fan_ids[index]
        events = fan_events(fan_id, updates=plan.events - 1)
        ids: list[uuid.UUID] = []
        async with pool.acquire() as conn:
            try:
                async with conn.transaction():
                    if plan.xid_first:
                        await conn.fetchval("SELECT pg_current_xact_id()")
                        await asyncio.sleep(plan.hold_ms / 2000)
                    cut = len(events) // 2 if plan.split and len(events) > 1 else len(events)
                    ids += await insert_events(conn, fan_id, events[:cut])
                    if cut < len(events):
                        await asyncio.sleep(0.005)
                        ids += await insert_events(conn, fan_id, events[cut:], cut + 1)
                    await asyncio.sleep(plan.hold_ms / 1000)
                    if plan.rollback:
                        raise _RollBack
            except _RollBack:
                rolled_back.update(ids)
                return
        committed.update(dict.fromkeys(ids, index))

    async def read() -> list[RecordedEvent]:
        seen: list[RecordedEvent] = []
        checkpoint = start
        while True:
            finished = writers_done.is_set()
            batch = await store.read_all(checkpoint, limit)
            assert len(batch) <= limit
            seen.extend(batch)
            if batch:
                checkpoint = Checkpoint(batch[-1].transaction_id, batch[-1].position)
            elif finished:
                return seen
            await asyncio.sleep(reader_pause_ms / 1000)

    async def write_all() -> None:
        pool = await create_pool(fresh_database_url, min_size=1, max_size=12)
        try:
            await asyncio.gather(*(write(i, plan, pool) for i, plan in enumerate(plans)))
        finally:
            writers_done.set()
            await pool.close()

    async with asyncio.timeout(30):
        seen, _ = await asyncio.gather(read(), write_all())
        final = await read_everything(store, start)

    seen_ids = [r.event_id for r in seen]
    assert len(seen_ids) == len(set(seen_ids)), "an event was delivered twice"
    assert set(seen_ids) == set(committed), "a committed event was skipped"
    assert not rolled_back & set(seen_ids)
    assert commit_order(seen) == sorted(commit_order(seen))
    assert len(set(commit_order(seen))) == len(seen)
    assert seen_ids == [r.event_id for r in final]
    # Each writer's transaction arrives whole, contiguous and in version order.
    for index in set(committed.values()):
        places = [i for i, r in enumerate(seen) if committed[r.event_id] == index]
        assert places == list(range(places[0], places[0] + len(places)))
        mine = [seen[i] for i in places]
        assert [r.version for r in mine] == list(range(1, len(mine) + 1))
        assert len({r.transaction_id for r in mine}) == 1


# --- unique claims (one contract: the Postgres store and the in-memory fake) ----------------


@pytest.fixture(params=["postgres", "memory"])
def claims_store(request: pytest.FixtureRequest, container: bootstrap.Container) -> EventStore:
    if request.param == "postgres":
        return container.events
    return InMemoryEventStore()


def new_fan(tenant: str, handle: str = "ann") -> StreamWrite:
    """A new fan's stream, claiming ``handle`` on OnlyFans."""
    fan_id = new_fan_id()
    fan = Fan.register(fan_id=fan_id, tenant=tenant, handle=handle)
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


async def test_a_key_another_stream_claimed_refuses_the_whole_append_naming_the_holder(
    claims_store: EventStore,
) -> None:
    tenant = f"user-{uuid.uuid4().hex[:12]}"
    first, second = new_fan(tenant), new_fan(tenant)
    await claims_store.append_all([first], metadata=meta(tenant))

    with pytest.raises(ClaimTaken) as taken:
        await claims_store.append_all([second], metadata=meta(tenant))

    assert taken.value.key == "onlyfans:handle:ann"
    assert taken.value.holder.stream_id == first.stream_id
    assert await claims_store.load(second.stream_id) == []


async def test_a_holder_claims_its_key_again_and_a_released_key_is_free_for_another(
    claims_store: EventStore,
) -> None:
    tenant = f"user-{uuid.uuid4().hex[:12]}"
    first, second = new_fan(tenant), new_fan(tenant)
    key = "onlyfans:handle:ann"
    await claims_store.append_all([first], metadata=meta(tenant))
    await claims_store.append_all([renamed(first, 1, claims=(Claim(key),))], metadata=meta(tenant))

    await claims_store.append_all([renamed(first, 2, releases=(key,))], metadata=meta(tenant))
    await claims_store.append_all([second], metadata=meta(tenant))

    with pytest.raises(ClaimTaken):
        await claims_store.append_all(
            [renamed(first, 3, claims=(Claim(key),))], metadata=meta(tenant)
        )
    assert [r.version for r in await claims_store.load(first.stream_id)] == [1, 2, 3]


async def test_claims_of_one_key_in_two_tenants_never_meet(claims_store: EventStore) -> None:
    mine, theirs = f"user-{uuid.uuid4().hex[:12]}", f"user-{uuid.uuid4().hex[:12]}"

    await claims_store.append_all([new_fan(mine)], metadata=meta(mine))
    await claims_store.append_all([new_fan(theirs)], metadata=meta(theirs))


async def test_a_takeover_wins_only_while_the_holder_has_not_claimed_again(
    claims_store: EventStore,
) -> None:
    tenant = f"user-{uuid.uuid4().hex[:12]}"
    holder, stale_taker, taker = new_fan(tenant), new_fan(tenant), new_fan(tenant)
    key = "onlyfans:handle:ann"
    await claims_store.append_all([holder], metadata=meta(tenant))
    with pytest.raises(ClaimTaken) as seen:
        await claims_store.append_all([stale_taker], metadata=meta(tenant))
    await claims_store.append_all([renamed(holder, 1, claims=(Claim(key),))], metadata=meta(tenant))
    with pytest.raises(ClaimTaken) as now:
        await claims_store.append_all(
            [msgspec.structs.replace(stale_taker, claims=(Claim(key, seen.value.holder),))],
            metadata=meta(tenant),
        )

    await claims_store.append_all(
        [msgspec.structs.replace(taker, claims=(Claim(key, now.value.holder),))],
        metadata=meta(tenant),
    )

    with pytest.raises(ClaimTaken) as after:
        await claims_store.append_all([new_fan(tenant)], metadata=meta(tenant))
    assert after.value.holder.stream_id == taker.stream_id


async def test_of_eight_concurrent_claims_of_one_key_exactly_one_wins(
    claims_store: EventStore,
) -> None:
    tenant = f"user-{uuid.uuid4().hex[:12]}"
    writes = [new_fan(tenant) for _ in range(8)]

    async with asyncio.timeout(20):
        results = await asyncio.gather(
            *(claims_store.append_all([w], metadata=meta(tenant)) for w in writes),
            return_exceptions=True,
        )

    winners = [w for w, r in zip(writes, results, strict=True) if isinstance(r, list)]
    assert len(winners) == 1, results
    assert all(isinstance(r, ClaimTaken) for r in results if not isinstance(r, list)), results
    for write in writes:
        assert bool(await claims_store.load(write.stream_id)) == (write in winners)
