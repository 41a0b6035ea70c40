"""A whole import: start (or resume) the job, import its rows batch by batch, then record the
file's size and checksum, or why it stopped.

Any failure marks the job failed with the batches already committed counted, and the caller
sees the error. If even that cannot be written (the database is down), or the process dies,
the job stays ``running``: ``resume`` continues it after its last committed row.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import NamedTuple, Protocol

from application.context import CommandContext
from application.errors import NotFound
from application.import_pipeline import DEFAULT_BATCH_SIZE, run_import
from application.imports import (
    ImportStore,
    Row,
    StartImport,
    complete_import,
    fail_import,
    resume_import,
    start_import,
)
from application.ports import EventStore
from application.streams import load
from domain.errors import InvalidValue
from domain.import_job import ImportJob, import_stream_id


class ImportSource(Protocol):
    """A file being read: its rows, and its size and SHA-256 once read to the end."""

    size: int

    @property
    def checksum(self) -> str: ...

    def rows(self) -> AsyncIterator[Row]: ...

    async def read_to_end(self) -> None:
        """Read what is left of the file without importing it: its size and checksum."""
        ...


class ImportFailed(Exception):
    def __init__(self, job: ImportJob, cause: Exception) -> None:
        super().__init__(str(cause))
        self.job = job
        self.cause = cause


async def import_file(
    source: ImportSource,
    start: StartImport,
    ctx: CommandContext,
    *,
    events: EventStore,
    imports: ImportStore,
    resume: bool = False,
    batch_size: int = DEFAULT_BATCH_SIZE,
    on_batch: Callable[[ImportJob], Awaitable[None]] | None = None,
) -> tuple[ImportJob, int]:
    """The finished job and the log position of its last event; ImportFailed otherwise."""
    if resume:
        job = await resume_import(start.job_id, ctx, store=events)
    else:
        job = await start_import(start, ctx, store=events)
    await imports.index_existing_fans(ctx.tenant)
    try:
        job = await run_import(
            source.rows(),
            job,
            ctx,
            events=events,
            imports=imports,
            batch_size=batch_size,
            on_batch=on_batch,
        )
    except Exception as error:
        failed = await fail_import(
            job.job_id,
            ctx,
            store=events,
            reason=str(error) or type(error).__name__,
            size_bytes=source.size,
        )
        raise ImportFailed(failed, error) from error
    position = await complete_import(
        job, ctx, store=events, size_bytes=source.size, checksum=source.checksum
    )
    return job, position


class KeyedImport(NamedTuple):
    job: ImportJob
    position: int
    # True: the job had finished already, and this is its summary, nothing was imported.
    replayed: bool


async def import_file_once(
    source: ImportSource,
    start: StartImport,
    ctx: CommandContext,
    *,
    events: EventStore,
    imports: ImportStore,
    batch_size: int = DEFAULT_BATCH_SIZE,
) -> KeyedImport:
    """The import of a request that carries an Idempotency-Key, whose job id the key decides
    (``start.job_id``): the job is the key's record, written in the first transaction of the
    import, so "did anything commit" is whether the job exists.

    No job: nothing of an earlier try committed, the import starts. A job not completed (the
    connection dropped, the process died, a failure): it is resumed after its last committed
    row, once the file shows there the row the job committed (IllegalState otherwise). A job
    completed: the file is read to its end, only hashed, and if it is the one the job
    imported (same SHA-256), the job's summary answers; another file is refused
    (InvalidValue), as any request reusing a key for something else."""
    try:
        job, position = await load(events, import_stream_id(start.job_id), tenant=ctx.tenant)
    except NotFound:
        job = None
    if job is not None and job.status == "completed":
        await source.read_to_end()
        if source.checksum != job.checksum_sha256:
            raise InvalidValue("idempotency_key", "was already used for a different request")
        return KeyedImport(job, position, replayed=True)
    job, position = await import_file(
        source,
        start,
        ctx,
        events=events,
        imports=imports,
        resume=job is not None,
        batch_size=batch_size,
    )
    return KeyedImport(job, position, replayed=False)
