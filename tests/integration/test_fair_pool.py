"""The pool hands connections out first come, first served (adapters/postgres/fair_pool.py)."""

from __future__ import annotations

import asyncio

from adapters.postgres.pool import create_pool


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
        await asyncio.sleep(0.05)  # queued for the one connection
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
            await asyncio.sleep(0.05)
            assert not third.done()  # two turns only, both taken
        assert await asyncio.wait_for(third, timeout=10) == 3
    finally:
        await pool.close()
