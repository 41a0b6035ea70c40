"""Bulk campaigns end to end (issue 6): POST /api/messages/bulk through the campaign worker's
fan-out, the outbox relay, the Postgres queue and the sender to the OnlyFans simulator, and
the simulator's signed webhooks back into the API (on a real port) and the campaign metrics.

Each test has a database of its own (``fresh_database_url``), so counts over the whole log,
the outbox and the queue are exact. The workers run as tasks of the test's loop (as `crm dev`
runs them), except where a test kills the campaign worker: there it is `crm worker campaigns`
in a process of its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import msgspec
import pytest

from adapters import bootstrap
from adapters.http.app import create_app
from adapters.onlyfans.simulator import Simulator, SimulatorConfig
from adapters.postgres.api_keys import create_api_key
from application.campaign_fan_out import campaign_message_id
from application.campaigns import load_campaign
from domain.message import message_stream_id
from projections.campaigns import CampaignMetricsProjection
from projections.runner import ProjectionRunner
from tests.support.campaigns import (
    CampaignWorkerProcess,
    bulk_fans,
    campaign_view,
    catch_up_all,
    change,
    free_port,
    launch,
    served_api,
    workers,
)
from tests.support.sending import embedded_redis, new_tenant
from tests.support.settings import settings_for
from worker.sender import build_sender, run_sender

FANS = "/api/crm/fans"
SEND = "/api/onlyfans/messages/send"


@pytest.fixture(scope="module")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with embedded_redis(tmp_path_factory.mktemp("redis")) as url:
        yield url


@dataclasses.dataclass
class Deployment:
    container: bootstrap.Container
    http: httpx.AsyncClient
    tenant: str
    auth: dict[str, str]

    async def new_fan(self, name: str) -> int:
        response = await self.http.post(FANS, json={"name": name}, headers=self.auth)
        assert response.status_code == 201, response.text
        return int(response.json()["fan"]["id"])

    async def view(self, campaign_id: int) -> dict[str, Any]:
        """The campaign's view, once the views show at least its launch."""
        position = await self.count(
            "SELECT min(position) FROM events WHERE stream_id = $1", f"campaign-{campaign_id}"
        )
        return await campaign_view(self.http, self.auth, campaign_id, position)

    async def count(self, sql: str, *args: Any) -> int:
        return int(await self.container.pool.fetchval(sql, *args))


@contextlib.asynccontextmanager
async def deployment(
    database_url: str, *, tenant: str | None = None, port: int | None = None, **settings: Any
) -> AsyncIterator[Deployment]:
    """A container on ``database_url``, one creator's key, and the API: on 127.0.0.1:``port``
    when given (webhooks reach it), else through httpx's ASGITransport."""
    # Room for every in-process worker: each of the 9 projectors holds a connection for its
    # batch's transaction and takes a second one to read the log; with the default 10, one
    # run saw a bulk POST stall for 49 s with every worker of this process busy.
    settings.setdefault("pool_max_size", 40)
    container = await bootstrap.build(settings_for(database_url, **settings))
    try:
        tenant = tenant or new_tenant()
        key, _ = await create_api_key(container.pool, user_id=tenant, role="creator")
        auth = {"Authorization": f"Bearer {key}"}
        if port is None:
            transport = httpx.ASGITransport(app=create_app(container=container))
            async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as h:
                yield Deployment(container, h, tenant, auth)
        else:
            async with (
                served_api(container, port) as base_url,
                httpx.AsyncClient(base_url=base_url, timeout=30) as h,
            ):
                yield Deployment(container, h, tenant, auth)
    finally:
        await container.close()


