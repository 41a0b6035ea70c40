"""CSV import of fans: the rows a file gives, the port the import writes through, and the
job's life (start, batches, complete or fail, resume).

Matching and idempotency. A fan is found again by its platform id or its handle within the
tenant (and platform), through a write-side index kept by the import store in the same
transaction as the fans' events: the fans read model lags the log, so it cannot say whether
the previous batch (or a concurrent import) already created a fan. The index is keyed by a
keyed hash of the normalised handle or id, never the plain value: handles are personal data,
and erasing a fan deletes its index entries with its data key (migrations/013_imports.sql).
Two imports of the same file at once: a batch claims the index entries of the fans it creates
before it commits; the second import's claim waits for the first to commit, loses, and its
batch is re-run, now finding those fans (see ``import_batch``). So no fan is ever created twice.

Handles are one live fan's per tenant and platform (issue 14): fans created or renamed
through the API claim theirs in the same index, in the transaction of their events
(application/fans.py), so an import finds them at once; a rename or deletion frees the old
handle. A row that would give its fan (named by its platform id) another fan's handle is
refused. Platform ids of fans made through the API, and fans made before handles were
claimed (migrations/029), are indexed when an import starts, from the fans read model: one
given a platform id a moment before (not yet projected) is not matched under it.

Erased fans are forgotten: a later import holding the same handle creates a new fan (the
spreadsheet is the creator's own data). Deleted fans stay deleted: a row naming one by its
platform id is skipped; a row naming it only by its handle, freed by the deletion, makes a
new fan.

A blank cell means "not in this file": re-import never clears a value.

Re-importing an unchanged file is cheap: an index entry remembers a keyed digest of the row
an import last applied to its fan and the fan's stream version just after. A row with that
digest, for a fan whose stream has not moved since, would change nothing: it is skipped
without replaying the fan (applying a row twice is the same as once: an update sets values).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import AbstractAsyncContextManager
from datetime import date
from typing import NamedTuple, Protocol, runtime_checkable

import msgspec

from application.context import CommandContext
from application.ports import EventStore, StreamWrite
from application.streams import load, save
from domain.fan import Fan
from domain.import_job import ImportJob, import_stream_id

STREAM_TYPE = "import"


class FanRow(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    """One spreadsheet row as read: None is a blank or absent cell. Untracked by the garbage
    collector (it holds only strings, numbers, dates and tuples of strings: no cycle is
    possible), so a million rows passing through do not make it run more often."""

    row: int
    platform: str | None = None
    platform_id: str | None = None
    handle: str | None = None
    name: str | None = None
    email: str | None = None
    value_cents: int | None = None
    tags: tuple[str, ...] | None = None
    notes: str | None = None
    subscribed_at: date | None = None


class RowError(msgspec.Struct, frozen=True, gc=False):
    row: int
    error: str


Row = FanRow | RowError


class Indexed(NamedTuple):
    """The fan an index entry points to, and what the entry remembers of it."""

    fan_id: int
    # The keyed digest of the row an import last applied to the fan (None if unknown), and
    # whether the fan's stream is still at the version that row left it at.
    row_digest: bytes | None
    unchanged: bool


class Applied(NamedTuple):
    """What an index entry is to remember: the fan, the digest of the row applied to it last
    (None: no row applied), and the fan's stream version after this batch."""

    fan_id: int
    row_digest: bytes | None
    version: int | None


class ImportUnitOfWork(Protocol):
    """One batch's transaction, scoped to one tenant."""

    async def find(self, keys: Sequence[str]) -> dict[str, Indexed]:
        """The fans already indexed under these match keys."""
        ...

    def row_digest(self, row: Row) -> bytes:
        """A keyed digest of the row's values (its number aside): equal for equal rows."""
        ...

    async def claim(self, claims: dict[str, Applied], *, exclusive: bool) -> None:
        """Index these keys to these fans, in this transaction. A key another import holds is
        left to it; if ``exclusive``, that makes the batch fail with ConcurrencyError, raised
        here or by ``append``."""
        ...

    async def release(self, keys: dict[str, int]) -> None:
        """Drop the entries of these keys that still name these fans (key -> fan id): the
        batch renamed the fans, and a rename frees the old handle, as it does through the API."""
        ...

    async def remember(self, applied: Sequence[Applied]) -> None:
        """Record on these fans' index entries the row just applied and the version it left."""
        ...

    async def new_fan_ids(self, count: int) -> list[int]: ...

    async def load_fans(self, fan_ids: Sequence[int]) -> dict[int, Fan]:
        """The tenant's fans among these ids, replayed (deleted and erased ones included)."""
        ...

    async def append(self, writes: Sequence[StreamWrite], ctx: CommandContext) -> int:
        """Append all writes in this transaction; ConcurrencyError if a stream moved on."""
        ...


@runtime_checkable
class StagesAppend(Protocol):
    """A unit of work that can do the CPU work of an append (encrypting, encoding) ahead of
    it: the import pipeline stages a batch while the previous batch's append still runs in
    the database, so ``append`` then only sends. Optional: without it, ``append`` does all."""

    async def stage(self, writes: Sequence[StreamWrite], ctx: CommandContext) -> None: ...


class ImportStore(Protocol):
    def batch(self, tenant: str) -> AbstractAsyncContextManager[ImportUnitOfWork]: ...

    async def index_existing_fans(self, tenant: str) -> None:
        """Make the tenant's fans created outside imports (the API) findable by an import."""
        ...

    async def row_digests(self, tenant: str) -> Callable[[Row], bytes]:
        """The tenant's ``ImportUnitOfWork.row_digest``, outside any batch."""
        ...


class StartImport(msgspec.Struct, frozen=True, kw_only=True):
    job_id: str
    file_name: str
    source: str = "http"


async def start_import(cmd: StartImport, ctx: CommandContext, *, store: EventStore) -> ImportJob:
    job = ImportJob.start(
        job_id=cmd.job_id, tenant=ctx.tenant, file_name=cmd.file_name, source=cmd.source
    )
    await _save(store, job, ctx)
    return job


async def resume_import(job_id: str, ctx: CommandContext, *, store: EventStore) -> ImportJob:
    job, _ = await load(store, import_stream_id(job_id), tenant=ctx.tenant)
    assert isinstance(job, ImportJob)
    job.resume()
    await _save(store, job, ctx)
    return job


async def complete_import(
    job: ImportJob, ctx: CommandContext, *, store: EventStore, size_bytes: int, checksum: str
) -> int:
    job.complete(size_bytes=size_bytes, checksum_sha256=checksum)
    return await _save(store, job, ctx)


async def fail_import(
    job_id: str, ctx: CommandContext, *, store: EventStore, reason: str, size_bytes: int
) -> ImportJob:
    """Mark the job failed as the log has it (the caller's copy may be mid-batch)."""
    job, _ = await load(store, import_stream_id(job_id), tenant=ctx.tenant)
    assert isinstance(job, ImportJob)
    if job.status == "running":
        job.fail(reason=reason, size_bytes=size_bytes)
        await _save(store, job, ctx)
    return job


async def _save(store: EventStore, job: ImportJob, ctx: CommandContext) -> int:
    position = await save(store, job, STREAM_TYPE, ctx)
    assert position is not None
    return position
