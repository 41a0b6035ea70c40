"""A private event loop in a thread of its own, for synchronous callers of asyncpg code.

eventsourcing's recorders are synchronous (a ProjectionRunner calls them from its threads);
fancrm's store is asyncpg, whose pool belongs to the loop that made it. Rather than a second
driver and a second copy of the decoding, the recorder runs the store's async questions on
this loop and waits for their answers: the questions stay the store's, one statement each.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


class LoopThread:
    def __init__(self, name: str = "fancrm-eventsourcing") -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name=name, daemon=True)
        self._thread.start()

    def submit(self, coro: Coroutine[Any, Any, T]) -> concurrent.futures.Future[T]:
        """Start ``coro`` on the loop; its answer comes in the future."""
        return asyncio.run_coroutine_threadsafe(coro, self._loop)

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run ``coro`` on the loop and wait for its answer (its exception is raised here)."""
        if threading.current_thread() is self._thread:
            coro.close()
            raise RuntimeError("a LoopThread cannot wait for itself")
        return self.submit(coro).result()

    @property
    def closed(self) -> bool:
        return self._loop.is_closed()

    def close(self) -> None:
        if self._loop.is_closed():
            return
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join()
        self._loop.close()