@contextlib.asynccontextmanager
async def platform_deployment(
    database_url: str, **simulator: Any
) -> AsyncIterator[tuple[Simulator, Deployment]]:
    """A deployment served on a port and an OnlyFans simulator (``simulator``: its
    SimulatorConfig options) that sends it signed webhooks, its creator's secret registered;
    the sender calls the simulator, with no rate limiter of ours."""
    tenant, port, secret = new_tenant(), free_port(), "whsec_" + uuid.uuid4().hex
    config = SimulatorConfig(
        webhook_url=f"http://127.0.0.1:{port}", webhook_secrets={tenant: secret}, **simulator
    )
    async with (
        Simulator(config) as platform,
        deployment(
            database_url,
            tenant=tenant,
            port=port,
            onlyfans_api_url=platform.url,
            rate_limiter_enabled=False,
        ) as d,
    ):
        await d.container.pool.execute(
            "INSERT INTO webhook_secrets (tenant_id, secret) VALUES ($1, $2)", tenant, secret
        )
        yield platform, d


async def until(condition: Callable[[], Awaitable[bool]], interval: float = 0.05) -> None:
    """Poll an (async) condition; callers bound the wait with asyncio.timeout."""
    while True:
        if await condition():
            return
        await asyncio.sleep(interval)


def campaign_keys(platform: Simulator, keys: set[str]) -> Counter[str]:
    """Deliveries at the simulator per idempotency key, of these keys only."""
    return Counter(d.idempotency_key for d in platform.deliveries() if d.idempotency_key in keys)


async def metrics_replayed_equal_live(container: bootstrap.Container) -> None:
    """Replay the campaign_metrics projection from the first event into a fresh schema
    (as bench/replay.py does) and compare its tables with the live ones, row for row."""
    projection = CampaignMetricsProjection()
    schema = f"replay_{uuid.uuid4().hex[:8]}"
    pool = container.pool
    await pool.execute(f'CREATE SCHEMA "{schema}"')
    for table in projection.tables:
        await pool.execute(
            f'CREATE TABLE "{schema}"."{table}" (LIKE public."{table}" INCLUDING ALL)'
        )
    # The live projector first up to what is committed now, then the replay up to the same.
    await ProjectionRunner(container.projection_store, projection).catch_up()
    replayed = await ProjectionRunner(
        container.projection_store, projection, schema=schema, batch_size=137
    ).catch_up()
    assert replayed > 0
    for table, key in (("campaign_metrics", "campaign_id"), ("campaign_messages", "message_id")):
        live = [dict(r) for r in await pool.fetch(f"SELECT * FROM public.{table} ORDER BY {key}")]
        again = [
            dict(r) for r in await pool.fetch(f'SELECT * FROM "{schema}".{table} ORDER BY {key}')
        ]
        assert live, f"{table} is empty"
        assert again == live, f"{table}: the replay differs from the live projection"


async def queues_empty(container: bootstrap.Container) -> bool:
    if await container.outbox.pending():
        return False
    for name in ("high", "normal"):
        stats = await container.queue.stats(name)
        if stats.visible + stats.in_flight:
            return False
    return True


# --- 1. three fans, through HTTP, to delivered --------------------------------------------------


@pytest.mark.timeout(60)
async def test_a_campaign_to_three_fans_is_delivered_and_counted_delivered_from_webhooks(
    fresh_database_url: str,
) -> None:
    async with (
        asyncio.timeout(50),
        platform_deployment(
            fresh_database_url,
            delivery_probability=1.0,
            webhook_delay=0.05,
            webhook_delay_jitter=0.05,
        ) as (platform, d),
    ):
        fans = [await d.new_fan(name) for name in ("Ann Lee", "Bea", "Cy Dorn")]
        await catch_up_all(d.container)
        async with workers(d.container):
            accepted = await launch(
                d.http,
                d.auth,
                recipientIds=fans,
                content="Hi {{first_name|babe}}, a new set!",
                campaignName="Three fans",
            )
            assert (accepted["totalRecipients"], accepted["failed"]) == (3, 0)
            campaign_id = accepted["campaignId"]
            keys = {campaign_message_id(campaign_id, fan) for fan in fans}

            async def done() -> bool:
                metrics = (await d.view(campaign_id))["metrics"]
                return (metrics["sent"], metrics["delivered"]) == (3, 3)

            await until(done, interval=0.1)
            view = await d.view(campaign_id)

        assert campaign_keys(platform, keys) == Counter(dict.fromkeys(keys, 1))
        assert len(platform.deliveries()) == 3
        texts = {d_.recipient: d_.text for d_ in platform.deliveries()}
        assert texts == {
            str(fans[0]): "Hi Ann, a new set!",
            str(fans[1]): "Hi Bea, a new set!",
            str(fans[2]): "Hi Cy, a new set!",
        }
        # The delivery receipts came over HTTP, signed, and were accepted.
        hooks = platform.webhook_attempts()
        assert {h.type for h in hooks} == {"message.delivered"}
        accepted_hooks = {h.event_id for h in hooks if h.status is not None and h.status < 300}
        assert len(accepted_hooks) == 3, hooks
        metrics = view["metrics"]
        assert metrics | {"sent": 3, "delivered": 3, "queued": 3, "failed": 0} == metrics
        assert view["progress"]["sent"] == 3
        assert view["progress"]["remaining"] == 0


