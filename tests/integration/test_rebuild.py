"""Rebuilding read models without downtime: rebuilt tables equal the live ones row for row,
an interrupted rebuild resumes, the API answers during a rebuild, a live projector running
through the swap carries on from the rebuilt tables, and the batched projections write what
their event-by-event ``apply`` writes."""

from __future__ import annotations

import asyncio
import os
import random
import sys
import uuid
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

import httpx
import pytest

from adapters import bootstrap
from adapters.http.app import create_app
from adapters.postgres.api_keys import create_api_key
from adapters.postgres.rebuild import rebuild
from application.ports import EventMetadata, RecordedEvent, Sql, StreamWrite
from domain.conversation import Conversation
from domain.fan import Fan
from domain.inbound import InboundMessage
from domain.message import Message
from projections.base import Projection
from projections.runner import ProjectionGroupRunner, ProjectionRunner
from tests.support.settings import settings_for

pytestmark = pytest.mark.timeout(240)

ROOT = Path(__file__).resolve().parents[2]
FILLED_BY_THE_HISTORY = {
    "fans",
    "conversations",
    "messages",
    "analytics_fan_revenue_daily",
    "analytics_fan_activity",
    "analytics_campaign_messages",
    "analytics_campaign_revenue_daily",
}
TENANTS = ("user-rebuild-a", "user-rebuild-b", "user-rebuild-c")


# --- a mixed history ----------------------------------------------------------------------


class History:
    """Fans with conversations, messages in every state, purchases, replies from fans,
    campaign messages, updates, deletions and erasures: appended with ``append_all``, many
    fans per transaction, by concurrent writers."""

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        self.fans: dict[int, Fan] = {}
        self.next_id = 1

    def _meta(self, tenant: str) -> EventMetadata:
        return EventMetadata(
            tenant=tenant, actor="test", correlation_id="c", causation_id=uuid.uuid4().hex
        )

    def _write(self, aggregate: Any, stream_type: str) -> StreamWrite | None:
        pending = aggregate.collect_events()
        if not pending:
            return None
        return StreamWrite(
            aggregate.id,
            stream_type,
            pending,
            pending[0].originator_version - 1,
            metadata=self._meta(aggregate.tenant),
        )

    def _messages(self, fan: Fan, writes: list[StreamWrite]) -> None:
        rng = self.rng
        assert fan.conversation_id is not None
        for _ in range(rng.randrange(1, 4)):
            message = Message.queue(
                message_id=str(uuid.uuid4()),
                tenant=fan.tenant,
                conversation_id=fan.conversation_id,
                fan_id=fan.fan_id,
                content=f"hello {rng.random():.5f}",
                price_cents=rng.choice([0, 0, 500, 1500]),
                attachments=[("image", "https://cdn.example.com/a.jpg")]
                if rng.random() < 0.3
                else [],
                campaign_id=rng.choice([None, None, 7, 8]),
            )
            roll = rng.random()
            if roll < 0.8:
                message.dispatch("normal")
            if 0.2 <= roll < 0.7:
                message.mark_sent(f"of-{rng.randrange(10**9)}")
                if rng.random() < 0.5:
                    message.mark_read()
                if message.price_cents and rng.random() < 0.6:
                    message.purchase(message.price_cents)
                    fan.record_purchase(message.price_cents, message.message_id)
            elif 0.7 <= roll < 0.8:
                message.fail("provider said no")
                if rng.random() < 0.5:
                    message.retry()
            write = self._write(message, "message")
            assert write is not None
            writes.append(write)
        if rng.random() < 0.4:
            inbound = InboundMessage.receive(
                message_id=str(uuid.uuid4()),
                tenant=fan.tenant,
                conversation_id=fan.conversation_id,
                fan_id=fan.fan_id,
                content="hi back",
                platform_message_id=f"in-{rng.randrange(10**9)}",
            )
            inbound_write = self._write(inbound, "message")
            assert inbound_write is not None
            writes.append(inbound_write)

    def new_fans(self, count: int) -> list[list[StreamWrite]]:
        units = []
        for _ in range(count):
            fan_id, self.next_id = self.next_id, self.next_id + 1
            rng = self.rng
            fan = Fan.register(
                fan_id=fan_id,
                tenant=rng.choice(TENANTS),
                name=f"Fan {fan_id}",
                handle=f"@fan{fan_id}",
                email=f"fan{fan_id}@example.com" if rng.random() < 0.5 else None,
                value_cents=rng.randrange(10_000),
                tags=rng.sample(["vip", "new", "whale"], rng.randrange(3)),
            )
            for _ in range(rng.randrange(3)):
                fan.update(value_cents=rng.randrange(100_000), notes=f"n{rng.random():.4f}")
            fan.open_conversation(fan_id)
            conversation = Conversation.start(
                conversation_id=fan_id, tenant=fan.tenant, fan_id=fan_id, platform="onlyfans"
            )
            writes = [self._write(conversation, "conversation")]
            self._messages(fan, writes)  # type: ignore[arg-type]
            writes.insert(0, self._write(fan, "fan"))
            units.append([w for w in writes if w is not None])
            self.fans[fan_id] = fan
        return units

    def more(self, share: float) -> list[list[StreamWrite]]:
        """More messages for some live fans, then deletions and erasures of others."""
        units = []
        live = sorted(self.fans)
        for fan_id in self.rng.sample(live, int(len(live) * share)):
            fan = self.fans[fan_id]
            writes: list[StreamWrite] = []
            roll = self.rng.random()
            if roll < 0.05:
                fan.delete()
            elif roll < 0.08:
                fan.erase()
            else:
                self._messages(fan, writes)
            if roll < 0.08:
                del self.fans[fan_id]
            fan_write = self._write(fan, "fan")
            units.append(([fan_write] if fan_write else []) + writes)
        return units


