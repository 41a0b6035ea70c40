"""Patreon member sync: every member of the campaign becomes (or updates) a fan, a page at a
time, resumable wherever it stopped.

A sync is an import (application/imports.py) whose rows come from the API instead of a file:
an ImportJob with source "patreon" records each page as a batch, and the page's fans are
matched, created and updated by the import's own batch code (``prepare``), so a sync and a
spreadsheet agree on who is who and a re-sync creates nothing new. What makes it resumable:
the cursor of the next page is saved *in the transaction of the page's fans and the job's
progress* (``SyncCheckpoints.save``). Whatever stops a sync (an error from Patreon, a killed
process), the committed pages and the cursor agree, and the next run asks Patreon for the
first page not committed. Nothing is applied twice, and even if it were (Patreon serving a
page again), a row applied twice changes a fan as once: an update sets values.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from typing import Protocol

import msgspec

from application.context import CommandContext
from application.errors import ConcurrencyError
from application.import_batch import prepare
from application.imports import (
    ImportStore,
    ImportUnitOfWork,
    StartImport,
    fail_import,
    start_import,
)
from application.patreon import MembersPage, PatreonApi, PlatformCallFailed, member_row
from application.ports import EventStore
from application.streams import load, retry_on_conflict, save
from domain.errors import IllegalState
from domain.import_job import ImportJob, import_stream_id

JOB_STREAM_TYPE = "import"


class Checkpoint(msgspec.Struct, frozen=True):
    job_id: str
    next_cursor: str | None
    pages: int


class SyncCheckpoints(Protocol):
    async def load(self, connection_id: str) -> Checkpoint | None: ...

    async def save(
        self,
        uow: ImportUnitOfWork,
        connection_id: str,
        tenant: str,
        checkpoint: Checkpoint,
        *,
        after_pages: int,
    ) -> bool:
        """Record ``checkpoint`` in ``uow``'s transaction (it commits with the page, or not)
        if the stored one is still at ``after_pages`` pages (or none is stored and that is 0);
        False if another sync of the connection moved it on."""
        ...

    async def clear(self, connection_id: str) -> None: ...


class SyncResult(msgspec.Struct, frozen=True):
    job_id: str
    pages: int
    members: int
    inserted: int
    updated: int
    skipped: int
    errors: int
    resumed: bool


async def sync_members(
    connection_id: str,
    ctx: CommandContext,
    *,
    api: PatreonApi,
    events: EventStore,
    imports: ImportStore,
    checkpoints: SyncCheckpoints,
    on_page: Callable[[Checkpoint], Awaitable[None]] | None = None,
) -> SyncResult:
    """Sync the connection's members, from where the last run stopped if it did not finish."""
    await imports.index_existing_fans(ctx.tenant)
    checkpoint = await checkpoints.load(connection_id)
    resumed = checkpoint is not None
    if checkpoint is None:
        job = await start_import(
            StartImport(
                job_id=str(uuid.uuid4()),
                file_name=f"patreon members ({connection_id})",
                source="patreon",
            ),
            ctx,
            store=events,
        )
        checkpoint = Checkpoint(job.job_id, None, 0)
    else:
        job = await _running(checkpoint.job_id, ctx, events)
    first_row = job.last_row
    following: asyncio.Task[MembersPage] | None = None
    try:
        if checkpoint.pages == 0 or checkpoint.next_cursor is not None:
            following = asyncio.create_task(api.members_page(checkpoint.next_cursor))
        while following is not None:
            page = await following
            # The next page is asked for while this one commits: Patreon's answer and the
            # database's work overlap. Its cursor is only saved once this page committed.
            following = (
                asyncio.create_task(api.members_page(page.next_cursor))
                if page.next_cursor is not None
                else None
            )
            job, checkpoint = await _commit_page(
                page, job, checkpoint, connection_id, ctx, events, imports, checkpoints
            )
            if on_page is not None:
                await on_page(checkpoint)
    except (PlatformCallFailed, IllegalState) as error:
        # The jobs list says why it stopped; the next sync resumes the job (``_running``).
        await fail_import(job.job_id, ctx, store=events, reason=str(error), size_bytes=0)
        raise
    finally:
        if following is not None:
            # Not awaited: a sync being cancelled must not wait, nor swallow its own cancel.
            # What the abandoned call raised is read, so asyncio does not report it unseen.
            following.cancel()
            following.add_done_callback(_consume)
    job.complete(size_bytes=0, checksum_sha256="")
    await save(events, job, JOB_STREAM_TYPE, ctx)
    await checkpoints.clear(connection_id)
    return SyncResult(
        job_id=job.job_id,
        pages=checkpoint.pages,
        members=job.last_row - first_row,
        inserted=job.inserted,
        updated=job.updated,
        skipped=job.skipped,
        errors=job.error_count,
        resumed=resumed,
    )


def _consume(task: asyncio.Task[MembersPage]) -> None:
    if not task.cancelled():
        task.exception()


async def _running(job_id: str, ctx: CommandContext, events: EventStore) -> ImportJob:
    job, _ = await load(events, import_stream_id(job_id), tenant=ctx.tenant)
    assert isinstance(job, ImportJob)
    if job.status != "running":
        job.resume()
        await save(events, job, JOB_STREAM_TYPE, ctx)
    return job


async def _commit_page(
    page: MembersPage,
    job: ImportJob,
    checkpoint: Checkpoint,
    connection_id: str,
    ctx: CommandContext,
    events: EventStore,
    imports: ImportStore,
    checkpoints: SyncCheckpoints,
) -> tuple[ImportJob, Checkpoint]:
    after = Checkpoint(checkpoint.job_id, page.next_cursor, checkpoint.pages + 1)

    async def attempt() -> ImportJob:
        # Rows are numbered on from the job's last committed row: the job's own record of
        # progress, which commits with the rows (an empty page records nothing but the cursor).
        rows = [member_row(m, job.last_row + 1 + i) for i, m in enumerate(page.members)]
        async with imports.batch(ctx.tenant) as uow:
            if rows:
                await uow.append(await prepare(uow, rows, job, ctx), ctx)
            saved = await checkpoints.save(
                uow, connection_id, ctx.tenant, after, after_pages=checkpoint.pages
            )
            if not saved:
                # Rolls the page back: two syncs of one connection at once would each record
                # the other's pages on their own job.
                raise IllegalState("another sync of this connection is running")
        return job

    async def reload(_: ConcurrencyError) -> None:
        # Another writer moved the job on (a second sync of the same connection): decide the
        # page again on the job as the log has it.
        nonlocal job
        job = await _running(job.job_id, ctx, events)

    return await retry_on_conflict(attempt, before_retry=reload), after