# --- 2. 20,000 fans, the campaign worker killed twice during fan-out ----------------------------

AUDIENCE = 20_000


@pytest.mark.slow
@pytest.mark.timeout(300)
async def test_a_20k_fan_out_survives_two_kills_of_the_campaign_worker_queueing_each_fan_once(
    fresh_database_url: str, tmp_path: Path
) -> None:
    started = time.monotonic()
    # ~30 s on an idle 2-core machine; the bounds leave room for a busy one.
    async with asyncio.timeout(280), deployment(fresh_database_url) as d:
        fans = await bulk_fans(d.container, d.tenant, AUDIENCE, tags=("everyone",))
        await catch_up_all(d.container)
        setup = time.monotonic() - started
        # The projectors run here (the worker reads the campaigns and fans views); no relay:
        # every queued message stays in the outbox, to be counted.
        async with workers(d.container, relay=False, sender=False, campaigns=False):
            accepted = await launch(
                d.http, d.auth, segment={"tags": ["everyone"]}, content="Hi {{name}}!"
            )
            campaign_id = accepted["campaignId"]
            assert accepted["totalRecipients"] == AUDIENCE
            assert accepted["status"] == "queueing"
            worker = CampaignWorkerProcess(
                tmp_path / "campaigns.log",
                DATABASE_URL=fresh_database_url,
                LOG_LEVEL="INFO",
            )

            async def outbox_rows() -> int:
                return await d.count("SELECT count(*) FROM outbox")

            fanned_at_kill: list[int] = []
            try:
                for kill_after in (5_000, 12_000):
                    await worker.start()

                    async def past(n: int = kill_after) -> bool:
                        worker.check_alive()
                        return await outbox_rows() >= n

                    await until(past, interval=0.05)
                    await worker.kill()
                    fanned_at_kill.append(await outbox_rows())
                await worker.start()

                async def fanned_out() -> bool:
                    worker.check_alive()
                    campaign, _ = await load_campaign(d.container.events, campaign_id, tenant=None)
                    return campaign.fanned_out

                await until(fanned_out, interval=0.2)
            finally:
                await worker.stop()
            fan_out_s = time.monotonic() - started - setup
            await catch_up_all(d.container)
            view = await d.view(campaign_id)

        assert worker.kills == 2
        assert all(n < AUDIENCE for n in fanned_at_kill), fanned_at_kill
        # Exactly one message per fan, with the id derived from (campaign, fan), in the log...
        expected = {
            message_stream_id(d.tenant, campaign_message_id(campaign_id, fan)) for fan in fans
        }
        queued = await d.container.pool.fetch(
            "SELECT stream_id, count(*) AS n FROM events WHERE event_type = 'MessageQueued'"
            " GROUP BY stream_id"
        )
        assert len(queued) == AUDIENCE
        assert {r["stream_id"] for r in queued} == expected
        assert max(r["n"] for r in queued) == 1
        # ...and on its way: one outbox row per message (nothing relayed yet).
        rows = await d.container.pool.fetch(
            "SELECT message_id::text AS id, count(*) AS n FROM outbox GROUP BY message_id"
        )
        assert len(rows) == AUDIENCE
        assert max(r["n"] for r in rows) == 1
        assert {message_stream_id(d.tenant, r["id"]) for r in rows} == expected
        assert {r["queue"] for r in await d.container.pool.fetch("SELECT queue FROM outbox")} == {
            "normal"
        }
        # Each fan's conversation was opened once by the fan-out.
        assert await d.count("SELECT count(*) FROM conversations") == AUDIENCE
        assert await d.count("SELECT count(DISTINCT fan_id) FROM conversations") == AUDIENCE
        # The campaign's own account and its metrics add up.
        campaign, _ = await load_campaign(d.container.events, campaign_id, tenant=None)
        assert (campaign.queued, campaign.skipped, campaign.cursor) == (AUDIENCE, 0, fans[-1])
        assert view["progress"] == {
            "totalRecipients": AUDIENCE,
            "queued": AUDIENCE,
            "sent": 0,
            "remaining": AUDIENCE,
            "skipped": 0,
        }
        assert view["metrics"]["queued"] == AUDIENCE

        # On to the queue: the relay moves every outbox row, each once. Then the sender for a
        # few seconds (all 20,000 at this machine's pace would take minutes): a sample, each
        # message delivered at most once and only as recorded sent.
        relayed_at = time.monotonic()
        async with workers(d.container, projectors=False, sender=False, campaigns=False):

            async def all_on_queue() -> bool:
                return (await d.container.queue.stats("normal")).visible == AUDIENCE

            await until(all_on_queue, interval=0.2)
        relay_s = time.monotonic() - relayed_at
        assert await d.count("SELECT count(*) FROM outbox") == 0
        on_queue = await d.container.pool.fetch(
            "SELECT body::jsonb->>'messageId' AS id, count(*) AS n FROM queue_messages GROUP BY 1"
        )
        assert len(on_queue) == AUDIENCE
        assert max(r["n"] for r in on_queue) == 1
        assert {message_stream_id(d.tenant, r["id"]) for r in on_queue} == expected
        async with Simulator(SimulatorConfig()) as platform:
            sample = dataclasses.replace(
                d.container,
                settings=msgspec.structs.replace(
                    d.container.settings, onlyfans_api_url=platform.url, rate_limiter_enabled=False
                ),
            )
            sender, close = await build_sender(sample)
            stop = asyncio.Event()
            polling = asyncio.create_task(run_sender(sender, d.container.queue, stop))
            await asyncio.sleep(3)
            stop.set()
            async with asyncio.timeout(15):
                await polling
            await close()
        deliveries = Counter(x.idempotency_key for x in platform.deliveries())
        assert deliveries, "the sample sent nothing"
        assert max(deliveries.values()) == 1
        assert {message_stream_id(d.tenant, k) for k in deliveries} <= expected
        assert {x.recipient for x in platform.deliveries()} <= {str(fan) for fan in fans}
        assert await d.count("SELECT count(*) FROM events WHERE event_type = 'MessageSent'") == len(
            deliveries
        )
        print(
            f"\n20k fan-out: setup {setup:.1f} s, fan-out with 2 kills {fan_out_s:.1f} s,"
            f" outbox at kills {fanned_at_kill}, relay {relay_s:.1f} s,"
            f" sample sent {len(deliveries)}"
        )


