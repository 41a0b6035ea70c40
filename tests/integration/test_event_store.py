"""The Postgres event store's own promise: the global log read in commit order under concurrent
writers, a late commit never skipped. What every EventStore promises (streams, optimistic
concurrency, idempotent appends, claims) is in the contract, tests/support/event_store_contract.py.
"""

from __future__ import annotations

import asyncio
import itertools
import random
import uuid
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
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
from application.ports import (
    Checkpoint,
    EventMetadata,
    RecordedEvent,
)
from domain.base import DomainEvent
from domain.fan import Fan, fan_stream_id
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
