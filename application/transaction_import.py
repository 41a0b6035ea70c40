"""Import of past transactions (an earnings export): each row becomes a FanTransactionImported
on its fan, dated when it happened, in batches committed with the job's progress.

Fans are found as the fan import finds them (platform id first, then handle, through the import
store's index, so a fan created a moment ago is found). An unknown fan is the row's error: a
transaction never creates a fan, since a row holds too little to make one worth having.

Idempotence lives in the Fan aggregate: it keeps the keys of the transactions it recorded and
refuses a key twice, and its stream's expected version makes two imports of one file at once
conflict, retry and skip. A key is the file's transaction id when it has one, else a hash of
(fan, time, amount, kind, n) where n counts the identical rows before it in the file: two tips
of the same amount in the same second are two transactions, and the same file imported again
gives the same keys. So an interrupted import needs no resume: importing the file again
records only what is missing.
"""

from __future__ import annotations

import copy
import hashlib
from collections import Counter
from collections.abc import AsyncIterator, Sequence
from datetime import datetime
from typing import Any, NamedTuple, Protocol

import msgspec

from application.context import CommandContext
from application.errors import NotFound
from application.import_batch import match_keys
from application.import_file import ImportFailed
from application.imports import (
    STREAM_TYPE,
    FanRow,
    ImportStore,
    RowError,
    StartImport,
    complete_import,
    fail_import,
    start_import,
)
from application.ports import EventStore, StreamWrite
from application.streams import load, retry_on_conflict
from domain.errors import IllegalState, InvalidValue
from domain.import_job import ImportJob, import_stream_id

DEFAULT_BATCH_SIZE = 1000