# --- 3. pause, resume, cancel --------------------------------------------------------------------

RATE, BURST = 20.0, 5
PAUSE_FANS = 200
SETTLE = 4.0  # campaign_status_ttl (0.25 s) + the platform calls under way, with room to spare


async def steady(platform: Simulator, keys: set[str], seconds: float) -> int:
    """The delivery count of these keys, after checking it did not move for ``seconds``."""
    before = sum(campaign_keys(platform, keys).values())
    await asyncio.sleep(seconds)
    after = sum(campaign_keys(platform, keys).values())
    assert after == before, f"{after - before} deliveries in {seconds} s while stopped"
    return after


@pytest.mark.timeout(120)
async def test_pause_stops_sends_resume_finishes_without_duplicates_and_cancel_stops_for_good(
    fresh_database_url: str, redis_url: str
) -> None:
    async with (
        asyncio.timeout(110),
        Simulator(SimulatorConfig()) as platform,
        deployment(
            fresh_database_url,
            onlyfans_api_url=platform.url,
            redis_url=redis_url,
            rate_limit_per_second=RATE,
            rate_limit_burst=BURST,
        ) as d,
    ):
        fans = await bulk_fans(d.container, d.tenant, PAUSE_FANS, tags=("paused",))
        await catch_up_all(d.container)
        async with workers(d.container):
            # Pause while draining, resume: each fan delivered once in all.
            first = await launch(d.http, d.auth, recipientIds=fans, content="Part one, {{name}}")
            first_id = first["campaignId"]
            keys = {campaign_message_id(first_id, fan) for fan in fans}

            async def some_sent() -> bool:
                return sum(campaign_keys(platform, keys).values()) >= 30

            await until(some_sent)
            at_pause = sum(campaign_keys(platform, keys).values())
            paused_at = time.monotonic()
            assert (await change(d.http, d.auth, first_id, "pause"))["status"] == "paused"
            await asyncio.sleep(SETTLE)
            stopped = await steady(platform, keys, 3.0)
            assert stopped < PAUSE_FANS - 50, "the campaign was not draining when paused"
            # Within SETTLE at most the records already in hand and a status TTL's worth.
            assert stopped - at_pause <= RATE * SETTLE + 40
            view = await d.view(first_id)
            assert view["status"] == "paused"
            assert view["metrics"]["held"] > 0, view["metrics"]
            assert time.monotonic() - paused_at < 15

            assert (await change(d.http, d.auth, first_id, "resume"))["status"] == "active"

            async def all_delivered() -> bool:
                return len(campaign_keys(platform, keys)) == PAUSE_FANS

            await until(all_delivered, interval=0.1)

            async def completed() -> bool:
                return (await d.view(first_id))["status"] == "completed"

            await until(completed, interval=0.1)
            assert campaign_keys(platform, keys) == Counter(dict.fromkeys(keys, 1))
            view = await d.view(first_id)
            metrics = view["metrics"]
            assert (metrics["queued"], metrics["sent"], metrics["held"]) == (PAUSE_FANS,) * 2 + (0,)
            assert (metrics["failed"], metrics["cancelled"]) == (0, 0)

            # Cancel while draining: no delivery after the settle time, the rest cancelled.
            second = await launch(d.http, d.auth, recipientIds=fans, content="Part two, {{name}}")
            second_id = second["campaignId"]
            keys2 = {campaign_message_id(second_id, fan) for fan in fans}

            async def some_sent2() -> bool:
                return sum(campaign_keys(platform, keys2).values()) >= 30

            await until(some_sent2)
            assert (await change(d.http, d.auth, second_id, "cancel"))["status"] == "cancelled"
            await asyncio.sleep(SETTLE)
            delivered = await steady(platform, keys2, 3.0)
            assert delivered < PAUSE_FANS - 50, "the campaign was not draining when cancelled"
            # Whatever was still in the outbox or on the queue is taken off it, cancelled.
            async with asyncio.timeout(30):
                await until(lambda: queues_empty(d.container), interval=0.2)

            async def settled() -> bool:
                m = (await d.view(second_id))["metrics"]
                return m["sent"] + m["cancelled"] == PAUSE_FANS and m["held"] == 0

            await until(settled, interval=0.1)
            assert await steady(platform, keys2, 1.0) == delivered
            view2 = await d.view(second_id)

        assert max(campaign_keys(platform, keys2).values()) == 1
        assert view2["status"] == "cancelled"
        metrics = view2["metrics"]
        assert metrics["sent"] == delivered
        assert metrics["cancelled"] == PAUSE_FANS - delivered
        last = {
            k: (await d.container.events.load(message_stream_id(d.tenant, k)))[-1].event_type
            for k in keys2
        }
        sent = {k for k in keys2 if platform.delivered_count(k)}
        assert {k for k, e in last.items() if e == "MessageSent"} == sent
        assert {k for k, e in last.items() if e != "MessageSent"} == keys2 - sent
        assert set(Counter(e for k, e in last.items() if k not in sent)) == {"MessageCancelled"}
        await metrics_replayed_equal_live(d.container)


