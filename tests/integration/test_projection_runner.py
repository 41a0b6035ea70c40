"""The projection runner on Postgres: exactly-once application across crashes, batches that
commit with their checkpoint or not at all, and prompt wake-ups on NOTIFY."""

from __future__ import annotations

import asyncio
import contextlib
import random
import signal
import sys
import uuid
from asyncio.subprocess import Process
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from functools import partial
from pathlib import Path
from typing import Any

import pytest

from adapters import bootstrap
from application.ports import Checkpoint, EventMetadata, RecordedEvent, Sql
from domain.fan import Fan, fan_stream_id
from projections.fans import FansProjection
from projections.runner import ProjectionRunner
from tests.support.settings import settings_for

pytestmark = pytest.mark.timeout(60)

ROOT = Path(__file__).resolve().parents[2]

# A projector process: catches the fans projection up to the head of the log, then exits.
# Beside the fans table it counts, in the same transaction, how often each event was applied.
PROJECTOR = """
import asyncio, os, sys
from adapters import bootstrap
from adapters.config import Settings
from projections.fans import FansProjection
from projections.runner import ProjectionRunner

class CountedFans:
    name = "fans"
    tables = ("fans", "applied")

    def __init__(self):
        self.fans = FansProjection()

    async def apply(self, sql, recorded):
        await self.fans.apply(sql, recorded)
        await sql.execute(
            "INSERT INTO applied (event_id, times) VALUES ($1, 1)"
            " ON CONFLICT (event_id) DO UPDATE SET times = applied.times + 1",
            recorded.event_id,
        )

async def main(url, batch_size):
    settings = Settings.from_env(os.environ, database_url=url, pool_min_size=1, pool_max_size=2)
    container = await bootstrap.build(settings)
    try:
        store = container.projection_store
        runner = ProjectionRunner(store, CountedFans(), batch_size=batch_size)
        while await runner.catch_up():
            pass
    finally:
        await container.close()

asyncio.run(main(sys.argv[1], int(sys.argv[2])))
"""


def meta(tenant: str) -> EventMetadata:
    return EventMetadata(
        tenant=tenant,
        actor=f"{tenant}:key",
        correlation_id=uuid.uuid4().hex,
        causation_id=uuid.uuid4().hex,
    )


async def poll_until(condition: Callable[[], Awaitable[bool]], interval: float = 0.01) -> None:
    """Wait for a condition on the database (callers bound the wait with asyncio.timeout)."""
    while True:
        if await condition():
            return
        await asyncio.sleep(interval)


@pytest.fixture
async def fresh(fresh_database_url: str) -> AsyncIterator[bootstrap.Container]:
    container = await bootstrap.build(settings_for(fresh_database_url))
    try:
        yield container
    finally:
        await container.close()


async def save(container: bootstrap.Container, fan: Fan) -> list[int]:
    pending = fan.collect_events()
    if not pending:
        return []
    return await container.events.append(
        fan.id,
        "fan",
        pending,
        expected_version=pending[0].originator_version - 1,
        metadata=meta(fan.tenant),
    )


