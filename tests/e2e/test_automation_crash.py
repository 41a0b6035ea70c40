"""The automation worker killed (SIGKILL) at random points while 5,000 runs progress: every step
of every run is queued exactly once, and reaches the platform (the OnlyFans simulator, over real
HTTP) exactly once. The worker is `crm worker automations` in a process of its own (real clock,
steps two seconds apart); the projectors, the relay and the sender run in this test's loop."""

from __future__ import annotations

import asyncio
import random
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from adapters import bootstrap
from adapters.bootstrap import Container
from adapters.onlyfans.simulator import Simulator, SimulatorConfig
from application.context import CommandContext
from application.enrolments import step_message_id
from application.sequences import CreateSequence, create_sequence
from domain.enrolment import enrolment_stream_id
from domain.message import message_stream_id
from domain.sequence_rules import Step, Trigger
from tests.e2e.test_sending import until
from tests.support.automations import AutomationWorkerProcess
from tests.support.campaigns import bulk_fans, catch_up_all, workers
from tests.support.settings import settings_for

FANS = 5_000
STEPS = 2
KILLS = 4


@pytest.fixture
async def platform() -> AsyncIterator[Simulator]:
    async with Simulator(SimulatorConfig(latency=0.0)) as simulator:
        yield simulator


@pytest.fixture
async def fresh(fresh_database_url: str, platform: Simulator) -> AsyncIterator[Container]:
    """A container whose sender calls the simulator, with no rate limit of ours."""
    settings = settings_for(
        fresh_database_url, onlyfans_api_url=platform.url, rate_limiter_enabled=False
    )
    container = await bootstrap.build(settings)
    try:
        yield container
    finally:
        await container.close()


@pytest.mark.slow
@pytest.mark.timeout(240)
async def test_killing_the_automation_worker_at_random_points_sends_every_step_exactly_once(
    fresh: Container, fresh_database_url: str, platform: Simulator, tmp_path: Path
) -> None:
    tenant = f"user-{uuid.uuid4().hex[:12]}"
    ctx = CommandContext(tenant=tenant, actor="test", correlation_id=uuid.uuid4().hex)
    steps = [Step(content="One"), *(Step(wait="PT2S", content=f"Step {n}") for n in (2, 3))]
    steps = steps[:STEPS]
    sequence = (
        await create_sequence(
            CreateSequence(name="Crash", trigger=Trigger(type="fanCreated"), steps=tuple(steps)),
            ctx,
            store=fresh.events,
            ids=fresh.ids,
        )
    ).sequence
    await catch_up_all(fresh)
    fans = await bulk_fans(fresh, tenant, FANS, batch=500)
    total = FANS * STEPS
    worker = AutomationWorkerProcess(
        tmp_path / "automations.log", DATABASE_URL=fresh_database_url, LOG_LEVEL="WARNING"
    )

    async def sent() -> int:
        return int(
            await fresh.pool.fetchval(
                "SELECT coalesce(sum(sent), 0) FROM sequence_step_metrics WHERE sequence_id = $1",
                sequence.sequence_id,
            )
        )

    # Each kill once the restarted worker has sent a few (random) more steps: mid-progress,
    # at a point that differs from run to run.
    seen_at_kill: list[int] = []
    async with asyncio.timeout(220), workers(fresh, campaigns=False):
        try:
            for _ in range(KILLS):
                await worker.start()
                threshold = (seen_at_kill[-1] if seen_at_kill else 0) + random.randint(1, 1500)

                async def past(n: int = threshold) -> bool:
                    worker.check_alive()
                    return await sent() >= n

                await until(past, interval=0.01)
                await worker.kill()
                seen_at_kill.append(await sent())
            await worker.start()

            async def all_sent() -> bool:
                worker.check_alive()
                return await sent() >= total

            await until(all_sent, interval=0.1)
        finally:
            await worker.stop()

        async def all_delivered() -> bool:
            return len(platform.deliveries()) >= total

        await until(all_delivered, interval=0.2)
        await catch_up_all(fresh)

    assert worker.kills == KILLS
    assert all(n < total for n in seen_at_kill), seen_at_kill
    expected = {
        message_stream_id(
            tenant, step_message_id(enrolment_stream_id(sequence.sequence_id, f, 1), s)
        )
        for f in fans
        for s in range(STEPS)
    }
    queued = await fresh.pool.fetch(
        "SELECT stream_id, count(*) AS n FROM events WHERE event_type = 'MessageQueued'"
        " GROUP BY stream_id"
    )
    assert {r["stream_id"] for r in queued} == expected
    assert max(r["n"] for r in queued) == 1
    step_sent = await fresh.pool.fetchval(
        "SELECT count(*) FROM events WHERE event_type = 'EnrolmentStepSent'"
    )
    assert step_sent == total
    # At the platform: each step's message once, whatever the kills did.
    delivered = Counter(d.idempotency_key for d in platform.deliveries())
    ids = {stream.rsplit(":", 1)[-1] for stream in expected}
    assert set(delivered) == ids
    assert max(delivered.values()) == 1
    print(f"\nautomation crash: {FANS} runs x {STEPS} steps, kills at sent = {seen_at_kill}")
