"""Tail the global log and apply it to a projection's tables, exactly once per event.

Each batch is applied and its checkpoint saved in one transaction: a crash anywhere rolls
back both, and the restarted runner re-reads the batch from the saved checkpoint.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
from collections.abc import Coroutine, Iterator
from typing import Any

import structlog

from application.ports import Checkpoint, ProjectionStore, RecordedEvent, Sql
from projections.base import Projection, apply_batch

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
        """Apply the next batch; returns how many events it applied.

        The batch is read before the projector's transaction begins, then applied only if the
        checkpoint it was read from is still the one the claim finds. Reading inside the
        transaction would hold one pooled connection while waiting for another: a dozen
        runners sharing a pool (`crm dev`) could then hold every connection and wait forever.
        """
        while True:
            after = await self.store.checkpoint(self.name)
            batch = await self.store.read_all(after, self.batch_size)
            if not batch:
                return 0
            async with self.store.transaction(self.schema) as sql:
                if await self.store.claim(sql, self.name) != after:
                    continue  # another runner applied it meanwhile: read on from its place
                await apply_batch(self.projection, sql, batch)
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


class ProjectionGroupRunner:
    """Several projections fed from one read of the log, each with its own checkpoint.

    A rebuild of every read model reads (and decodes, and decrypts) each event once instead of
    once per projection. Each projection applies the batch in a transaction of its own, with
    its own checkpoint (exactly once per projection, as with one runner each), and the
    projections run concurrently on their own connections: while Postgres writes one's rows,
    Python folds the next one's. A projection whose checkpoint is ahead of the others' (an
    interrupted rebuild of it alone) skips the events it has already applied. While a batch is
    applied the next one is read on another connection (read-ahead); it is used only if the
    checkpoints are where it began. So ``run_batch`` needs up to len(projections) + 1 pooled
    connections.
    """

    def __init__(
        self,
        store: ProjectionStore,
        projections: list[Projection],
        *,
        schema: str = "public",
        batch_size: int = 5000,
    ) -> None:
        self.store = store
        self.projections = projections
        self.schema = schema
        self.names = [checkpoint_name(projection, schema) for projection in projections]
        self.batch_size = batch_size
        self._ahead: tuple[Checkpoint, asyncio.Task[list[RecordedEvent]]] | None = None

    async def run_batch(self) -> int:
        """Apply the next batch; returns how many events it read (0 at the head)."""
        checkpoints = [await self.store.checkpoint(name) for name in self.names]
        after = min(checkpoints)
        batch = await self._read(after)
        if not batch:
            return 0
        last = Checkpoint(batch[-1].transaction_id, batch[-1].position)
        self._read_ahead(last)
        await asyncio.gather(
            *(
                self._apply_alone(projection, name, batch, last)
                for projection, name, checkpoint in zip(
                    self.projections, self.names, checkpoints, strict=True
                )
                if checkpoint < last
            )
        )
        return len(batch)

    async def _apply_alone(
        self, projection: Projection, name: str, batch: list[RecordedEvent], last: Checkpoint
    ) -> None:
        async with self.store.transaction(self.schema) as sql:
            # The checkpoint as it is under the lock: another holder may have moved it since
            # it was read, never back; what it applied is skipped.
            checkpoint = await self.store.claim(sql, name)
            await _apply_after(projection, sql, batch, checkpoint)
            if checkpoint < last:
                await self.store.save_checkpoint(sql, name, last)

    async def apply_next(self, sql: Sql) -> int:
        """Apply the next batch to every projection in the caller's transaction (whose
        search_path is the group's schema), one after the other; returns how many events it
        read. For a caller that must hold everything in one transaction (the rebuild's swap)."""
        claimed = {}
        for name in sorted(self.names):  # one order for every holder: no lock cycle
            claimed[name] = await self.store.claim(sql, name)
        after = min(claimed.values())
        batch = await self._read(after)
        if not batch:
            return 0
        last = Checkpoint(batch[-1].transaction_id, batch[-1].position)
        self._read_ahead(last)
        for projection, name in zip(self.projections, self.names, strict=True):
            if claimed[name] < last:
                await _apply_after(projection, sql, batch, claimed[name])
                await self.store.save_checkpoint(sql, name, last)
        return len(batch)

    async def catch_up(self) -> int:
        total = 0
        while applied := await self.run_batch():
            total += applied
        return total

    async def close(self) -> None:
        if self._ahead is not None:
            self._ahead[1].cancel()
            with contextlib.suppress(BaseException):
                await self._ahead[1]
            self._ahead = None

    async def _read(self, after: Checkpoint) -> list[RecordedEvent]:
        ahead, self._ahead = self._ahead, None
        if ahead is not None:
            start, task = ahead
            if start == after:
                return await task
            task.cancel()
            with contextlib.suppress(BaseException):
                await task
        return await self.store.read_all(after, self.batch_size)

    def _read_ahead(self, after: Checkpoint) -> None:
        self._ahead = (
            after,
            asyncio.ensure_future(self.store.read_all(after, self.batch_size)),
        )


async def _apply_after(
    projection: Projection, sql: Sql, batch: list[RecordedEvent], checkpoint: Checkpoint
) -> None:
    """Apply the events of ``batch`` that come after ``checkpoint``."""
    first = batch[0]
    if checkpoint < Checkpoint(first.transaction_id, first.position):
        await apply_batch(projection, sql, batch)
        return
    mine = [r for r in batch if Checkpoint(r.transaction_id, r.position) > checkpoint]
    if mine:
        await apply_batch(projection, sql, mine)


@contextlib.contextmanager
def replay_gc() -> Iterator[None]:
    """Collect garbage less often while replaying a long log.

    A batch of 5,000 events holds some 50,000 container objects until it is written; with
    CPython's default thresholds (700, 10, 10) the collector runs every few dozen events and
    walks them again each time, for nothing: nothing in a batch is cyclic garbage (figures:
    bench/MEASUREMENTS.md, "Garbage collection during a replay").
    """
    before = gc.get_threshold()
    gc.set_threshold(50_000, 20, 100)
    try:
        yield
    finally:
        gc.set_threshold(*before)