FAN_OUT = 5000


@pytest.mark.timeout(120)
async def test_pause_and_cancel_stop_the_fan_out_itself_and_resume_finishes_it_once_per_fan(
    fresh_database_url: str,
) -> None:
    """Pause and cancel during the fan-out (small chunks make it last): no message is queued
    while paused or after the cancel; resume queues the rest, each fan once."""
    async with (
        asyncio.timeout(110),
        deployment(fresh_database_url, campaign_chunk_size=100) as d,
    ):
        fans = await bulk_fans(d.container, d.tenant, FAN_OUT, tags=("fan-out",))
        await catch_up_all(d.container)

        async def queued(campaign_id: int) -> int:
            return await d.count(
                "SELECT count(*) FROM outbox WHERE (body::jsonb->>'campaignId')::bigint = $1",
                campaign_id,
            )

        async def still(campaign_id: int, seconds: float) -> int:
            before = await queued(campaign_id)
            await asyncio.sleep(seconds)
            after = await queued(campaign_id)
            assert after == before, f"{after - before} queued in {seconds} s while stopped"
            return after

        async with workers(d.container, relay=False, sender=False):
            first = await launch(d.http, d.auth, segment={"tags": ["fan-out"]}, content="One")
            first_id = first["campaignId"]

            async def under_way(campaign_id: int = first_id) -> bool:
                return await queued(campaign_id) >= 1000

            await until(under_way)
            await change(d.http, d.auth, first_id, "pause")
            await asyncio.sleep(1.0)  # a chunk in progress at the pause is refused or done
            at_pause = await still(first_id, 2.0)
            assert at_pause < FAN_OUT, "the fan-out was over before the pause"
            await change(d.http, d.auth, first_id, "resume")

            async def fanned_out() -> bool:
                campaign, _ = await load_campaign(d.container.events, first_id, tenant=None)
                return campaign.fanned_out

            await until(fanned_out, interval=0.1)

            second = await launch(d.http, d.auth, segment={"tags": ["fan-out"]}, content="Two")
            second_id = second["campaignId"]

            async def under_way2() -> bool:
                return await queued(second_id) >= 1000

            await until(under_way2)
            await change(d.http, d.auth, second_id, "cancel")
            await asyncio.sleep(1.0)
            at_cancel = await still(second_id, 2.0)
            assert at_cancel < FAN_OUT
            cancelled, _ = await load_campaign(d.container.events, second_id, tenant=None)

        rows = await d.container.pool.fetch(
            "SELECT message_id::text AS id, count(*) AS n FROM outbox"
            " WHERE (body::jsonb->>'campaignId')::bigint = $1 GROUP BY 1",
            first_id,
        )
        assert len(rows) == FAN_OUT
        assert max(r["n"] for r in rows) == 1
        assert {r["id"] for r in rows} == {campaign_message_id(first_id, fan) for fan in fans}
        campaign, _ = await load_campaign(d.container.events, first_id, tenant=None)
        assert (campaign.queued, campaign.skipped) == (FAN_OUT, 0)
        assert cancelled.status == "cancelled"
        assert not cancelled.fanned_out
        assert cancelled.queued == at_cancel
        print(f"\nfan-out paused at {at_pause}, cancelled at {at_cancel} of {FAN_OUT}")


