"""The live hub on real Postgres: one tail shared by every client, a slow client closed with
its resume position instead of holding the others back."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Iterator

import pytest
from opentelemetry.sdk.metrics.export import InMemoryMetricReader

from adapters import bootstrap, metrics
from adapters.live import session
from adapters.live.hub import LiveHub, live_hub
from adapters.live.subscription import Filters
from adapters.live.updates import Update
from tests.support.campaigns import bulk_fans
from tests.support.live import eventually

pytestmark = pytest.mark.timeout(60)


@contextlib.asynccontextmanager
async def hub_of(container: bootstrap.Container, **options: int) -> AsyncIterator[LiveHub]:
    hub = live_hub(container)
    for name, value in options.items():
        setattr(hub, name, value)
    try:
        yield hub
    finally:
        await hub.close()


def fans_only() -> Filters:
    return Filters.parse(None, None, "fan.updated")


async def first_update(stream: AsyncIterator[Update]) -> Update:
    """The stream's first update, after ``live`` (which says where it went live)."""
    assert (await anext(stream))["type"] == "live"
    return await anext(stream)


async def test_a_slow_client_is_closed_with_its_resume_position_and_resumes_from_it(
    container: bootstrap.Container,
) -> None:
    tenant = f"user-{uuid.uuid4().hex[:12]}"
    async with asyncio.timeout(30), hub_of(container, queue_size=6) as hub:
        slow = session.stream(hub, container.pool, tenant, fans_only(), None)
        fast = session.stream(hub, container.pool, tenant, fans_only(), None)
        first_of_slow = asyncio.ensure_future(first_update(slow))
        first_of_fast = asyncio.ensure_future(first_update(fast))
        await eventually(lambda: hub.clients == 2)

        # The fast client reads each batch of four as it comes; the slow one reads nothing
        # after its first, and its queue of six overflows on the second batch.
        fans = await bulk_fans(container, tenant, 1)
        fast_seen = [await first_of_fast]
        more: list[int] = []
        for _ in range(3):
            more += await bulk_fans(container, tenant, 4)
            while len(fast_seen) < 1 + len(more):
                fast_seen.append(await anext(fast))
        assert [u["fanId"] for u in fast_seen] == fans + more

        handed = await first_of_slow
        assert handed["fanId"] == fans[0]
        closing: Update = await anext(slow)
        assert closing["type"] == "closing"
        assert closing["resumeAfter"] == handed["position"]
        with pytest.raises(StopAsyncIteration):
            await anext(slow)
        assert hub.clients == 1

        # Reconnecting from the position it was given loses nothing.
        resumed = session.stream(hub, container.pool, tenant, fans_only(), closing["resumeAfter"])
        replayed = [await anext(resumed) for _ in range(12)]
        assert [u["fanId"] for u in replayed] == more
        await resumed.aclose()
        await fast.aclose()


async def test_one_tail_serves_every_client_of_the_process(
    container: bootstrap.Container,
) -> None:
    tenant = f"user-{uuid.uuid4().hex[:12]}"
    async with asyncio.timeout(30), hub_of(container) as hub:
        streams = [
            session.stream(hub, container.pool, tenant, fans_only(), None) for _ in range(50)
        ]
        firsts = [asyncio.ensure_future(first_update(stream)) for stream in streams]
        await eventually(lambda: hub.clients == 50)
        reads_before = hub.batches_read
        fans = await bulk_fans(container, tenant, 3)
        got = await asyncio.gather(*firsts)
        assert {u["fanId"] for u in got} == {fans[0]}
        # The batches holding those three fans were read once for all fifty clients (other
        # tests' writes to the shared database may add batches, never fifty times as many).
        assert hub.batches_read - reads_before < 50
        for stream in streams:
            await stream.aclose()
        assert hub.clients == 0


