"""One batch of an import: find the rows' fans, let the Fan aggregate decide, append the fans'
events and the job's progress together in one transaction (the import store's unit of work).

Why claims come after decisions: only fans actually created (a row may break a rule) may own
index entries. Why a lost claim re-runs the whole batch: it means a concurrent import created
that fan and committed; re-running finds it and updates or skips instead of creating twice.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Any

import msgspec

from application.context import CommandContext
from application.errors import ConcurrencyError
from application.imports import (
    STREAM_TYPE,
    Applied,
    FanRow,
    ImportStore,
    ImportUnitOfWork,
    Indexed,
    Row,
    RowError,
)
from application.ports import EventStore, StreamWrite
from application.streams import load, retry_on_conflict
from domain.errors import Gone, InvalidValue
from domain.fan import EDITABLE_FIELDS, Fan, handle_key
from domain.import_job import ImportJob

FAN_STREAM_TYPE = "fan"

# A row's fan: ("fan", existing fan id) or ("new", index of a fan this batch may create).
Ref = tuple[str, int]


def match_keys(row: FanRow) -> list[str]:
    """What identifies the row's fan within the tenant: platform id first, then handle."""
    platform = row.platform or "onlyfans"
    keys = []
    if row.platform_id:
        keys.append(f"{platform}:id:{row.platform_id.strip()}")
    handle = handle_key(platform, row.handle)
    if handle:
        keys.append(handle)
    return keys


class BatchResult(msgspec.Struct):
    inserted: int = 0
    updated: int = 0
    skipped: int = 0
    errors: list[tuple[int, str]] = msgspec.field(default_factory=list)


async def import_batch(
    batch: Sequence[Row],
    job: ImportJob,
    ctx: CommandContext,
    *,
    events: EventStore,
    imports: ImportStore,
) -> ImportJob:
    async def attempt() -> ImportJob:
        if batch:
            async with imports.batch(ctx.tenant) as uow:
                await uow.append(await prepare(uow, batch, job, ctx), ctx)
        return job

    async def reload(_: ConcurrencyError) -> None:
        # This copy of the job already took the batch; the log's copy did not. Rows it holds
        # as committed (another process resuming the same job) are not redone.
        nonlocal job, batch
        job, _position = await load(events, job.id, tenant=ctx.tenant)
        batch = [row for row in batch if row.row > job.last_row]

    return await retry_on_conflict(attempt, before_retry=reload)


