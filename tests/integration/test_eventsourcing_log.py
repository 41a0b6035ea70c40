"""fancrm's log as eventsourcing's ApplicationRecorder (adapters/postgres/eventsourcing_log/).

eventsourcing's own recorder test cases are subclassed as its backends subclass them; those
that write arbitrary stored events are skipped (the log takes events only from fancrm's
domain), and each promise they check is checked below on real events appended through the
store and sealed by the event chain: commit order, ids that only grow, start/limit/stop,
topics, the max id, and a late commit never skipped.
"""

from __future__ import annotations

import asyncio
import tempfile
import unittest
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, cast

import asyncpg
import pytest
from eventsourcing.persistence import NotSupportedError, StoredEvent, TrackingRecorder
from eventsourcing.tests.persistence import ApplicationRecorderTestCase, TrackingRecorderTestCase
from eventsourcing.utils import get_topic

from adapters import bootstrap
from adapters.crypto import MasterKey
from adapters.postgres.event_store import PostgresEventStore, notifications
from adapters.postgres.eventsourcing_log import Factory
from adapters.postgres.eventsourcing_log.recorder import LogRecorder
from adapters.postgres.personal_data import PersonalDataCodec
from adapters.postgres.pool import connect
from adapters.postgres.subject_keys import SubjectKeys
from application.ports import Checkpoint
from domain.fan import Fan
from tests.support.eventsourcing_log import add_fan, log_recorder, meta, new_fan_id, seal
from tests.support.settings import TEST_MASTER_KEY

pytestmark = pytest.mark.timeout(60)

WRITES_REFUSED = (
    "inserts arbitrary stored events (topics 'topic1', states b'state1'): fancrm's log takes"
    " events only from its own domain, and insert_events is refused (NotSupportedError);"
    " test_{} below checks the same promise on real events"
)


class TestApplicationRecorder(ApplicationRecorderTestCase[LogRecorder]):
    """Every case of eventsourcing's suite writes stored events of its own making."""

    def create_recorder(self) -> LogRecorder:
        raise NotImplementedError("no case here reaches a recorder: see the skips")

    @unittest.skip(WRITES_REFUSED.format("notifications_in_commit_order_with_growing_ids"))
    def test_insert_select(self) -> None: ...

    @unittest.skip(WRITES_REFUSED.format("notifications_in_commit_order_with_growing_ids"))
    def test_performance(self) -> None: ...

    @unittest.skip(WRITES_REFUSED.format("a_late_commit_is_never_skipped"))
    def test_concurrent_no_conflicts(self, initial_position: int = 0) -> None: ...  # noqa: PT028

    @unittest.skip(WRITES_REFUSED.format("a_late_commit_is_never_skipped"))
    def test_concurrent_throughput(self) -> None: ...


class TestTrackingRecorderSQLite(TrackingRecorderTestCase):
    """The tracking a projection gets from this module when it is the projection's too."""

    def setUp(self) -> None:
        self._folder = tempfile.TemporaryDirectory()
        self.factory = Factory({"SQLITE_DBNAME": str(Path(self._folder.name) / "views.db")})

    def tearDown(self) -> None:
        self.factory.close()
        self._folder.cleanup()

    def create_recorder(self) -> TrackingRecorder:
        return self.factory.tracking_recorder()


class TestTrackingRecorderInMemory(TrackingRecorderTestCase):
    def create_recorder(self) -> TrackingRecorder:
        return Factory({}).tracking_recorder()


# --- the same promises on fancrm's events ------------------------------------------------------