# --- 4. a reply overtakes a campaign draining --------------------------------------------------

LARGE = 3000


@pytest.mark.timeout(120)
@pytest.mark.parametrize("backlog", ["all on the queue", "still fanning out"])
async def test_a_reply_sent_while_a_large_campaign_drains_is_delivered_before_its_backlog(
    backlog: str, fresh_database_url: str
) -> None:
    """ "all on the queue": the sender starts once the relay has put the whole audience on the
    queue; "still fanning out": it runs from the launch, and the reply comes while the
    campaign worker and the relay are still at work (smaller chunks make the fan-out last)."""
    fanning_out = backlog == "still fanning out"
    async with (
        asyncio.timeout(110),
        Simulator(SimulatorConfig(latency=0.02)) as platform,
        deployment(
            fresh_database_url,
            onlyfans_api_url=platform.url,
            rate_limiter_enabled=False,
            campaign_chunk_size=100 if fanning_out else 500,
        ) as d,
    ):
        fans = await bulk_fans(d.container, d.tenant, LARGE, tags=("large",))
        replying_fan = await d.new_fan("Replying fan")
        await catch_up_all(d.container)
        async with workers(d.container, sender=False):
            sender, close = await build_sender(d.container)
            stop = asyncio.Event()
            polling: asyncio.Task[None] | None = None
            if fanning_out:
                polling = asyncio.create_task(
                    run_sender(sender, d.container.queue, stop, concurrency=1)
                )
            accepted = await launch(
                d.http, d.auth, segment={"tags": ["large"]}, content="Big news, {{name}}"
            )
            campaign_id = accepted["campaignId"]
            keys = {campaign_message_id(campaign_id, fan) for fan in fans}

            # The whole audience on the queue before the sender starts: a real backlog.
            async def all_on_queue() -> bool:
                return (await d.container.queue.stats("normal")).visible == LARGE

            if not fanning_out:
                await until(all_on_queue, interval=0.2)
                polling = asyncio.create_task(
                    run_sender(sender, d.container.queue, stop, concurrency=1)
                )
            assert polling is not None
            try:

                async def busy() -> bool:
                    return len(platform.deliveries()) >= 50

                await until(busy, interval=0.01)
                before = len(platform.deliveries())
                queued_then = await d.count(
                    "SELECT count(*) FROM events WHERE event_type = 'MessageQueued'"
                )
                outbox_then = await d.count("SELECT count(*) FROM outbox")
                asked = datetime.now(UTC)
                response = await d.http.post(
                    SEND,
                    json={"recipientId": replying_fan, "content": "Sure, tonight!", "priority": 9},
                    headers=d.auth,
                )
                assert response.status_code == 202, response.text
                reply_id = response.json()["messageId"]

                async def delivered() -> bool:
                    return platform.delivered_count(reply_id) == 1

                async with asyncio.timeout(10):
                    await until(delivered, interval=0.01)
            finally:
                stop.set()
                async with asyncio.timeout(15):
                    await polling
                await close()

        if fanning_out:
            assert queued_then < LARGE, "the fan-out was over when the reply came"
        deliveries = platform.deliveries()
        [answer] = [x for x in deliveries if x.idempotency_key == reply_id]
        took = (answer.delivered_at - asked).total_seconds()
        ahead = sum(1 for x in deliveries if x.delivered_at < answer.delivered_at)
        # None when the sender recorded the reply sent before the relay recorded it
        # dispatched: the relay then has nothing to record, as the design allows.
        dispatched = await d.container.pool.fetchval(
            "SELECT (extract(epoch FROM recorded_at - $2::timestamptz) * 1000)::int FROM events"
            " WHERE stream_id = $1 AND event_type = 'MessageDispatched'",
            message_stream_id(d.tenant, reply_id),
            asked,
        )
        until_queued = "an unrecorded part" if dispatched is None else f"{dispatched} ms"
        why = (
            f"{ahead - before} campaign messages went first; the reply took {took:.2f} s,"
            f" {until_queued} of it until the relay put it on the queue"
            f" ({outbox_then} outbox rows were waiting when it was sent)"
        )
        print("\n" + why)
        assert took < 5, why
        if not fanning_out:
            # Only what the poller held when the reply came (a batch or two) went first.
            assert ahead - before < 100, why
        # While the campaign worker, the relay and the sender share this loop with the
        # projectors, the reply's way through the relay can take a second or two more; it
        # still overtakes nearly all of the campaign.
        assert ahead < LARGE / 10
        assert len(campaign_keys(platform, keys)) < LARGE / 2, "the backlog was not large"
        keys_seen = Counter(x.idempotency_key for x in deliveries)
        assert max(keys_seen.values()) == 1
        assert set(keys_seen) <= keys | {reply_id}