async def test_clients_that_keep_reading_keep_up_with_a_burst_of_full_batches(
    container: bootstrap.Container,
) -> None:
    tenant = f"user-{uuid.uuid4().hex[:12]}"
    async with asyncio.timeout(30), hub_of(container) as hub:
        streams = [
            session.stream(hub, container.pool, tenant, fans_only(), None) for _ in range(20)
        ]

        async def read(stream: AsyncIterator[Update]) -> list[str]:
            types = []
            async for update in stream:
                if update["type"] == "live":
                    continue
                types.append(update["type"])
                if len(types) == 3000 or update["type"] == "closing":
                    break
            return types

        readers = [asyncio.ensure_future(read(stream)) for stream in streams]
        await eventually(lambda: hub.clients == 20)
        # Three times the queue's 1,000 in bursts of 500 (the hub's batch), as fast as the
        # database takes them: readers that never stop reading are never closed as slow.
        await bulk_fans(container, tenant, 3000, batch=500, writers=2)
        for types in await asyncio.gather(*readers):
            assert types == ["fan.updated"] * 3000
        for stream in streams:
            await stream.aclose()


@pytest.fixture
def metric_reader() -> Iterator[InMemoryMetricReader]:
    reader = InMemoryMetricReader()
    metrics.install([reader])
    yield reader
    metrics.configure_from_env({})


def metric_values(reader: InMemoryMetricReader) -> dict[str, float]:
    data = reader.get_metrics_data()
    assert data is not None
    return {
        metric.name: sum(point.value for point in metric.data.data_points)  # type: ignore[attr-defined]
        for resource in data.resource_metrics
        for scope in resource.scope_metrics
        for metric in scope.metrics
    }


async def next_fan(stream: AsyncIterator[Update]) -> Update:
    """The stream's next fan.updated (anything the stream says of itself skipped)."""
    while (update := await anext(stream))["type"] != "fan.updated":
        pass
    return update


async def test_the_tail_counts_every_read_of_the_log_those_that_find_nothing_too(
    container: bootstrap.Container, metric_reader: InMemoryMetricReader
) -> None:
    tenant = f"user-{uuid.uuid4().hex[:12]}"
    async with asyncio.timeout(30), hub_of(container) as hub:
        # No client subscribes, so no tail runs: every read of the log here is the test's.
        hub.checkpoint = await container.events.head()
        await bulk_fans(container, tenant, 3)
        calls = empty = held = 0
        # Until the three fans were read and a read then found nothing (a read may find
        # nothing earlier too, while another transaction on the server holds the log back).
        while held < 3 or empty == 0:
            found = await hub.read_next()
            calls += 1
            held += found
            if not found:
                empty += 1
                await asyncio.sleep(0.01)
        assert hub.reads == calls
        assert hub.batches_read == calls - empty
        values = metric_values(metric_reader)
        assert values["live.tail.reads"] == calls
        assert values["live.tail.batches"] == calls - empty


async def test_the_clients_and_the_updates_offered_to_them_are_metrics(
    container: bootstrap.Container, metric_reader: InMemoryMetricReader
) -> None:
    tenant = f"user-{uuid.uuid4().hex[:12]}"
    async with asyncio.timeout(30), hub_of(container) as hub:
        streams = [session.stream(hub, container.pool, tenant, fans_only(), None) for _ in range(3)]
        firsts = [asyncio.ensure_future(next_fan(stream)) for stream in streams]
        await eventually(lambda: hub.clients == 3)
        fans = await bulk_fans(container, tenant, 2)
        got = await asyncio.gather(*firsts)
        assert {u["fanId"] for u in got} == {fans[0]}
        await eventually(lambda: hub.updates_offered >= 6)
        await streams[0].aclose()
        values = metric_values(metric_reader)
        assert values["live.clients"] == 2
        # Each fan's update to each of the three clients.
        assert values["live.updates.offered"] == hub.updates_offered >= 6
        for stream in streams[1:]:
            await stream.aclose()
        assert metric_values(metric_reader)["live.clients"] == 0