async def write_history(container: bootstrap.Container, rng: random.Random, fans: int) -> int:
    """Creates, updates and deletes across ``fans`` fans, appended by concurrent writers so
    transactions interleave in the log. Returns how many events were appended."""
    gate = asyncio.Semaphore(8)
    appended = 0

    async def append(fan: Fan) -> None:
        nonlocal appended
        async with gate:
            positions = await save(container, fan)
        appended += len(positions)

    live: dict[int, Fan] = {}
    for fan_id in range(1, fans + 1):
        fan = Fan.register(
            fan_id=fan_id,
            tenant=f"user-{fan_id % 7}",
            platform=rng.choice(["onlyfans", "fansly", "patreon"]),
            name=f"Fan {fan_id}",
            handle=f"@fan_{fan_id}",
            value_cents=rng.randrange(10_000),
            tags=rng.sample(["vip", "new", "whale", "lapsed"], rng.randrange(3)),
        )
        for _ in range(rng.randrange(3)):
            fan.update(value_cents=rng.randrange(100_000))
        live[fan_id] = fan
    await asyncio.gather(*(append(fan) for fan in live.values()))

    for _ in range(4):  # rounds of updates, each fan touched at most once per round
        chosen = rng.sample(sorted(live), len(live) // 2)
        for fan_id in chosen:
            fan = live[fan_id]
            for _ in range(rng.randrange(1, 4)):
                fan.update(
                    value_cents=rng.randrange(1_000_000),
                    notes=rng.choice([None, f"note {rng.random():.6f}"]),
                    tags=rng.sample(["vip", "new", "whale", "lapsed", "muted"], rng.randrange(4)),
                )
        await asyncio.gather(*(append(live[fan_id]) for fan_id in chosen))

        doomed = [live.pop(fan_id) for fan_id in rng.sample(sorted(live), len(live) // 20)]
        for fan in doomed:
            fan.delete()
        await asyncio.gather(*(append(fan) for fan in doomed))
    return appended


async def table(container: bootstrap.Container, name: str) -> list[tuple[Any, ...]]:
    rows = await container.pool.fetch(f"SELECT * FROM {name} ORDER BY fan_id")
    return [tuple(row.items()) for row in rows]


async def checkpoint_of(container: bootstrap.Container, name: str) -> Checkpoint:
    return await container.projection_store.checkpoint(name)


async def rollbacks(container: bootstrap.Container) -> int:
    """Transactions rolled back in this database, as the statistics system has counted them."""
    async with container.pool.acquire() as conn:
        await conn.execute("SELECT pg_stat_clear_snapshot()")
        return await conn.fetchval(
            "SELECT xact_rollback FROM pg_stat_database WHERE datname = current_database()"
        )


PROJECTOR_NAME = "fans-projector-under-test"


async def projector_is_writing(container: bootstrap.Container) -> bool:
    """Whether the projector process is inside a transaction that has written rows."""
    return bool(
        await container.pool.fetchval(
            """
            SELECT EXISTS (SELECT 1 FROM pg_stat_activity
                           WHERE application_name = $1 AND backend_xid IS NOT NULL)
            """,
            PROJECTOR_NAME,
        )
    )


async def run_projector(url: str, batch_size: int) -> Process:
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        PROJECTOR,
        url,
        str(batch_size),
        cwd=ROOT,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )


async def test_a_projector_killed_mid_batch_and_restarted_builds_the_same_table(
    fresh: bootstrap.Container, fresh_database_url: str
) -> None:
    rng = random.Random(20240611)
    kills_wanted = 6
    async with asyncio.timeout(50):
        appended = await write_history(fresh, rng, fans=400)
        assert appended >= 2000
        head = await fresh.events.head()

        await fresh.pool.execute(
            """
            CREATE TABLE applied (event_id uuid PRIMARY KEY, times integer NOT NULL);
            CREATE SCHEMA ref;
            CREATE TABLE ref.fans (LIKE public.fans INCLUDING ALL);
            """
        )
        # The reference: one uninterrupted runner, at the same time, into its own schema.
        reference = asyncio.create_task(
            ProjectionRunner(
                fresh.projection_store, FansProjection(), schema="ref", batch_size=50
            ).catch_up()
        )
        rolled_back_before = await rollbacks(fresh)
        separator = "&" if "?" in fresh_database_url else "?"
        projector_url = f"{fresh_database_url}{separator}application_name={PROJECTOR_NAME}"

        kills = 0
        progress = [await checkpoint_of(fresh, "fans")]
        while True:
            proc = await run_projector(projector_url, batch_size=7)
            if kills < kills_wanted:
                # Wait until it has committed a batch, then kill it at a random moment; every
                # other time, at the first moment after that it holds uncommitted writes.
                async def moved(proc: Process = proc) -> bool:
                    if proc.returncode is not None:
                        return True
                    return await checkpoint_of(fresh, "fans") != progress[-1]

                async def writing(proc: Process = proc) -> bool:
                    return proc.returncode is not None or await projector_is_writing(fresh)

                await poll_until(moved, 0.005)
                await asyncio.sleep(rng.uniform(0, 0.1))
                if kills % 2:
                    await poll_until(writing, 0)
                if proc.returncode is None:
                    proc.send_signal(signal.SIGKILL)
                    await proc.wait()
                    kills += 1
                    progress.append(await checkpoint_of(fresh, "fans"))
                    continue
            _, stderr = await proc.communicate()
            assert proc.returncode == 0, stderr.decode()
            progress.append(await checkpoint_of(fresh, "fans"))
            break

        assert await reference == appended
        # Each kill inside a batch leaves a transaction that the server rolls back.
        await asyncio.sleep(0.2)
        killed_mid_batch = await rollbacks(fresh) - rolled_back_before

    assert kills == kills_wanted, "the projector finished before it could be killed enough"
    assert killed_mid_batch >= 1, "no kill landed inside a batch"
    assert progress == sorted(progress), "the checkpoint went backwards"
    assert len(set(progress)) == len(progress), "a run committed no batch"
    assert progress[-1] == head
    assert await checkpoint_of(fresh, "fans@ref") == head

    projected = await table(fresh, "public.fans")
    assert projected == await table(fresh, "ref.fans")
    assert 300 < len(projected) < 400, "some fans were deleted, most were not"
    # Exactly once: every event applied, none twice, across all the kills.
    times = await fresh.pool.fetch("SELECT times, count(*) AS n FROM applied GROUP BY times")
    assert [tuple(row) for row in times] == [(1, appended)]


class Poisoned:
    """The fans projection, failing on one chosen event; remembers what it applied."""

    name = "fans"
    tables = ("fans",)

    def __init__(self) -> None:
        self.inner = FansProjection()
        self.poison: uuid.UUID | None = None
        self.applied: list[uuid.UUID] = []

    async def apply(self, sql: Sql, recorded: RecordedEvent) -> None:
        if recorded.event_id == self.poison:
            raise RuntimeError(f"cannot apply {recorded.event_id}")
        await self.inner.apply(sql, recorded)
        self.applied.append(recorded.event_id)


async def checkpoint_row(container: bootstrap.Container, name: str) -> dict[str, Any]:
    row = await container.pool.fetchrow(
        "SELECT * FROM projection_checkpoints WHERE name = $1", name
    )
    assert row is not None
    return dict(row)


async def test_a_failing_batch_leaves_the_table_and_checkpoint_as_they_were(
    fresh: bootstrap.Container,
) -> None:
    async with asyncio.timeout(30):
        for fan_id in range(1, 11):
            fan = Fan.register(fan_id=fan_id, tenant="user-1", name=f"Fan {fan_id}")
            fan.update(value_cents=fan_id * 100)
            fan.update(tags=["vip"])
            await save(fresh, fan)
        log = [r async for r in _read_log(fresh)]
        assert len(log) == 30

        projection = Poisoned()
        runner = ProjectionRunner(
            fresh.projection_store, projection, batch_size=8, poll_interval=0.05
        )
        assert await runner.run_batch() == 8
        before_table = await table(fresh, "fans")
        before = await checkpoint_row(fresh, "fans")
        assert (before["transaction_id"], before["position"]) == (
            log[7].transaction_id,
            log[7].position,
        )
        assert before["last_error"] is None

        # The poison is the fourth event of the next batch: three are applied before it fails.
        projection.poison = log[11].event_id
        with pytest.raises(RuntimeError, match="cannot apply"):
            await runner.run_batch()
        assert projection.applied[8:] == [r.event_id for r in log[8:11]]
        assert await table(fresh, "fans") == before_table, "part of a failed batch was kept"
        assert await checkpoint_row(fresh, "fans") == before

        # The long-running loop records the error, keeps retrying, and changes nothing.
        stop = asyncio.Event()
        running = asyncio.create_task(runner.run(stop))
        try:

            async def failed_once() -> bool:
                return (await checkpoint_row(fresh, "fans"))["last_error"] is not None

            await poll_until(failed_once)
            failed = await checkpoint_row(fresh, "fans")
            assert failed["last_error"] == f"RuntimeError: cannot apply {log[11].event_id}"
            assert failed["last_error_at"] is not None
            assert (failed["transaction_id"], failed["position"]) == (
                before["transaction_id"],
                before["position"],
            )
            assert await table(fresh, "fans") == before_table

            # Once the event can be applied, the same loop catches up and clears the error.
            projection.poison = None
            head = await fresh.events.head()

            async def caught_up() -> bool:
                return await checkpoint_of(fresh, "fans") == head

            await poll_until(caught_up)
        finally:
            stop.set()
            await running
        recovered = await checkpoint_row(fresh, "fans")
        assert recovered["last_error"] is None
        assert recovered["last_error_at"] is None

        # Only the failed batch's first three events were applied more than once (once per
        # failed attempt, each rolled back); every other event exactly once.
        times = Counter(projection.applied)
        assert set(times) == {r.event_id for r in log}
        assert {times[r.event_id] for r in log[8:11]} == {times[log[8].event_id]}
        assert times[log[8].event_id] >= 3  # run_batch's failure and at least one in run()
        assert all(times[r.event_id] == 1 for r in [*log[:8], *log[11:]])
        await fresh.pool.execute(
            "CREATE SCHEMA ref; CREATE TABLE ref.fans (LIKE public.fans INCLUDING ALL)"
        )
        await ProjectionRunner(fresh.projection_store, FansProjection(), schema="ref").catch_up()
        assert await table(fresh, "fans") == await table(fresh, "ref.fans")
        assert len(await table(fresh, "fans")) == 10


async def _read_log(container: bootstrap.Container) -> AsyncIterator[RecordedEvent]:
    after = Checkpoint()
    while batch := await container.events.read_all(after, 100):
        for recorded in batch:
            yield recorded
        after = Checkpoint(batch[-1].transaction_id, batch[-1].position)


async def test_wait_for_events_wakes_on_notify_well_before_the_poll_interval(
    fresh: bootstrap.Container,
) -> None:
    store = fresh.projection_store
    loop = asyncio.get_running_loop()
    async with asyncio.timeout(20):
        await store.wait_for_events(0)  # starts listening

        started = loop.time()
        await store.wait_for_events(0.3)
        assert loop.time() - started >= 0.25, "woke with nothing appended"

        seen = Checkpoint()
        for fan_id in (1, 2, 3):
            waiter = asyncio.create_task(store.wait_for_events(10))
            await asyncio.sleep(0.1)
            assert not waiter.done()
            appended_at = loop.time()
            await save(fresh, Fan.register(fan_id=fan_id, tenant="user-1", name="Ann"))
            await waiter
            assert loop.time() - appended_at < 1.0
            # Woken means readable: the event is there for the reader.
            (recorded,) = await store.read_all(seen, 10)
            assert recorded.stream_id == fan_stream_id(fan_id)
            seen = Checkpoint(recorded.transaction_id, recorded.position)


async def test_a_running_projector_applies_a_new_event_well_before_its_poll_interval(
    fresh: bootstrap.Container,
) -> None:
    store = fresh.projection_store
    loop = asyncio.get_running_loop()
    runner = ProjectionRunner(store, FansProjection(), poll_interval=10.0)
    async with asyncio.timeout(20):
        await store.wait_for_events(0)  # listening before the runner first waits
        stop = asyncio.Event()
        running = asyncio.create_task(runner.run(stop))
        try:
            await asyncio.sleep(0.2)
            for fan_id in (1, 2):
                appended_at = loop.time()
                (position,) = await save(
                    fresh, Fan.register(fan_id=fan_id, tenant="user-1", name="Bo")
                )
                await poll_until(partial(store.has_applied, "fans", position), 0.005)
                assert loop.time() - appended_at < 1.0
        finally:
            # run() notices `stop` only between waits, and this one waits 10 s: cancel it.
            stop.set()
            running.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await running
    rows = await fresh.pool.fetch("SELECT fan_id, name FROM fans ORDER BY fan_id")
    assert [tuple(row) for row in rows] == [(1, "Bo"), (2, "Bo")]


async def test_two_runners_of_one_projector_apply_each_event_once(
    fresh: bootstrap.Container,
) -> None:
    async with asyncio.timeout(30):
        written = await write_history(fresh, random.Random(7), fans=60)
        projection = Poisoned()
        runners = [
            ProjectionRunner(fresh.projection_store, projection, batch_size=5) for _ in range(2)
        ]
        applied = await asyncio.gather(*(runner.catch_up() for runner in runners))
        assert sum(applied) == written
        assert len(projection.applied) == len(set(projection.applied)) == written
        assert await checkpoint_of(fresh, "fans") == await fresh.events.head()
