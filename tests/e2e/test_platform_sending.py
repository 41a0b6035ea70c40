"""Two platforms end to end (issue 20): messages posted to the API for an OnlyFans fan and a
Fansly fan go through the relay, the Postgres queue and four sender pollers, each to its own
platform's simulator over real HTTP, and each platform's limit holds on its own: judged, as in
test_sending.py, on the limiter's clock (the Redis time of each token granted), never on the
arrival times at the simulators, which carry the network's and the scheduler's jitter."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from datetime import datetime
from typing import Any

import pytest

from adapters.onlyfans.simulator import Simulator, SimulatorConfig
from adapters.redis import GcraRateLimiter
from application.delivery import Delivered, SendJob
from tests.support.sending import (
    FANS,
    Stack,
    embedded_redis,
    open_stack,
    window_excess,
)
from worker.relay import Relay
from worker.sender import build_sender, run_sender

OF_RATE, OF_BURST, OF_MESSAGES = 20.0, 5, 40
FANSLY_RATE, FANSLY_BURST, FANSLY_MESSAGES = 5.0, 2, 12
POLLERS = 4


@pytest.fixture(scope="module")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with embedded_redis(tmp_path_factory.mktemp("redis")) as url:
        yield url


@contextlib.asynccontextmanager
async def simulator(**config: Any) -> AsyncIterator[Simulator]:
    async with Simulator(SimulatorConfig(**config)) as started:
        yield started


async def until(condition: Callable[[], Awaitable[bool]], interval: float = 0.05) -> None:
    """Poll an (async) condition; the caller bounds the wait with asyncio.timeout."""
    while True:
        if await condition():
            return
        await asyncio.sleep(interval)


async def fan_on(stack: Stack, platform: str) -> int:
    body = {"name": "Ann", "handle": f"ann_{uuid.uuid4().hex[:10]}", "platform": platform}
    response = await stack.http.post(FANS, json=body, headers=stack.auth)
    assert response.status_code == 201, response.text
    return int(response.json()["fan"]["id"])


@pytest.mark.slow
@pytest.mark.timeout(90)
async def test_each_platforms_messages_reach_its_own_simulator_within_its_own_limit(
    fresh_database_url: str, redis_url: str
) -> None:
    async with (
        asyncio.timeout(75),
        simulator(rate_per_second=OF_RATE, burst=OF_BURST) as onlyfans,
        simulator(rate_per_second=FANSLY_RATE, burst=FANSLY_BURST) as fansly,
        open_stack(
            fresh_database_url,
            redis_url=redis_url,
            onlyfans_api_url=onlyfans.url,
            fansly_api_url=fansly.url,
            rate_limit_per_second=OF_RATE,
            rate_limit_burst=OF_BURST,
            fansly_rate_limit_per_second=FANSLY_RATE,
            fansly_rate_limit_burst=FANSLY_BURST,
        ) as stack,
    ):
        fans = {
            "onlyfans": await fan_on(stack, "onlyfans"),
            "fansly": await fan_on(stack, "fansly"),
        }
        # Interleaved, so that every batch a poller takes holds both platforms' messages.
        order: list[str] = []
        for i in range(OF_MESSAGES):
            order.append("onlyfans")
            if (
                i % (OF_MESSAGES // FANSLY_MESSAGES) == 0
                and order.count("fansly") < FANSLY_MESSAGES
            ):
                order.append("fansly")
        assert Counter(order) == {"onlyfans": OF_MESSAGES, "fansly": FANSLY_MESSAGES}
        sent: dict[str, list[str]] = {"onlyfans": [], "fansly": []}
        for i, platform in enumerate(order):
            accepted = await stack.send(recipientId=fans[platform], content=f"hello {i}")
            sent[platform].append(accepted["messageId"])
        relay = Relay(stack.container.outbox, stack.container.queue, stack.container.events)
        while await stack.container.outbox.pending():
            await relay.run_once()

        sender, close = await build_sender(stack.container)
        fansly_route = sender.delivery.platforms.route("fansly")
        assert fansly_route is not None
        assert isinstance(fansly_route.limiter, GcraRateLimiter)
        assert isinstance(sender.limiter, GcraRateLimiter)
        assert fansly_route.limiter.key(stack.tenant) != sender.limiter.key(stack.tenant)
        grants: list[tuple[str, datetime]] = []
        deliver = sender.delivery.deliver

        async def recording(job: SendJob) -> Delivered:
            delivered = await deliver(job)
            if delivered.token_at is not None:  # a token granted, on the limiter's clock
                grants.append((job.platform, delivered.token_at))
            return delivered

        sender.delivery.deliver = recording  # type: ignore[method-assign]
        stop = asyncio.Event()
        task = asyncio.create_task(
            run_sender(sender, stack.container.queue, stop, concurrency=POLLERS)
        )
        try:

            async def all_sent() -> bool:
                return await stack.count_events("MessageSent") == len(order)

            await until(all_sent)
        finally:
            stop.set()
            await task
            await close()

        # Each platform's messages at its own simulator, once each, and nothing else there.
        for platform, simulated in (("onlyfans", onlyfans), ("fansly", fansly)):
            keys = Counter(d.idempotency_key for d in simulated.deliveries())
            assert keys == Counter(sent[platform]), platform
            assert {d.recipient for d in simulated.deliveries()} == {str(fans[platform])}
        for platform in sent:
            view = await stack.message_view(sent[platform][0])
            assert (view["status"], view["platform"]) == ("sent", platform)

        # Each platform's tokens kept to its own limit in every window...
        limits = {"onlyfans": (OF_RATE, OF_BURST), "fansly": (FANSLY_RATE, FANSLY_BURST)}
        excess = {
            platform: window_excess([at for p, at in grants if p == platform], *limits[platform])
            for platform in limits
        }
        assert all(worst <= 1e-6 for worst in excess.values()), excess
        # ...and neither spent the other's: together they went faster than either alone
        # allows (a bucket shared by both would have held them to one limit).
        together = [at for _, at in grants]
        assert window_excess(together, OF_RATE, OF_BURST) > 0
        assert window_excess(together, FANSLY_RATE, FANSLY_BURST) > 0
        print(
            f"\n{len(grants)} grants ({Counter(p for p, _ in grants)}); worst window per "
            f"platform {excess}; simulator answers onlyfans {dict(onlyfans.requests)}, "
            f"fansly {dict(fansly.requests)}"
        )