async def prepare(
    uow: ImportUnitOfWork,
    batch: Sequence[Row],
    job: ImportJob,
    ctx: CommandContext,
    keys: dict[int, list[str]] | None = None,
) -> list[StreamWrite]:
    """Decide the batch inside ``uow``'s transaction and record it on the job; returns the
    writes to append (the fans' events, then the job's). ``keys``: the rows' match keys, by
    row number, if the caller has them already."""
    if keys is None:
        keys = {row.row: match_keys(row) for row in batch if isinstance(row, FanRow)}
    found = await uow.find(sorted({key for row_keys in keys.values() for key in row_keys}))
    refs, assigned, new_count = _plan(batch, keys, found)
    digests = {row.row: uow.row_digest(row) for row in batch if keys.get(row.row)}
    unchanged = _unchanged(batch, refs, keys, digests, found)
    ids = await uow.new_fan_ids(new_count) if new_count else []
    loaded = {ref[1] for ref in assigned.values() if ref[0] == "fan"} - unchanged
    existing = await uow.load_fans(sorted(loaded))
    held = {number: fan.held_handle for number, fan in existing.items()}
    taken = _taken_handles(batch, refs, keys, assigned)
    decided = _decide(batch, refs, ids, existing, unchanged, ctx.tenant, taken)
    last_row_of = {ref: number for number, ref in decided.applied.items()}
    # Only keys of rows applied may own entries: a row that broke a rule names no fan, and
    # a deleted fan holds no handle.
    claimable = {
        key: ref
        for number, ref in decided.applied.items()
        for key in keys[number]
        if assigned[key] == ref and not _deleted(ref, existing)
    }
    renamed = {
        before: number
        for number, fan in existing.items()
        if (before := held[number]) is not None and before != fan.held_handle
    }
    if renamed:
        await uow.release(renamed)

    def applied(ref: Ref) -> Applied:
        """What the fan's index entries are to remember after this batch."""
        kind, number = ref
        row = last_row_of.get(ref)
        digest = None if row is None else digests[row]
        if kind == "new":
            grown = decided.grown.get(number)
            return Applied(ids[number], digest, 1 if grown is None else grown.version)
        fan = existing.get(number)
        return Applied(number, digest, None if fan is None else fan.version)

    claims = {
        key: applied(ref)
        for key, ref in claimable.items()
        if ref[0] == "new" and ref[1] in decided.created
    }
    if claims:
        await uow.claim(claims, exclusive=True)
    extra = {
        key: applied(ref) for key, ref in claimable.items() if ref[0] == "fan" and key not in found
    }
    if extra:
        # Exclusive: a handle someone claimed since ``find`` re-runs the batch, which then
        # finds its holder and refuses the row (``_taken_handles``) rather than share it.
        await uow.claim(extra, exclusive=True)
    remembered = [applied(ref) for ref in last_row_of if ref[0] == "fan"]
    if remembered:
        await uow.remember(remembered)
    result = decided.result
    job.record_batch(
        first_row=batch[0].row,
        last_row=batch[-1].row,
        inserted=result.inserted,
        updated=result.updated,
        skipped=result.skipped,
        errors=result.errors,
        last_row_digest=uow.row_digest(batch[-1]).hex(),
    )
    touched: list[StreamWrite | None] = [
        _created_write(event, decided.grown.get(number))
        for number, event in decided.created.items()
    ]
    touched += [_write(fan) for fan in existing.values()]
    job_write = _write(job, STREAM_TYPE)
    assert job_write is not None
    return [*(write for write in touched if write is not None), job_write]


def _plan(
    batch: Sequence[Row], keys: dict[int, list[str]], found: dict[str, Indexed]
) -> tuple[list[Ref | None], dict[str, Ref], int]:
    assigned: dict[str, Ref] = {key: ("fan", entry.fan_id) for key, entry in found.items()}
    refs: list[Ref | None] = []
    new_count = 0
    for row in batch:
        row_keys = keys.get(row.row, [])
        ref = next((assigned[key] for key in row_keys if key in assigned), None)
        if ref is None and row_keys:
            ref = ("new", new_count)
            new_count += 1
        for key in row_keys:
            assigned.setdefault(key, ref)  # type: ignore[arg-type]
        refs.append(ref)
    return refs, assigned, new_count


def _taken_handles(
    batch: Sequence[Row],
    refs: list[Ref | None],
    keys: dict[int, list[str]],
    assigned: dict[str, Ref],
) -> dict[int, Ref]:
    """Rows whose handle is another fan's than the one their platform id names: applying
    them would give one handle to two fans. Row number -> the fan holding the handle."""
    taken = {}
    for row, ref in zip(batch, refs, strict=True):
        for key in keys.get(row.row, [])[1:]:  # match_keys: the platform id's, then the handle's
            if assigned[key] != ref:
                taken[row.row] = assigned[key]
    return taken


def _unchanged(
    batch: Sequence[Row],
    refs: list[Ref | None],
    keys: dict[int, list[str]],
    digests: dict[int, bytes],
    found: dict[str, Indexed],
) -> set[int]:
    """Fans this batch leaves as they are without loading them: the one row naming the fan is
    the row last applied to it, and the fan has not changed since (see application/imports)."""
    rows_of = Counter(refs)
    unchanged = set()
    for row, ref in zip(batch, refs, strict=True):
        if ref is None or ref[0] != "fan" or rows_of[ref] != 1:
            continue
        entries = [found.get(key) for key in keys[row.row]]
        if all(
            entry is not None and entry.unchanged and entry.row_digest == digests[row.row]
            for entry in entries
        ):
            unchanged.add(ref[1])
    return unchanged


