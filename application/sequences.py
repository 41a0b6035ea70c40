"""Sequence commands: create, edit, pause, resume, archive. Each reads the sequence's
stream, lets the Sequence decide, and appends at the version read (application.streams)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import msgspec

from application.context import CommandContext
from application.ports import EventStore, IdAllocator
from application.streams import handle, save
from domain.sequence import Sequence, sequence_stream_id
from domain.sequence_rules import ExitRules, Step, Trigger

STREAM_TYPE = "sequence"


class CreateSequence(msgspec.Struct, frozen=True, kw_only=True):
    name: str
    trigger: Trigger
    steps: tuple[Step, ...]
    exit_rules: ExitRules = ExitRules()
    reentry: str = "never"
    time_zone: str = "UTC"
    status: str = "active"


class ChangeSequence(msgspec.Struct, frozen=True, kw_only=True):
    """What is None stays as it is."""

    sequence_id: int
    name: str | None = None
    steps: tuple[Step, ...] | None = None
    exit_rules: ExitRules | None = None
    reentry: str | None = None
    time_zone: str | None = None


class SequenceChanged(msgspec.Struct, frozen=True):
    sequence: Sequence
    position: int


async def create_sequence(
    cmd: CreateSequence, ctx: CommandContext, *, store: EventStore, ids: IdAllocator
) -> SequenceChanged:
    # A body the domain refuses leaves a gap in the ids, as any Postgres sequence may have.
    sequence = Sequence.create(
        sequence_id=await ids.next_id("sequence"),
        tenant=ctx.tenant,
        name=cmd.name,
        trigger=cmd.trigger,
        steps=cmd.steps,
        exit_rules=cmd.exit_rules,
        reentry=cmd.reentry,
        time_zone=cmd.time_zone,
        status=cmd.status,
    )
    position = await save(store, sequence, STREAM_TYPE, ctx)
    assert position is not None
    return SequenceChanged(sequence, position)


async def update_sequence(
    cmd: ChangeSequence, ctx: CommandContext, *, store: EventStore
) -> SequenceChanged:
    return await _decide(
        cmd.sequence_id,
        ctx,
        store,
        lambda s: s.update(
            name=cmd.name,
            steps=cmd.steps,
            exit_rules=cmd.exit_rules,
            reentry=cmd.reentry,
            time_zone=cmd.time_zone,
        ),
    )


async def pause_sequence(
    sequence_id: int, ctx: CommandContext, *, store: EventStore
) -> SequenceChanged:
    return await _decide(sequence_id, ctx, store, Sequence.pause)


async def resume_sequence(
    sequence_id: int, ctx: CommandContext, *, store: EventStore
) -> SequenceChanged:
    return await _decide(sequence_id, ctx, store, Sequence.resume)


async def archive_sequence(
    sequence_id: int, ctx: CommandContext, *, store: EventStore
) -> SequenceChanged:
    return await _decide(sequence_id, ctx, store, Sequence.archive)


async def _decide(
    sequence_id: int,
    ctx: CommandContext,
    store: EventStore,
    change: Callable[[Sequence], Any],
) -> SequenceChanged:
    async def decide(sequence: Sequence) -> None:
        change(sequence)

    handled = await handle(
        store, sequence_stream_id(sequence_id), decide, ctx, stream_type=STREAM_TYPE
    )
    return SequenceChanged(handled.aggregate, handled.position)
