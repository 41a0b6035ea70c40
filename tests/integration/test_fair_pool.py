"""The pool hands connections out first come, first served (adapters/postgres/fair_pool.py)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager

import asyncpg
import pytest

from adapters.postgres.pool import create_pool


async def _let_waiters_queue() -> None:
    # A task asking a pool whose turns are all taken blocks on its first step, without I/O:
    # a few turns of the loop queue every task created before.
    for _ in range(5):
        await asyncio.sleep(0)


@asynccontextmanager
async def _pool(database_url: str, size: int) -> AsyncIterator[asyncpg.Pool]:
    pool = await create_pool(database_url, min_size=1, max_size=size)
    try:
        yield pool
    finally:
        await asyncio.wait_for(pool.close(), timeout=10)


async def _all_connections_come_back(pool: asyncpg.Pool, size: int) -> None:
    """Every turn is there: ``size`` connections can be held at once."""
    async with asyncio.timeout(10), AsyncExitStack() as held:
        connections = [await held.enter_async_context(pool.acquire()) for _ in range(size)]
        assert [await c.fetchval("SELECT 1") for c in connections] == [1] * size


async def test_a_released_connection_goes_to_the_task_waiting_for_it_not_to_a_newcomer(
    database_url: str,
) -> None:
    pool = await create_pool(database_url, min_size=1, max_size=1)
    order: list[str] = []

    async def take(name: str) -> None:
        async with pool.acquire() as conn:
            order.append(name)
            await conn.fetchval("SELECT 1")

    try:
        held = await pool.acquire()
        waiting = asyncio.create_task(take("waiting"))
        await _let_waiters_queue()  # queued for the one connection
        releasing = asyncio.create_task(pool.release(held))
        await asyncio.sleep(0)
        # Scheduled before the waiter is woken: asyncpg's own pool gives it the connection.
        newcomer = asyncio.create_task(take("newcomer"))
        await asyncio.wait_for(asyncio.gather(releasing, waiting, newcomer), timeout=10)
    finally:
        await pool.close()

    assert order == ["waiting", "newcomer"]


async def test_turns_come_back_after_failed_and_repeated_releases(database_url: str) -> None:
    pool = await create_pool(database_url, min_size=1, max_size=2)
    try:
        conn = await pool.acquire()
        await pool.release(conn)
        await pool.release(conn)  # a second release of the same connection gives nothing back
        async with pool.acquire() as one, pool.acquire() as two:
            assert await one.fetchval("SELECT 1") == await two.fetchval("SELECT 1") == 1
        third = asyncio.create_task(pool.fetchval("SELECT 3"))
        async with pool.acquire(), pool.acquire():
            await _let_waiters_queue()
            assert not third.done()  # two turns only, both taken
        assert await asyncio.wait_for(third, timeout=10) == 3
    finally:
        await pool.close()


async def test_pool_queries_wait_their_turn_in_order_with_the_others(database_url: str) -> None:
    async with _pool(database_url, 1) as pool:
        order: list[str] = []

        async def query(name: str) -> None:
            await pool.fetchval("SELECT 1")
            order.append(name)

        async def held(name: str) -> None:
            conn = await pool.acquire()
            order.append(name)
            await pool.release(conn)

        async with pool.acquire():
            tasks = [asyncio.create_task(query("fetch-1"))]
            await _let_waiters_queue()
            tasks.append(asyncio.create_task(held("acquire")))
            await _let_waiters_queue()
            tasks.append(asyncio.create_task(query("fetch-2")))
            await _let_waiters_queue()
        await asyncio.wait_for(asyncio.gather(*tasks), timeout=10)

        assert order == ["fetch-1", "acquire", "fetch-2"]


async def test_a_cancelled_waiter_gives_its_place_to_the_next_and_keeps_no_turn(
    database_url: str,
) -> None:
    async with _pool(database_url, 1) as pool:
        held = await pool.acquire()
        cancelled = asyncio.create_task(pool.fetchval("SELECT 1"))
        await _let_waiters_queue()
        next_in_line = asyncio.create_task(pool.fetchval("SELECT 2"))
        await _let_waiters_queue()
        cancelled.cancel()
        await pool.release(held)

        assert await asyncio.wait_for(next_in_line, timeout=10) == 2
        assert cancelled.cancelled()
        await _all_connections_come_back(pool, 1)


async def test_a_waiter_that_gives_up_keeps_no_turn(database_url: str) -> None:
    async with _pool(database_url, 1) as pool:
        async with pool.acquire():
            with pytest.raises(TimeoutError):
                await asyncio.wait_for(pool.acquire(), timeout=0.1)
        await _all_connections_come_back(pool, 1)


async def test_another_pools_connection_is_refused_and_changes_no_turn(database_url: str) -> None:
    async with _pool(database_url, 1) as pool, _pool(database_url, 1) as other:
        foreign = await other.acquire()
        with pytest.raises(asyncpg.InterfaceError, match="not a member of this pool"):
            await pool.release(foreign)
        await other.release(foreign)

        async with pool.acquire():
            waiting = asyncio.create_task(pool.fetchval("SELECT 1"))
            await _let_waiters_queue()
            assert not waiting.done()  # still one turn: the refused release gave none back
        assert await asyncio.wait_for(waiting, timeout=10) == 1
        await _all_connections_come_back(pool, 1)
        await _all_connections_come_back(other, 1)


async def test_an_awaited_connection_released_through_the_pool_gives_its_turn_back(
    database_url: str,
) -> None:
    async with _pool(database_url, 2) as pool:
        for _ in range(3):  # more checkouts than turns: each release gave its turn back
            one, two = await pool.acquire(), await pool.acquire()
            assert await one.fetchval("SELECT 1") == await two.fetchval("SELECT 2") - 1
            await pool.release(one)
            await pool.release(two)
        await _all_connections_come_back(pool, 2)


async def test_one_acquire_hands_out_one_connection(database_url: str) -> None:
    async with _pool(database_url, 1) as pool:
        acquiring = pool.acquire()
        async with acquiring:
            with pytest.raises(asyncpg.InterfaceError, match="already acquired"):
                await asyncio.wait_for(acquiring, timeout=10)
        await _all_connections_come_back(pool, 1)