async def test_notifications_in_commit_order_with_growing_ids(
    fresh: bootstrap.Container, fresh_database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = fresh.events
    streams = [await add_fan(store, updates=1), await add_fan(store), await add_fan(store)]
    async with log_recorder(fresh_database_url) as recorder:
        assert recorder.select_notifications(None, 10) == []
        assert recorder.max_notification_id() is None, "nothing sealed: nothing notified"
        assert await seal(fresh, 4) == 4
        everything = recorder.select_notifications(start=None, limit=10)
        in_commit_order = await store.read_all(Checkpoint(), 10)
        assert [n.id for n in everything] == [1, 2, 3, 4]
        assert [(n.originator_id, n.originator_version) for n in everything] == [
            (r.stream_id, r.version) for r in in_commit_order
        ]
        assert [n.originator_id for n in everything] == [streams[0], *streams]
        assert everything[0].topic == get_topic(Fan.Created)
        assert everything[1].topic == get_topic(Fan.Updated)
        assert recorder.max_notification_id() == 4

        def ids(*args: Any, **kwargs: Any) -> list[int]:
            return [n.id for n in recorder.select_notifications(*args, **kwargs)]

        assert ids(start=1, limit=10) == [1, 2, 3, 4]
        assert ids(start=None, limit=10, stop=2) == [1, 2]
        assert ids(start=1, limit=10, inclusive_of_start=False) == [2, 3, 4]
        assert ids(start=3, limit=10, inclusive_of_start=False) == [4]
        assert ids(2, 2) == [2, 3]
        assert ids(1, 1, inclusive_of_start=False) == [2]
        assert ids(4, 1, inclusive_of_start=False) == []
        assert ids(start=1, limit=10, stop=2, inclusive_of_start=False) == [2]
        assert ids(1, 10, topics=[get_topic(Fan.Created)]) == [1, 3, 4]
        assert ids(1, 10, topics=["FanUpdated"]) == [2], "a stable type name filters too"
        assert ids(1, 10, topics=[get_topic(Fan.Updated), "FanCreated"]) == [1, 2, 3, 4]
        assert ids(1, 10, topics=["topic-of-nobody"]) == []
        # A filtered read goes window by window through the chain's numbers until it has enough.
        monkeypatch.setattr(notifications, "WINDOW", 1)
        assert ids(2, 1, topics=["FanCreated"]) == [3]
        assert ids(None, 2, topics=["FanCreated"], stop=3) == [1, 3]
        assert ids(4, 10, topics=["FanUpdated"]) == []

        # More commits get the next ids; nothing before them moves.
        later = await add_fan(store)
        assert await seal(fresh, 1) == 1
        assert ids(None, 10) == [1, 2, 3, 4, 5]
        assert recorder.select_notifications(5, 1)[0].originator_id == later

        with pytest.raises(NotSupportedError):
            recorder.insert_events([StoredEvent(later, 2, "topic1", b"state1")])


async def test_a_late_commit_is_never_skipped(
    fresh: bootstrap.Container, fresh_database_url: str
) -> None:
    """A inserts first and stays open; B commits. Nothing is numbered until A commits, then
    A's event comes first: a reader that already asked for the max id never misses it."""
    a = await connect(fresh_database_url)
    try:
        a_tx = a.transaction()
        await a_tx.start()
        a_stream = await add_fan(_store_on(a))
        b_stream = await add_fan(fresh.events)
        async with log_recorder(fresh_database_url) as recorder:
            assert await seal(fresh) == 0, "the sealer waits for the older transaction"
            assert recorder.max_notification_id() is None
            await a_tx.commit()
            assert await seal(fresh, 2) == 2
            seen = recorder.select_notifications(None, 10)
            assert [(n.id, n.originator_id) for n in seen] == [(1, a_stream), (2, b_stream)]
    finally:
        await a.close()


async def test_personal_fields_need_the_master_key_and_never_come_back_once_erased(
    fresh: bootstrap.Container, fresh_database_url: str
) -> None:
    kept = await add_fan(fresh.events, name="Kept Name")
    gone = Fan.register(fan_id=new_fan_id(), tenant="user-1", name="Erased Name")
    await fresh.events.append(
        gone.id, "fan", list(gone.collect_events()), expected_version=0, metadata=meta("user-1")
    )
    gone.erase()
    await fresh.events.append(
        gone.id, "fan", list(gone.collect_events()), expected_version=1, metadata=meta("user-1")
    )
    erased = gone.id
    await seal(fresh, 3)

    async def names(**env: str) -> dict[str, Any]:
        async with log_recorder(fresh_database_url, **env) as recorder:
            found = recorder.select_notifications(None, 10, topics=["FanCreated"])
            streams = [recorder.select_events(fan)[0] for fan in (kept, erased)]
        assert [s.recorded.event.name for s in streams] == [n.recorded.event.name for n in found]
        return {n.originator_id: n.recorded.event.name for n in found}

    assert await names() == {kept: "Kept Name", erased: None}
    assert await names(CRM_MASTER_KEY="") == {kept: None, erased: None}


def _store_on(conn: asyncpg.Connection) -> PostgresEventStore:
    """The store on one connection, so its append runs in the transaction the test opened."""

    class One:
        @asynccontextmanager
        async def acquire(self) -> AsyncIterator[asyncpg.Connection]:
            yield conn

        def __getattr__(self, name: str) -> Any:
            return getattr(conn, name)

    pool = cast(asyncpg.Pool, One())
    return PostgresEventStore(
        pool, PersonalDataCodec(SubjectKeys(pool, MasterKey.parse(TEST_MASTER_KEY)))
    )


async def test_a_tenant_sees_only_its_own_events(
    fresh: bootstrap.Container, fresh_database_url: str
) -> None:
    mine = await add_fan(fresh.events, "tenant-a", updates=1)
    await add_fan(fresh.events, "tenant-b")
    await seal(fresh, 3)
    async with log_recorder(fresh_database_url, FANCRM_TENANT="tenant-a") as recorder:
        seen = recorder.select_notifications(None, 10)
        assert [(n.id, n.originator_id) for n in seen] == [(1, mine), (2, mine)]
        assert recorder.max_notification_id() == 2
        assert recorder.select_events(mine)[-1].originator_version == 2
    async with log_recorder(fresh_database_url, FANCRM_TENANT="tenant-c") as recorder:
        assert recorder.select_notifications(None, 10) == []
        assert recorder.max_notification_id() is None


async def test_a_subscription_follows_the_log_as_the_sealer_numbers_it(
    fresh: bootstrap.Container, fresh_database_url: str
) -> None:
    first = await add_fan(fresh.events)
    await seal(fresh, 1)
    async with log_recorder(fresh_database_url) as recorder:
        with recorder.subscribe(gt=None, topics=["FanCreated"]) as subscription:
            seen = await asyncio.to_thread(next, subscription)
            assert (seen.id, seen.originator_id) == (1, first)
            waiting = asyncio.ensure_future(asyncio.to_thread(next, subscription))
            later = await add_fan(fresh.events, updates=1)  # FanUpdated: not a topic asked for
            await seal(fresh, 2)
            seen = await asyncio.wait_for(waiting, timeout=10)
            assert (seen.id, seen.originator_id) == (2, later)
            subscription.stop()
            with pytest.raises(StopIteration):
                next(subscription)


async def test_a_quiet_tenants_subscription_reads_past_the_others_events_once(
    fresh: bootstrap.Container, fresh_database_url: str
) -> None:
    mine = await add_fan(fresh.events, "quiet")
    for _ in range(3):
        await add_fan(fresh.events, "busy", updates=1)
    await seal(fresh, 7)
    async with log_recorder(fresh_database_url, FANCRM_TENANT="quiet") as recorder:
        with recorder.subscribe(gt=None) as subscription:
            seen = await asyncio.to_thread(next, subscription)
            assert (seen.id, seen.originator_id) == (1, mine)
            # Its next read starts after the busy tenant's six, not again from its own event.
            assert subscription.reading_after == 7
            waiting = asyncio.ensure_future(asyncio.to_thread(next, subscription))
            later = await add_fan(fresh.events, "quiet")
            await seal(fresh, 1)
            seen = await asyncio.wait_for(waiting, timeout=10)
            assert (seen.id, seen.originator_id) == (8, later)
            subscription.stop()