async def append_units(
    container: bootstrap.Container, units: list[list[StreamWrite]], per_tx: int = 25
) -> int:
    chunks = [
        [write for unit in units[i : i + per_tx] for write in unit]
        for i in range(0, len(units), per_tx)
    ]
    queue = iter(chunks)

    async def writer() -> None:
        for writes in queue:
            await container.events.append_all(writes, metadata=writes[0].metadata)  # type: ignore[arg-type]

    await asyncio.gather(*(writer() for _ in range(4)))
    return sum(len(w.events) for writes in chunks for w in writes)


async def write_history(container: bootstrap.Container, events: int, seed: int = 8) -> int:
    history = History(seed)
    total = 0
    while total < events * 0.7:
        total += await append_units(container, history.new_fans(500))
    while total < events:
        total += await append_units(container, history.more(0.3))
    return total


# --- comparing tables ---------------------------------------------------------------------


async def snapshot(container: bootstrap.Container, projections: Sequence[Projection]) -> dict:
    tables: dict[str, Any] = {}
    for projection in projections:
        for table in projection.tables:
            rows = await container.pool.fetch(f"SELECT * FROM public.{table} t ORDER BY t::text")
            tables[table] = [tuple(row.values()) for row in rows]
            tables[table + " indexes"] = sorted(
                await container.pool.fetch(
                    "SELECT indexname, indexdef FROM pg_indexes"
                    " WHERE schemaname = 'public' AND tablename = $1",
                    table,
                )
            )
    return tables


def assert_same(rebuilt: dict, live: dict) -> None:
    assert rebuilt.keys() == live.keys()
    for name in live:
        assert len(rebuilt[name]) == len(live[name]), name
        assert rebuilt[name] == live[name], name


@pytest.fixture
async def fresh(fresh_database_url: str) -> AsyncIterator[bootstrap.Container]:
    container = await bootstrap.build(
        settings_for(fresh_database_url, pool_min_size=2, pool_max_size=8)
    )
    try:
        yield container
    finally:
        await container.close()


async def catch_up_live(container: bootstrap.Container, batch_size: int = 2000) -> None:
    for projection in bootstrap.all_projections():
        await ProjectionRunner(
            container.projection_store, projection, batch_size=batch_size
        ).catch_up()


async def rebuild_started(container: bootstrap.Container) -> bool:
    """Whether every projection of a rebuild of all has committed a batch."""
    return await container.pool.fetchval(
        "SELECT count(*) FROM projection_checkpoints"
        " WHERE name LIKE '%@rebuild_all' AND position > 0"
    ) == len(bootstrap.all_projections())


async def poll_until(condition: Any, *args: Any) -> None:
    """Callers bound the wait with asyncio.timeout."""
    while True:
        if await condition(*args):
            return
        await asyncio.sleep(0.005)


