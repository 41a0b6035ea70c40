"""The limiter's Redis killed while creators send and launch a campaign, with the relay, the
sender, the projectors and the campaign worker running (issue 13, findings 3 and 4).

While Redis is away every request answers 2xx (a client's retries with its Idempotency-Key are
replayed, never run twice), the status answers from PostgreSQL, the health check says sending
is paused and why, and the sender takes no message: it hands back what it holds without
counting the receive. The queue dead-letters after one counted receive here
(SQS_MAX_RECEIVE_COUNT=1), so a receive counted during the outage would dead-letter its message
instead of delivering it. When Redis is back, every message is delivered exactly once.

The Redis is the test's own process (tests/support/redis_process.py), killed and started again
at the same address; the machine's Redis is never touched.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from adapters.onlyfans.simulator import Simulator, SimulatorConfig
from tests.support.campaigns import BULK, workers
from tests.support.redis_process import RedisProcess
from tests.support.sending import SEND, Stack, open_stack

pytestmark = pytest.mark.timeout(150)

STATUS = "/api/onlyfans/messages/status"
HEALTH = "/api/monitoring/onlyfans"
SENDS = 6


async def until(condition: Callable[[], Awaitable[bool]], seconds: float, what: str) -> None:
    try:
        async with asyncio.timeout(seconds):
            while True:
                if await condition():
                    return
                await asyncio.sleep(0.05)
    except TimeoutError:
        raise AssertionError(f"not within {seconds:g} s: {what}") from None


async def post_twice(stack: Stack, path: str, body: dict[str, Any], key: str) -> list[Any]:
    """A client that retries with the same Idempotency-Key: both answers."""
    headers = {**stack.auth, "Idempotency-Key": key}
    return [await stack.http.post(path, json=body, headers=headers) for _ in range(2)]


async def test_a_redis_outage_pauses_sending_then_delivers_everything_once(
    fresh_database_url: str, tmp_path: Path
) -> None:
    redis_server = RedisProcess(tmp_path / "redis")
    redis_server.start()
    try:
        async with (
            Simulator(SimulatorConfig()) as platform,
            open_stack(
                fresh_database_url,
                redis_url=redis_server.url,
                onlyfans_api_url=platform.url,
                rate_limiter_enabled=True,
                rate_limit_per_second=100.0,
                rate_limit_burst=100,
                max_receive_count=1,
                visibility_timeout=5.0,
                pool_max_size=40,
            ) as stack,
        ):
            pool = stack.container.pool
            fans = [await stack.new_fan(f"Fan {i}") for i in range(4)]
            async with workers(stack.container):
                # The campaign's audience is read from the fans' view.
                await until(
                    lambda: _fetch(
                        pool, f"SELECT count(*) = 4 FROM fans WHERE tenant_id = '{stack.tenant}'"
                    ),
                    30,
                    "the fans projected",
                )
                before = await stack.send(recipientId=fans[0], content="before the outage")
                await until(
                    lambda: _async(len(platform.deliveries()) == 1), 30, "the first delivery"
                )

                redis_server.kill()
                answers = []
                for i in range(SENDS):
                    body = {"recipientId": fans[i % len(fans)], "content": f"during {i}"}
                    answers += await post_twice(stack, SEND, body, f"send-{i}")
                bulk = {"recipientIds": fans, "content": "Hi {{name}}", "campaignName": "Outage"}
                launches = await post_twice(stack, BULK, bulk, "launch-1")
                launches += await post_twice(stack, BULK, bulk, "launch-1")
                status = await stack.http.get(STATUS, headers=stack.auth)

                assert [a.status_code for a in answers] == [202] * (2 * SENDS), [
                    a.text for a in answers if a.status_code != 202
                ]
                assert [a.status_code for a in launches] == [202] * 4, [a.text for a in launches]
                assert len({a.json()["campaignId"] for a in launches}) == 1
                assert [a.headers.get("Idempotent-Replayed") for a in launches[1:]] == ["true"] * 3
                assert status.status_code == 200, status.text
                message_ids = {a.json()["messageId"] for a in answers}
                assert len(message_ids) == SENDS

                # The sender met the outage: it received and handed back, counting nothing.
                await until(
                    lambda: _fetch(
                        pool, "SELECT count(*) > 0 FROM queue_messages WHERE deferrals > 0"
                    ),
                    30,
                    "a record handed back by the sender",
                )
                health = await stack.http.get(HEALTH, headers=stack.auth)
                assert health.status_code == 503
                assert health.json()["sending"]["status"] == "paused"
                assert "rate limiter" in health.json()["sending"]["reason"]
                assert len(platform.deliveries()) == 1, "nothing is sent without the limiter"

                redis_server.start()
                expected = 1 + SENDS + len(fans)
                await until(
                    lambda: _async(len(platform.deliveries()) >= expected),
                    90,
                    f"{expected} deliveries once Redis is back",
                )
                await until(
                    lambda: _fetch(
                        pool, "SELECT count(*) = 0 FROM queue_messages WHERE queue NOT LIKE '%.dlq'"
                    ),
                    30,
                    "the queues drained",
                )

            delivered = Counter(d.idempotency_key for d in platform.deliveries())
            assert len(delivered) == expected
            assert set(delivered.values()) == {1}, "a message delivered twice"
            assert message_ids | {before["messageId"]} <= set(delivered)
            assert await stack.count_events("CampaignLaunched") == 1
            assert await stack.count_events("MessageFailed") == 0
            for name in ("high", "normal"):
                assert (await stack.container.queue.stats(name)).dead_letters == 0  # type: ignore[arg-type]
    finally:
        redis_server.stop()


async def _async(value: bool) -> bool:
    return value


async def _fetch(pool: Any, sql: str) -> bool:
    return bool(await pool.fetchval(sql))