class _Decided(msgspec.Struct):
    result: BatchResult
    # The new fans' Created events, by their number in the batch.
    created: dict[int, Fan.Created]
    # For a new fan that a later row of the same batch changes, the fan made from its event.
    grown: dict[int, Fan]
    # The rows decided against a fan of this tenant, in order: row number -> the fan.
    applied: dict[int, Ref]


def _decide(
    batch: Sequence[Row],
    refs: list[Ref | None],
    ids: list[int],
    existing: dict[int, Fan],
    unchanged: set[int],
    tenant: str,
    taken: dict[int, Ref],
) -> _Decided:
    decided = _Decided(BatchResult(), {}, {}, {})
    result = decided.result
    errors = result.errors
    for row, ref in zip(batch, refs, strict=True):
        if isinstance(row, RowError):
            errors.append((row.row, row.error))
        elif ref is None:
            errors.append((row.row, "handle: a row needs a handle or a platform id"))
        elif row.row in taken:
            errors.append((row.row, _taken_message(taken[row.row])))
        elif ref[0] == "fan" and ref[1] in unchanged:
            result.skipped += 1
        else:
            try:
                fan_seen = _decide_row(row, ref, ids, existing, decided, tenant)
            except InvalidValue as error:
                errors.append((row.row, f"{_camel(error.field)}: {error.message}"))
            else:
                if fan_seen:
                    decided.applied[row.row] = ref
    return decided


def _decide_row(
    row: FanRow,
    ref: Ref,
    ids: list[int],
    existing: dict[int, Fan],
    decided: _Decided,
    tenant: str,
) -> bool:
    """Count the row's outcome; False if it found no fan of this tenant to apply to."""
    result, created, grown = decided.result, decided.created, decided.grown
    kind, number = ref
    if kind == "new":
        fan = grown.get(number)
        if fan is None:
            made = created.get(number)
            if made is None:
                # The event Fan.register records, without building (and replaying) a Fan.
                created[number] = Fan.registered(
                    fan_id=ids[number],
                    tenant=tenant,
                    platform=row.platform or "onlyfans",
                    platform_id=row.platform_id,
                    name=row.name,
                    handle=row.handle,
                    email=row.email,
                    value_cents=0 if row.value_cents is None else row.value_cents,
                    tags=row.tags,
                    notes=row.notes,
                    subscribed_at=row.subscribed_at,
                )
                result.inserted += 1
                return True
            # A second row for a fan this batch creates: now it needs the aggregate.
            fan = grown[number] = _fan_of(made)
    else:
        fan = existing.get(number)
    if fan is None:
        result.skipped += 1  # not this tenant's fan
        return False
    if fan.deleted:
        result.skipped += 1  # deleted (or erased) fans stay so: see application/imports.py
        return True
    changes: dict[str, Any] = {
        field: getattr(row, field) for field in EDITABLE_FIELDS if getattr(row, field) is not None
    }
    try:
        changed = fan.update(**changes)
    except Gone:
        result.skipped += 1
        return False
    if changed:
        result.updated += 1
    else:
        result.skipped += 1
    return True


def _fan_of(event: Fan.Created) -> Fan:
    fan = event.mutate(None)
    assert isinstance(fan, Fan)
    return fan


def _created_write(event: Fan.Created, fan: Fan | None) -> StreamWrite:
    """A new fan's stream: its Created event, then what later rows of the batch changed."""
    later: list[Any] = list(fan.collect_events()) if fan is not None else []
    return StreamWrite(event.originator_id, FAN_STREAM_TYPE, [event, *later], expected_version=0)


def _write(aggregate: Any, stream_type: str = FAN_STREAM_TYPE) -> StreamWrite | None:
    pending = aggregate.collect_events()
    if not pending:
        return None
    return StreamWrite(
        aggregate.id, stream_type, pending, expected_version=pending[0].originator_version - 1
    )


def _deleted(ref: Ref, existing: dict[int, Fan]) -> bool:
    fan = existing.get(ref[1]) if ref[0] == "fan" else None
    return fan is not None and fan.deleted


def _taken_message(holder: Ref) -> str:
    kind, number = holder
    if kind == "fan":
        return f"handle: fan {number} already has this handle on this platform"
    return "handle: another row of this file gives this handle to another fan"


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.title() for part in rest)