# --- the tests ----------------------------------------------------------------------------


@pytest.mark.slow
async def test_rebuild_of_every_projection_on_100k_mixed_events_equals_the_live_tables(
    fresh: bootstrap.Container,
) -> None:
    async with asyncio.timeout(200):
        # Built live: small batches that follow the writers as they append. One reader feeds
        # every projection (the next test shows it writes what one runner per projection does).
        writing = asyncio.create_task(write_history(fresh, 100_000))
        projector = ProjectionGroupRunner(
            fresh.projection_store, bootstrap.all_projections(), batch_size=500
        )
        try:
            while not writing.done():
                if not await projector.run_batch():
                    await asyncio.sleep(0.01)
            appended = await writing
            await projector.catch_up()
        finally:
            await projector.close()
        assert appended >= 100_000
        live = await snapshot(fresh, bootstrap.all_projections())
        assert len(live["messages"]) > 10_000
        assert live["analytics_fan_revenue_daily"]

        result = await rebuild(fresh.pool, fresh.projection_store, bootstrap.all_projections())

        assert result.events == appended
        assert not result.resumed
        assert_same(await snapshot(fresh, bootstrap.all_projections()), live)
        names = {
            row["name"] for row in await fresh.pool.fetch("SELECT name FROM projection_checkpoints")
        }
        assert not any("@" in name for name in names)
        assert not await fresh.pool.fetchval(
            "SELECT count(*) FROM pg_namespace WHERE nspname LIKE 'rebuild_%'"
        )


async def test_an_interrupted_rebuild_resumes_where_it_stopped(
    fresh: bootstrap.Container,
) -> None:
    async with asyncio.timeout(100):
        appended = await write_history(fresh, 8_000, seed=3)
        await catch_up_live(fresh)
        projections = bootstrap.all_projections()
        live = await snapshot(fresh, projections)

        task = asyncio.create_task(
            rebuild(fresh.pool, fresh.projection_store, projections, batch_size=500)
        )
        await poll_until(rebuild_started, fresh)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        # Each projection commits its batches on its own: the least advanced one sets where
        # the rebuild picks up again.
        least = min(
            [await fresh.projection_store.checkpoint(f"{p.name}@rebuild_all") for p in projections]
        )
        stopped_at = await fresh.pool.fetchval(
            "SELECT count(*) FROM events WHERE (transaction_id, position) <= ($1::xid8, $2)",
            least.transaction_id,
            least.position,
        )
        assert 0 < stopped_at < appended
        assert_same(await snapshot(fresh, projections), live)  # live tables untouched

        result = await rebuild(fresh.pool, fresh.projection_store, projections, batch_size=500)

        assert result.resumed
        assert result.events == appended - stopped_at
        assert_same(await snapshot(fresh, projections), live)


async def test_api_reads_answer_while_a_rebuild_runs_and_swaps(
    fresh: bootstrap.Container,
) -> None:
    async with asyncio.timeout(100):
        await write_history(fresh, 8_000, seed=5)
        await catch_up_live(fresh)
        tenant = TENANTS[0]
        key, _ = await create_api_key(fresh.pool, user_id=tenant, role="creator")
        transport = httpx.ASGITransport(app=create_app(container=fresh))
        async with httpx.AsyncClient(
            transport=transport,
            base_url="http://testserver",
            headers={"Authorization": f"Bearer {key}"},
        ) as client:
            before = (await client.get("/api/crm/fans", params={"limit": 200})).json()
            task = asyncio.create_task(
                rebuild(
                    fresh.pool, fresh.projection_store, bootstrap.core_projections(), batch_size=500
                )
            )
            reads = 0
            while not task.done():
                response = await client.get("/api/crm/fans", params={"limit": 200})
                assert response.status_code == 200, response.text
                assert response.json() == before
                conversations = await client.get("/api/crm/conversations")
                assert conversations.status_code == 200, conversations.text
                reads += 1
            await task
            assert reads >= 3
            assert (await client.get("/api/crm/fans", params={"limit": 200})).json() == before


