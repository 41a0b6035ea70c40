"""An asyncpg pool that hands out connections first come, first served.

asyncpg's pool gives a released connection to whichever task asks next: the waiter it wakes
may find the connection taken by a task that was already scheduled to run, and then queues
again at the back. Our release takes no round trip (adapters/postgres/pool.py resets
nothing), so the connection is back before the woken waiter runs, and under load the tasks
ahead of it in the loop's queue take it first: that was most of the API's latency tail
(bench/MEASUREMENTS.md; bench/send.py prints the wait for a connection).

A FIFO semaphore of ``max_size`` turns is taken before asking asyncpg for a connection and
given back when the connection is released (asyncio.Semaphore serves its waiters in order and
lets no newcomer pass them). Waiting for a turn does not count towards ``acquire(timeout=)``.

Only asyncpg's public API is used: ``acquire()`` (which ``pool.fetch``, ``execute`` and the
others go through too) returns our own context, which takes a turn and then awaits asyncpg's
``acquire()``; ``release()`` gives the turn back for the connections this pool handed out,
which it remembers itself.
"""

from __future__ import annotations

import asyncio
from collections.abc import Generator
from types import TracebackType
from typing import Any

import asyncpg


class FairPool(asyncpg.Pool):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._turns = asyncio.Semaphore(kwargs["max_size"])
        # The connections handed out and not yet released, each holding a turn. A proxy is
        # made per checkout and compares by identity, so a second release of the same one,
        # or another pool's, finds nothing here and gives no turn back.
        self._holding_turns: set[Any] = set()

    def acquire(self, *, timeout: float | None = None) -> FairAcquire:
        return FairAcquire(self, timeout)

    async def _take_turn_and_connection(self, timeout: float | None) -> Any:
        await self._turns.acquire()
        try:
            connection = await super().acquire(timeout=timeout)
        except BaseException:
            self._turns.release()
            raise
        self._holding_turns.add(connection)
        return connection

    async def release(self, connection: Any, *, timeout: float | None = None) -> None:
        try:
            self._holding_turns.remove(connection)
        except KeyError:  # released before, or not ours: asyncpg ignores or refuses it
            await super().release(connection, timeout=timeout)
            return
        try:
            await super().release(connection, timeout=timeout)
        finally:
            self._turns.release()


class FairAcquire:
    """What ``FairPool.acquire()`` returns: like asyncpg's, used as ``async with
    pool.acquire() as conn`` or ``conn = await pool.acquire()`` (then ``pool.release(conn)``)."""

    __slots__ = ("_connection", "_pool", "_timeout", "_used")

    def __init__(self, pool: FairPool, timeout: float | None) -> None:
        self._pool = pool
        self._timeout = timeout
        self._connection: Any = None
        self._used = False

    def __await__(self) -> Generator[Any, None, Any]:
        self._claim()
        return self._pool._take_turn_and_connection(self._timeout).__await__()

    async def __aenter__(self) -> Any:
        self._claim()
        self._connection = await self._pool._take_turn_and_connection(self._timeout)
        return self._connection

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        connection, self._connection = self._connection, None
        await self._pool.release(connection)

    def _claim(self) -> None:
        if self._used:
            raise asyncpg.InterfaceError("a connection is already acquired")
        self._used = True


async def create_fair_pool(dsn: str, **options: Any) -> FairPool:
    """``asyncpg.create_pool(dsn, **options)``, fair: the same defaults."""
    defaults: dict[str, Any] = {
        "min_size": 10,
        "max_size": 10,
        "max_queries": 50000,
        "max_inactive_connection_lifetime": 300.0,
        "connection_class": asyncpg.Connection,
        "record_class": asyncpg.Record,
        "loop": None,
    }
    pool = FairPool(dsn, **(defaults | options))
    await pool  # asyncpg pools open their connections when awaited
    return pool