class TransactionRow(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    """One transaction as read from the file; ``occurred_at`` is timezone-aware."""

    row: int
    occurred_at: datetime
    amount_cents: int
    kind: str
    platform: str | None = None
    platform_id: str | None = None
    handle: str | None = None
    transaction_id: str | None = None


TransactionLine = TransactionRow | RowError


class TransactionSource(Protocol):
    size: int

    @property
    def checksum(self) -> str: ...

    def rows(self) -> AsyncIterator[TransactionLine]: ...

    async def read_to_end(self) -> None:
        """Read what is left of the file without importing it: its size and checksum."""
        ...


async def import_transactions(
    source: TransactionSource,
    start: StartImport,
    ctx: CommandContext,
    *,
    events: EventStore,
    imports: ImportStore,
    batch_size: int = DEFAULT_BATCH_SIZE,
) -> tuple[ImportJob, int]:
    """The finished job and the log position of its last event; ImportFailed otherwise."""
    job = await start_import(start, ctx, store=events)
    await imports.index_existing_fans(ctx.tenant)
    seen: Counter[bytes] = Counter()
    try:
        batch: list[TransactionLine] = []
        async for row in source.rows():
            batch.append(row)
            if len(batch) >= batch_size:
                job = await _import_batch(batch, job, seen, ctx, imports)
                batch = []
        if batch:
            job = await _import_batch(batch, job, seen, ctx, imports)
    except Exception as error:
        reason = str(error) or type(error).__name__
        failed = await fail_import(
            job.job_id, ctx, store=events, reason=reason, size_bytes=source.size
        )
        raise ImportFailed(failed, error) from error
    position = await complete_import(
        job, ctx, store=events, size_bytes=source.size, checksum=source.checksum
    )
    return job, position


async def _import_batch(
    batch: Sequence[TransactionLine],
    job: ImportJob,
    seen: Counter[bytes],
    ctx: CommandContext,
    imports: ImportStore,
) -> ImportJob:
    keys = {
        row.row: match_keys(
            FanRow(
                row=row.row, platform=row.platform, platform_id=row.platform_id, handle=row.handle
            )
        )
        for row in batch
        if isinstance(row, TransactionRow)
    }

    async def attempt() -> ImportJob:
        # A failed attempt leaves neither the job nor the file's occurrence counts changed.
        attempt_job = job
        counts = seen.copy()
        async with imports.batch(ctx.tenant) as uow:
            found = await uow.find(sorted({key for row_keys in keys.values() for key in row_keys}))
            fan_of = {
                number: next((found[key].fan_id for key in row_keys if key in found), None)
                for number, row_keys in keys.items()
            }
            fans = await uow.load_fans(sorted({fan for fan in fan_of.values() if fan is not None}))
            attempt_job = _copy(job)
            inserted, skipped, errors = 0, 0, []
            for row in batch:
                if isinstance(row, RowError):
                    errors.append((row.row, row.error))
                    continue
                fan_id = fan_of.get(row.row)
                fan = None if fan_id is None else fans.get(fan_id)
                if fan is None:
                    errors.append((row.row, _unknown_fan(row)))
                    continue
                try:
                    recorded = fan.import_transaction(
                        amount_cents=row.amount_cents,
                        kind=row.kind,
                        occurred_at=row.occurred_at,
                        transaction_key=transaction_key(row, fan.fan_id, counts),
                    )
                except InvalidValue as error:
                    errors.append((row.row, f"{error.field}: {error.message}"))
                    continue
                inserted, skipped = inserted + recorded, skipped + (not recorded)
            attempt_job.record_batch(
                first_row=batch[0].row,
                last_row=batch[-1].row,
                inserted=inserted,
                updated=0,
                skipped=skipped,
                errors=errors,
            )
            writes = [write for fan in fans.values() if (write := _write(fan, "fan")) is not None]
            job_write = _write(attempt_job, STREAM_TYPE)
            assert job_write is not None
            await uow.append([*writes, job_write], ctx)
        seen.clear()
        seen.update(counts)
        return attempt_job

    return await retry_on_conflict(attempt)


class KeyedTransactions(NamedTuple):
    job: ImportJob
    position: int
    # True: the key's import had finished already; this is its summary, nothing was imported.
    replayed: bool


async def import_transactions_once(
    source: TransactionSource,
    start: StartImport,
    ctx: CommandContext,
    *,
    events: EventStore,
    imports: ImportStore,
    batch_size: int = DEFAULT_BATCH_SIZE,
) -> KeyedTransactions:
    """The import of a request with an Idempotency-Key, whose job id the key decides: no job
    yet, it runs; a completed job answers its summary for the same file (same SHA-256) and
    refuses another (InvalidValue); a job that stopped midway is refused (IllegalState): the
    file imported again without the key records just what that job did not."""
    try:
        job, position = await load(events, import_stream_id(start.job_id), tenant=ctx.tenant)
    except NotFound:
        job = None
    if job is None:
        job, position = await import_transactions(
            source, start, ctx, events=events, imports=imports, batch_size=batch_size
        )
        return KeyedTransactions(job, position, replayed=False)
    if job.status != "completed":
        raise IllegalState(
            "the import of this Idempotency-Key stopped before the end of its file: import"
            " the file again without the key (transactions already recorded are skipped)"
        )
    await source.read_to_end()
    if source.checksum != job.checksum_sha256:
        raise InvalidValue("idempotency_key", "was already used for a different request")
    return KeyedTransactions(job, position, replayed=True)


def transaction_key(row: TransactionRow, fan_id: int, counts: Counter[bytes]) -> str:
    """The transaction's identity within its fan (see the module's docstring)."""
    if row.transaction_id:
        # Hashed: the log keeps no text of the file but what the event needs.
        return "id:" + hashlib.sha256(row.transaction_id.strip().encode()).hexdigest()[:32]
    moment = row.occurred_at.isoformat()
    same = hashlib.sha256(f"{fan_id}|{moment}|{row.amount_cents}|{row.kind}".encode()).digest()
    occurrence = counts[same]
    counts[same] += 1
    return "row:" + hashlib.sha256(same + str(occurrence).encode()).hexdigest()[:32]


def _unknown_fan(row: TransactionRow) -> str:
    field = "platformId" if row.platform_id else "handle"
    return f"{field}: no fan of this account has this {'platform id' if row.platform_id else field}"


def _copy(job: ImportJob) -> ImportJob:
    """The job for one attempt to change: a retry after a conflict starts again from ``job``
    as the last committed batch left it (its events were collected, so none is pending)."""
    return copy.deepcopy(job)


def _write(aggregate: Any, stream_type: str) -> StreamWrite | None:
    pending = aggregate.collect_events()
    if not pending:
        return None
    return StreamWrite(
        aggregate.id, stream_type, pending, expected_version=pending[0].originator_version - 1
    )