async def test_a_live_projector_running_through_the_swap_carries_on_from_the_rebuilt_tables(
    fresh: bootstrap.Container,
) -> None:
    async with asyncio.timeout(100):
        history = History(11)
        await append_units(fresh, history.new_fans(800))
        await catch_up_live(fresh)
        projections = bootstrap.all_projections()
        stop = asyncio.Event()
        live = [
            asyncio.create_task(
                ProjectionRunner(fresh.projection_store, p, batch_size=50, poll_interval=0.05).run(
                    stop
                )
            )
            for p in projections
        ]

        async def keep_writing() -> None:
            for _ in range(12):
                # Apart: more() may pick a fan new_fans() just made, and append_units writes
                # its chunks concurrently, so the fan's creation must have committed first.
                await append_units(fresh, history.new_fans(20), per_tx=5)
                await append_units(fresh, history.more(0.02), per_tx=5)
                await asyncio.sleep(0.02)

        writing = asyncio.create_task(keep_writing())
        await rebuild(fresh.pool, fresh.projection_store, projections, batch_size=300)
        await writing
        await catch_up_live(fresh)
        stop.set()
        await asyncio.gather(*live)
        errors = await fresh.pool.fetchval(
            "SELECT count(*) FROM projection_checkpoints WHERE last_error IS NOT NULL"
        )
        assert errors == 0
        after_swap = await snapshot(fresh, projections)

        # A quiet rebuild of the same log is the reference.
        await rebuild(fresh.pool, fresh.projection_store, projections)
        assert_same(await snapshot(fresh, projections), after_swap)


class EventByEvent:
    """A projection with its batch path hidden: the runner applies one event at a time."""

    def __init__(self, inner: Projection) -> None:
        self.inner = inner
        self.name = inner.name
        self.tables = inner.tables

    async def apply(self, sql: Sql, recorded: RecordedEvent) -> None:
        await self.inner.apply(sql, recorded)


async def test_batched_projections_write_what_event_by_event_apply_writes(
    fresh: bootstrap.Container,
) -> None:
    async with asyncio.timeout(100):
        await write_history(fresh, 6_000, seed=21)
        projections = bootstrap.all_projections()
        await fresh.pool.execute("CREATE SCHEMA one_by_one")
        for projection in projections:
            for table in projection.tables:
                await fresh.pool.execute(
                    f"CREATE TABLE one_by_one.{table} (LIKE public.{table} INCLUDING ALL)"
                )
        for projection in projections:
            await ProjectionRunner(
                fresh.projection_store, EventByEvent(projection), schema="one_by_one"
            ).catch_up()
        group = ProjectionGroupRunner(fresh.projection_store, projections, batch_size=700)
        try:
            await group.catch_up()
        finally:
            await group.close()
        for projection in projections:
            for table in projection.tables:
                batched = await fresh.pool.fetch(f"SELECT * FROM public.{table} t ORDER BY t::text")
                single = await fresh.pool.fetch(
                    f"SELECT * FROM one_by_one.{table} t ORDER BY t::text"
                )
                assert [tuple(r.values()) for r in batched] == [
                    tuple(r.values()) for r in single
                ], table
                # The history has no campaign or import events: only these fill up.
                assert batched or table not in FILLED_BY_THE_HISTORY, table


async def crm(url: str, *args: str) -> tuple[int, str]:
    env = {**os.environ, "DATABASE_URL": url, "LOG_LEVEL": "WARNING"}
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        "from adapters.cli import main; main()",
        *args,
        env=env,
        cwd=ROOT,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await proc.communicate()
    return proc.returncode or 0, out.decode()


async def test_crm_projections_rebuild_shows_progress_and_status_shows_every_projector(
    fresh: bootstrap.Container, fresh_database_url: str
) -> None:
    async with asyncio.timeout(100):
        appended = await write_history(fresh, 3_000, seed=2)
        code, out = await crm(
            fresh_database_url, "projections", "rebuild", "analytics_cohorts", "fans"
        )
        assert code == 0, out
        assert "events/s" in out
        assert f"rebuilt analytics_cohorts, fans: {appended:,} events" in out

        code, out = await crm(fresh_database_url, "projections", "status")
        assert code == 0, out
        lines = {line.split()[0]: line.split() for line in out.splitlines()[1:]}
        assert lines["fans"][2] == "0"  # no lag
        assert int(lines["messages"][2]) == appended  # never run: the whole log behind
        assert set(lines) >= {p.name for p in bootstrap.all_projections()}
