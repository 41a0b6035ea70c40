"""Tail the global log and apply it to a projection's tables, exactly once per event.

Each batch is applied and its checkpoint saved in one transaction: a crash anywhere rolls
back both, and the restarted runner re-reads the batch from the saved checkpoint.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Coroutine
from typing import Any

import structlog

from application.ports import Checkpoint, ProjectionStore
from projections.base import Projection

log = structlog.get_logger(__name__)


def checkpoint_name(projection: Projection, schema: str) -> str:
    return projection.name if schema == "public" else f"{projection.name}@{schema}"


class ProjectionRunner:
    def __init__(
        self,
        store: ProjectionStore,
        projection: Projection,
        *,
        schema: str = "public",
        batch_size: int = 500,
        poll_interval: float = 0.5,
    ) -> None:
        self.store = store
        self.projection = projection
        self.schema = schema
        self.name = checkpoint_name(projection, schema)
        self.batch_size = batch_size
        self.poll_interval = poll_interval

    async def run_batch(self) -> int:
        """Apply the next batch; returns how many events it applied."""
        async with self.store.transaction(self.schema) as sql:
            after = await self.store.claim(sql, self.name)
            batch = await self.store.read_all(after, self.batch_size)
            if not batch:
                return 0
            for recorded in batch:
                await self.projection.apply(sql, recorded)
            last = batch[-1]
            await self.store.save_checkpoint(
                sql, self.name, Checkpoint(last.transaction_id, last.position)
            )
        return len(batch)

    async def catch_up(self) -> int:
        total = 0
        while applied := await self.run_batch():
            total += applied
        return total

    async def run(self, stop: asyncio.Event) -> None:
        """Follow the log until ``stop`` is set; a failing batch is retried with backoff."""
        backoff = self.poll_interval
        await self.store.listen()
        while not stop.is_set():
            try:
                if await self.run_batch():
                    backoff = self.poll_interval
                    continue
                await _first_of(self.store.wait_for_events(self.poll_interval), stop.wait())
            except asyncio.CancelledError:
                raise
            except Exception as error:  # a bug or an outage: keep the error visible, retry
                log.exception("projection batch failed", projection=self.name)
                await self._record_error(error)
                await _sleep_unless(stop, backoff)
                backoff = min(backoff * 2, 30.0)

    async def _record_error(self, error: Exception) -> None:
        try:
            await self.store.record_error(self.name, f"{type(error).__name__}: {error}")
        except Exception:
            log.warning("could not record projection error", projection=self.name)


async def _first_of(*waits: Coroutine[Any, Any, Any]) -> None:
    tasks = [asyncio.ensure_future(wait) for wait in waits]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()


async def _sleep_unless(stop: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), timeout=seconds)
