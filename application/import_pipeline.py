"""Rows to committed batches, with the database and Python working at once.

A batch is decided (read the index, load fans, let them decide, encrypt) in its own
transaction while the previous batch's append and commit run in the background; its own
append starts only once the previous one has committed. So the job's progress events stay in
order and gapless, at most two transactions are open per import, and parsing the next rows
overlaps the database's work. When a background commit fails, the batches not yet committed
are rolled back and re-run one at a time (``import_batch``, which retries conflicts), from the
job as the log has it; any other failure stops the import with nothing half-counted.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import AsyncExitStack

from application.context import CommandContext
from application.errors import ConcurrencyError
from application.import_batch import import_batch, match_keys, prepare
from application.imports import FanRow, ImportStore, ImportUnitOfWork, Row, StagesAppend
from application.ports import EventStore, StreamWrite
from application.streams import load
from domain.import_job import ImportJob

DEFAULT_BATCH_SIZE = 1000


async def run_import(
    rows: AsyncIterator[Row],
    job: ImportJob,
    ctx: CommandContext,
    *,
    events: EventStore,
    imports: ImportStore,
    batch_size: int = DEFAULT_BATCH_SIZE,
    on_batch: Callable[[ImportJob], Awaitable[None]] | None = None,
) -> ImportJob:
    """Import rows after the job's last committed row, one committed batch at a time. A
    resumed job first checks the file holds, at that row, the row it committed there."""
    resumed_at = job.last_row if job.last_row_digest else 0
    row_digest = await imports.row_digests(ctx.tenant) if resumed_at else None
    pipeline = _Pipeline(ctx, events, imports, on_batch)
    try:
        batch: list[Row] = []
        async for row in rows:
            if row.row <= job.last_row:
                if row.row == resumed_at and row_digest is not None:
                    job.confirm_same_file(row_digest(row).hex())
                    resumed_at = 0
                continue  # committed before the job was interrupted
            if resumed_at:
                job.confirm_same_file("")  # the file has no row where the job stopped
            batch.append(row)
            if len(batch) >= batch_size:
                job = await pipeline.push(batch, job)
                batch = []
        if resumed_at:
            job.confirm_same_file("")
        if batch:
            job = await pipeline.push(batch, job)
        return await pipeline.settle(job)
    finally:
        await pipeline.abandon()


class _Pipeline:
    def __init__(
        self,
        ctx: CommandContext,
        events: EventStore,
        imports: ImportStore,
        on_batch: Callable[[ImportJob], Awaitable[None]] | None,
    ) -> None:
        self.ctx = ctx
        self.events = events
        self.imports = imports
        self.on_batch = on_batch
        self.committing: asyncio.Task[None] | None = None
        self.in_flight: list[Row] = []
        self.in_flight_keys: set[str] = set()

    async def push(self, batch: list[Row], job: ImportJob) -> ImportJob:
        keys = {row.row: match_keys(row) for row in batch if isinstance(row, FanRow)}
        batch_keys = {key for row_keys in keys.values() for key in row_keys}
        # A fan of this batch in the one still committing is decided from what that one
        # wrote, not from before it (which would skip a row changing the fan back).
        shares_fans = not batch_keys.isdisjoint(self.in_flight_keys)
        if shares_fans and not await self._previous_committed():
            return await self._rerun(batch, job)
        stack = AsyncExitStack()
        uow: ImportUnitOfWork = await stack.enter_async_context(self.imports.batch(self.ctx.tenant))
        try:
            writes = await prepare(uow, batch, job, self.ctx, keys)
            if isinstance(uow, StagesAppend):
                # Encrypt and encode now, while the previous batch is still in the database.
                await uow.stage(writes, self.ctx)
            committed = await self._previous_committed()
        except ConcurrencyError as error:
            await _close(stack, error)
            await self._previous_committed()
            return await self._rerun(batch, job)
        except BaseException as error:
            await _close(stack, error)
            raise
        if not committed:
            await _close(stack, ConcurrencyError("the previous batch did not commit"))
            return await self._rerun(batch, job)
        self.in_flight, self.in_flight_keys = batch, batch_keys
        self.committing = asyncio.create_task(self._commit(stack, uow, writes))
        await self._progress(job)
        return job

    async def settle(self, job: ImportJob) -> ImportJob:
        if not await self._previous_committed():
            job = await self._rerun([], job)
        return job

    async def abandon(self) -> None:
        """On the way out after an error: let a background commit finish, whatever its fate."""
        if self.committing is not None:
            with contextlib.suppress(BaseException):
                await self.committing
            self.committing = None

    async def _previous_committed(self) -> bool:
        """Wait for the background commit; False if it failed on a conflict."""
        if self.committing is None:
            return True
        task, self.committing = self.committing, None
        try:
            await task
        except ConcurrencyError:
            return False
        self.in_flight, self.in_flight_keys = [], set()
        return True

    async def _commit(
        self, stack: AsyncExitStack, uow: ImportUnitOfWork, writes: Sequence[StreamWrite]
    ) -> None:
        try:
            await uow.append(writes, self.ctx)
        except BaseException as error:
            await _close(stack, error)
            raise
        await stack.aclose()

    async def _rerun(self, batch: list[Row], job: ImportJob) -> ImportJob:
        """The batches not committed, one at a time, from the job as the log has it."""
        job, _ = await load(self.events, job.id, tenant=self.ctx.tenant)
        for rows in (self.in_flight, batch):
            pending = [row for row in rows if row.row > job.last_row]
            if pending:
                job = await import_batch(
                    pending, job, self.ctx, events=self.events, imports=self.imports
                )
        self.in_flight, self.in_flight_keys = [], set()
        await self._progress(job)
        return job

    async def _progress(self, job: ImportJob) -> None:
        if self.on_batch is not None:
            await self.on_batch(job)


async def _close(stack: AsyncExitStack, error: BaseException) -> None:
    """Leave the batch's transaction, rolling it back; the caller deals with ``error``."""
    with contextlib.suppress(ConcurrencyError):
        await stack.__aexit__(type(error), error, error.__traceback__)
