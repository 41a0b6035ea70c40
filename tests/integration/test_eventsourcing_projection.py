"""An analyst's eventsourcing Projection run by eventsourcing's own ProjectionRunner over
fancrm's log (adapters/postgres/eventsourcing_log/), its view and tracking in SQLite."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from pathlib import Path
from typing import Any

import pytest
from eventsourcing.persistence import Tracking
from eventsourcing.projection import Projection, ProjectionRunner
from eventsourcing.sqlite import SQLiteTrackingRecorder

from adapters import bootstrap
from adapters.postgres.eventsourcing_log import FancrmLog
from domain.fan import Fan
from tests.support.eventsourcing_log import add_fan, env_for, meta, new_fan_id, seal
from tests.support.settings import TEST_MASTER_KEY

pytestmark = pytest.mark.timeout(60)


class CountsView(SQLiteTrackingRecorder):
    """Events per type and the fans' value, each change committed with its tracking."""

    def construct_create_table_statements(self) -> list[str]:
        return [
            *super().construct_create_table_statements(),
            "CREATE TABLE IF NOT EXISTS counts (event_type TEXT PRIMARY KEY,"
            " events INTEGER NOT NULL, value_cents INTEGER NOT NULL)",
        ]

    def count(self, event_type: str, value_cents: int, tracking: Tracking) -> None:
        with self.datastore.transaction(commit=True) as c:
            c.execute(
                "INSERT INTO counts VALUES (?, 1, ?) ON CONFLICT (event_type) DO UPDATE"
                " SET events = events + 1, value_cents = value_cents + excluded.value_cents",
                (event_type, value_cents),
            )
            self._insert_tracking(c, tracking)

    def table(self) -> dict[str, tuple[int, int]]:
        with self.datastore.transaction(commit=False) as c:
            c.execute("SELECT event_type, events, value_cents FROM counts")
            return {row[0]: (row[1], row[2]) for row in c.fetchall()}


class Interrupted(Exception):
    pass


class CountEvents(Projection[CountsView]):
    # An interrupted run: at the event numbered ``pause_at`` it waits until told to go on,
    # or it crashes there (``crash_at``) before recording anything of that event.
    pause_at: int | None = None
    crash_at: int | None = None
    paused = threading.Event()
    resume = threading.Event()

    def process_event(self, domain_event: Any, tracking: Tracking) -> None:
        if tracking.notification_id == self.crash_at:
            raise Interrupted(tracking.notification_id)
        value = getattr(domain_event, "value_cents", 0) or 0
        self.view.count(type(domain_event).__qualname__, value, tracking)
        if tracking.notification_id == self.pause_at:
            self.paused.set()
            self.resume.wait(timeout=20)


def runner_for(url: str, views: Path) -> ProjectionRunner[FancrmLog, CountsView]:
    env = env_for(url, PERSISTENCE_MODULE="eventsourcing.sqlite", SQLITE_DBNAME=str(views))
    return ProjectionRunner(
        application_class=FancrmLog, projection_class=CountEvents, view_class=CountsView, env=env
    )


def run_to_the_end(url: str, views: Path) -> dict[str, tuple[int, int]]:
    with runner_for(url, views) as runner:
        runner.wait(runner.app.recorder.max_notification_id(), timeout=20)
        return runner.projection.view.table()


async def test_a_projection_run_twice_over_the_same_history_gives_the_same_table(
    fresh: bootstrap.Container, fresh_database_url: str, tmp_path: Path
) -> None:
    for updates in (0, 2, 1):
        await add_fan(fresh.events, updates=updates)
    await seal(fresh, 6)
    first = await asyncio.to_thread(run_to_the_end, fresh_database_url, tmp_path / "one.db")
    again = await asyncio.to_thread(run_to_the_end, fresh_database_url, tmp_path / "two.db")
    assert first == again == {"Fan.Created": (3, 0), "Fan.Updated": (3, 100 + 200 + 100)}


async def test_an_interrupted_run_resumes_from_its_tracking_without_doubles(
    fresh: bootstrap.Container, fresh_database_url: str, tmp_path: Path
) -> None:
    for updates in (1, 2, 0, 3):
        await add_fan(fresh.events, updates=updates)
    await seal(fresh, 10)
    whole = await asyncio.to_thread(run_to_the_end, fresh_database_url, tmp_path / "whole.db")
    assert sum(events for events, _ in whole.values()) == 10

    # Stopped while it processes event 4: whatever it had done is tracked, once.
    stopped = tmp_path / "stopped.db"
    CountEvents.pause_at = 4
    CountEvents.paused, CountEvents.resume = threading.Event(), threading.Event()

    def stop_midway() -> tuple[int | None, dict[str, tuple[int, int]]]:
        with runner_for(fresh_database_url, stopped) as runner:
            assert CountEvents.paused.wait(timeout=20), "the run never reached event 4"
            runner.stop()
            CountEvents.resume.set()
        view = runner.projection.view
        return view.max_tracking_id("FancrmLog"), view.table()

    try:
        done, table = await asyncio.to_thread(stop_midway)
    finally:
        CountEvents.pause_at = None
    assert done is not None
    assert done >= 4
    assert sum(events for events, _ in table.values()) == done
    assert await asyncio.to_thread(run_to_the_end, fresh_database_url, stopped) == whole

    # Crashed at event 7: events 1 to 6 are tracked, 7 is processed again on resume.
    crashed = tmp_path / "crashed.db"
    CountEvents.crash_at = 7

    def crash_midway() -> int | None:
        runner = runner_for(fresh_database_url, crashed)
        with pytest.raises(Interrupted), runner:
            runner.run_forever(timeout=20)
        return runner.projection.view.max_tracking_id("FancrmLog")

    try:
        assert await asyncio.to_thread(crash_midway) == 6
    finally:
        CountEvents.crash_at = None
    assert await asyncio.to_thread(run_to_the_end, fresh_database_url, crashed) == whole


def readme_projection_snippet() -> str:
    readme = (Path(__file__).parents[2] / "README.md").read_text()
    section = readme.split("## Your own projections over the log", 1)[1]
    return section.split("```python\n", 1)[1].split("```", 1)[0]


async def test_the_readme_projection_runs_as_printed(
    fresh: bootstrap.Container, fresh_database_url: str, tmp_path: Path
) -> None:
    fan = Fan.register(fan_id=new_fan_id(), tenant="user-1", name="Ann", email="a@example.com")
    fan.record_purchase(1_500, "msg-1")
    fan.record_purchase(500, "msg-2")
    fan.update(notes="a later event, so the log does not end with a purchase")
    events = list(fan.collect_events())
    await fresh.events.append(fan.id, "fan", events, expected_version=0, metadata=meta("user-1"))
    await seal(fresh, len(events))
    snippet = (
        readme_projection_snippet()
        .replace('"postgresql://..."', repr(fresh_database_url))
        .replace('"CRM_MASTER_KEY": "...",', f'"CRM_MASTER_KEY": {TEST_MASTER_KEY!r},')
        .replace('"views.db"', repr(str(tmp_path / "views.db")))
    )
    await asyncio.to_thread(exec, compile(snippet, "README.md", "exec"), {})
    expected: dict[int, int] = {}
    for purchase in events[1:3]:
        hour = purchase.timestamp.hour
        expected[hour] = expected.get(hour, 0) + purchase.amount_cents
    with sqlite3.connect(tmp_path / "views.db") as db:
        assert dict(db.execute("SELECT hour, cents FROM revenue").fetchall()) == expected