# --- 5. replaying campaign_metrics gives the live metrics ------------------------------------


@pytest.mark.timeout(90)
async def test_campaign_metrics_replayed_from_scratch_equal_the_live_ones(
    fresh_database_url: str,
) -> None:
    tenant, port, secret = new_tenant(), free_port(), "whsec_" + uuid.uuid4().hex
    fans_count, price = 40, 900
    async with asyncio.timeout(80):
        # The fans first (their ids decide which are blocked at the platform).
        async with deployment(fresh_database_url, tenant=tenant) as d:
            fans = await bulk_fans(d.container, tenant, fans_count, tags=("metrics",))
        blocked = frozenset(str(fan) for fan in fans[:4])
        config = SimulatorConfig(
            seed=7,
            webhook_url=f"http://127.0.0.1:{port}",
            webhook_secrets={tenant: secret},
            delivery_probability=1.0,
            read_probability=0.7,
            click_probability=0.5,
            purchase_probability=0.5,
            webhook_delay=0.05,
            webhook_delay_jitter=0.05,
            webhook_duplicate_rate=0.2,
            blocked_recipients=blocked,
        )
        async with (
            Simulator(config) as platform,
            deployment(
                fresh_database_url,
                tenant=tenant,
                port=port,
                onlyfans_api_url=platform.url,
                rate_limiter_enabled=False,
            ) as d,
        ):
            await d.container.pool.execute(
                "INSERT INTO webhook_secrets (tenant_id, secret) VALUES ($1, $2)", tenant, secret
            )
            await catch_up_all(d.container)
            async with workers(d.container):
                accepted = await launch(
                    d.http,
                    d.auth,
                    segment={"tags": ["metrics"]},
                    content="Unlock it, {{name}}",
                    priceCents=price,
                )
                campaign_id = accepted["campaignId"]
                # A second, small campaign, paused at once (the sender holds what it meets of
                # it), then cancelled (the worker cancels what is held): other buckets.
                # Once the fans view shows the conversations the first launch opened: else the
                # second one's first chunk may meet a stale fan and leave it to the worker.
                response = await d.http.post(
                    f"/api/messages/bulk?minPosition={accepted['position']}",
                    json={"recipientIds": fans[-5:], "content": "Later"},
                    headers=d.auth,
                )
                assert response.status_code == 202, response.text
                other = response.json()
                await change(d.http, d.auth, other["campaignId"], "pause")
                await asyncio.sleep(1.5)
                await change(d.http, d.auth, other["campaignId"], "cancel")

                async def completed() -> bool:
                    return (await d.view(campaign_id))["status"] == "completed"

                await until(completed, interval=0.1)
                # Let the last webhooks land: the metrics stay put for a while.
                previous: dict[str, Any] = {}
                while True:
                    await asyncio.sleep(1.5)
                    metrics = (await d.view(campaign_id))["metrics"]
                    if metrics == previous:
                        break
                    previous = metrics

                async def other_settled() -> bool:
                    # Whatever it had queued (all five, unless its first chunk was left to the
                    # worker, which a pause stops) was sent or cancelled; none still held.
                    m = (await d.view(other["campaignId"]))["metrics"]
                    settled = m["sent"] + m["cancelled"] == m["queued"] and m["held"] == 0
                    return settled and m["queued"] >= other["queued"]

                await until(other_settled, interval=0.1)
            await metrics_replayed_equal_live(d.container)

        ok = fans_count - len(blocked)
        assert metrics["queued"] == fans_count
        assert (metrics["sent"], metrics["failed"], metrics["delivered"]) == (ok, 4, ok)
        assert 0 < metrics["opened"] <= ok
        assert 0 <= metrics["clicked"] <= metrics["opened"]
        assert metrics["revenueCents"] > 0
        assert metrics["revenueCents"] % price == 0
        purchases = sum(1 for h in platform.webhook_attempts() if h.type == "message.purchased")
        assert metrics["revenueCents"] // price <= purchases
