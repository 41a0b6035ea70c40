"""A small simulated history written into the event store: the events are dated when they
happened, the truth it answers agrees with the log, and the fast path writes the same events
as the one through every handler."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest

from adapters import bootstrap
from adapters.simulated_history import HistoryTruth, write_history
from application.ports import Checkpoint, RecordedEvent
from tests.support.databases import TestServer as Server
from tests.support.settings import settings_for

END = datetime(2026, 6, 1, tzinfo=UTC)
ACCOUNT = "user-simulated"
FAN_ACTS = ("InboundMessageReceived", "MessageRead", "MessagePurchased", "FanPurchaseRecorded")


@pytest.fixture
async def two(test_server: Server) -> AsyncIterator[list[bootstrap.Container]]:
    """Two databases of their own: each is read whole."""
    containers = [
        await bootstrap.build(settings_for(await test_server.clone(), pool_max_size=20))
        for _ in range(2)
    ]
    yield containers
    for container in containers:
        await container.close()


async def whole_log(container: bootstrap.Container, count: int) -> list[RecordedEvent]:
    """The ``count`` events of the log: the log is read only below the oldest transaction
    open anywhere on the server (other tests' databases share it), so maybe in a few passes."""
    events: list[RecordedEvent] = []
    after = Checkpoint()
    async with asyncio.timeout(60):
        while len(events) < count:
            batch = await container.events.read_all(after, 1000)
            if not batch:
                await asyncio.sleep(0.05)
                continue
            events += batch
            after = Checkpoint(batch[-1].transaction_id, batch[-1].position)
    return events


def fan_of(event: RecordedEvent) -> int | None:
    return getattr(event.event, "fan_id", None)


def shape(log: list[RecordedEvent]) -> Counter[tuple[str, str, datetime, str]]:
    """What each event says happened, and when, whatever the ids the application gave."""
    seen: Counter[tuple[str, str, datetime, str]] = Counter()
    for e in log:
        if e.stream_type == "import":
            continue  # the import job: dated when it ran
        when = getattr(e.event, "occurred_at", e.event.timestamp)
        seen[e.event_type, e.stream_type, when, e.metadata.actor] += 1
    return seen


async def test_a_history_is_dated_as_simulated_and_agrees_with_its_truth(
    two: list[bootstrap.Container],
) -> None:
    args = {"account_id": ACCOUNT, "fans": 30, "days": 20, "seed": 5, "end": END}
    truth: HistoryTruth = await write_history(two[0], through="handlers", **args)
    fast = await write_history(two[1], through="aggregates", **args)
    log = await whole_log(two[0], truth.events_written)
    fast_log = await whole_log(two[1], fast.events_written)

    assert shape(log) == shape(fast_log), "the fast path writes what the handlers write"
    assert truth.events_written == len(log) == fast.events_written == len(fast_log)
    assert (
        await two[0].events.read_all(Checkpoint(log[-1].transaction_id, log[-1].position), 1) == []
    )
    assert {f.platform_id for f in truth.fans.values()} == {f"sim-{n}" for n in range(30)}
    assert [f.traits for f in truth.fans.values()] == [f.traits for f in fast.fans.values()]

    kinds = Counter(e.event_type for e in log)
    for kind in ("FanCreated", "MessageQueued", "MessageSent", "MessageRead", *FAN_ACTS):
        assert kinds[kind], kind
    assert kinds["FanTransactionImported"] >= 30  # a subscription each, renewals, tips
    start = END - timedelta(days=20)
    for e in log:
        assert e.metadata.tenant == ACCOUNT
        if e.stream_type != "import":
            when = getattr(e.event, "occurred_at", e.event.timestamp)
            assert start <= when <= END + timedelta(days=2), e
    for fan in truth.fans.values():
        mine = [e for e in log if fan_of(e) == fan.fan_id or e.stream_id == f"fan-{fan.fan_id}"]
        created = next(e for e in mine if e.event_type == "FanCreated")
        assert created.event.timestamp == fan.joined_at
        received = [e for e in mine if e.event_type == "InboundMessageReceived"]
        assert len(received) == fan.fan_messages
        assert sum(e.event_type == "MessageQueued" for e in mine) == fan.creator_messages
        if fan.churned_at is not None:
            assert fan.churned_on == fan.churned_at.date()
            acts = [e for e in mine if e.event_type in (*FAN_ACTS, "FanTransactionImported")]
            assert all(
                getattr(e.event, "occurred_at", e.event.timestamp) <= fan.churned_at for e in acts
            ), "a churned fan does nothing more"
