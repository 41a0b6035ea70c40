"""``adapters.analytics.replay``: an analyst's projection over the log, synchronously."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta
from typing import Any

import pyarrow as pa
import pytest
from eventsourcing.persistence import Tracking
from eventsourcing.popo import POPOTrackingRecorder
from eventsourcing.projection import Projection

from adapters import bootstrap
from adapters.analytics import replay
from application.ports import Checkpoint, RecordedEvent
from tests.support.eventsourcing_log import add_fan, seal

pytestmark = pytest.mark.timeout(60)


def values(e: RecordedEvent) -> dict[str, Any] | None:
    """A row per change of a fan's value, with its name as the reader may see it."""
    if e.event_type != "FanUpdated":
        return None
    return {"fan": e.stream_id, "cents": e.event.value_cents, "name": e.event.name}


class NamesView(POPOTrackingRecorder):
    def __init__(self) -> None:
        super().__init__()
        self.names: dict[str, str | None] = {}

    def rows(self) -> list[dict[str, Any]]:
        return [{"fan": fan, "name": name} for fan, name in sorted(self.names.items())]


class Names(Projection[NamesView]):
    topics = ("FanCreated",)

    def process_event(self, domain_event: Any, tracking: Tracking) -> None:
        self.view.names[domain_event.originator_id] = domain_event.name
        self.view.insert_tracking(tracking)


async def test_replay_until_a_position_or_a_time_returns_the_projection_rows(
    fresh: bootstrap.Container, fresh_database_url: str
) -> None:
    first = await add_fan(fresh.events, updates=2, name="Ann")
    second = await add_fan(fresh.events, updates=1, name="Bo")
    await seal(fresh, 5)
    log = await fresh.events.read_all(Checkpoint(), 100)
    env = {"DATABASE_URL": fresh_database_url}

    def run(*args: Any, **kwargs: Any) -> Any:
        return asyncio.to_thread(replay, *args, env={**env, **kwargs.pop("env", {})}, **kwargs)

    everything = await run(values)
    assert everything == [
        {"fan": first, "cents": 100, "name": "Ann"},
        {"fan": first, "cents": 200, "name": "Ann"},
        {"fan": second, "cents": 100, "name": "Bo"},
    ]
    assert await run(values, until=log[2].position) == everything[:2]
    assert await run(values, until=log[-1].recorded_at) == everything
    assert await run(values, until=log[0].recorded_at - timedelta(seconds=1)) == []
    assert await run(values, topics=["FanCreated"]) == []

    hidden = await run(values, env={"CRM_MASTER_KEY": ""})
    assert [row["name"] for row in hidden] == [None, None, None]

    table = await run(values, output="arrow")
    assert isinstance(table, pa.Table)
    assert table.num_rows == 3
    assert table.column("cents").to_pylist() == [100, 200, 100]

    names = await run(Names(NamesView()))
    assert names == [
        {"fan": fan, "name": name} for fan, name in sorted({first: "Ann", second: "Bo"}.items())
    ]

    with pytest.raises(ValueError, match="no sealed event"):
        await run(values, until=log[-1].position + 1000)
    with pytest.raises(ValueError, match="timezone"):
        await run(values, until=datetime(2026, 1, 1))
    with pytest.raises(ValueError, match="output"):
        await run(values, output="csv")
