"""What the automation worker does to a fan's run through a sequence: enrol it, send its due
step, end it early. Each decides on the event store (the enrolment's and the sequence's
streams) and appends at the version it read, so two workers, or one restarted after a
crash, can never do one thing twice:

- enrolling is a new stream (expected version 0): one writer wins, the other finds it;
- a step's message and its ``StepSent`` commit in one append, the message under an id derived
  from (enrolment, step) and the enrolment at the version read: a step is queued once;
- an exit and a step racing each other conflict on the enrolment's version; the loser
  re-reads, and a run that has ended sends nothing.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

import msgspec

from application.auto_price import NO_EVIDENCE, PricingCounts, price_for
from application.context import CommandContext
from application.errors import NotFound
from application.messages import conversation_writes, live_recipient, outbox_entry, stream_write
from application.ports import Checkpoint, EventStore, IdAllocator, StreamWrite
from application.streams import load, retry_on_conflict, save
from domain.campaign import render
from domain.enrolment import Enrolment, enrolment_stream_id
from domain.errors import InvalidValue
from domain.fan import fan_stream_id
from domain.message import DEFAULT_PRIORITY, Message
from domain.sequence import Sequence, sequence_stream_id
from domain.sequence_rules import step_due

STREAM_TYPE = "enrolment"
ACTOR = "automation-worker"
_STEP_MESSAGES = uuid.UUID("3b0f5d8e-6a3c-4f0e-8d7b-9a1c2e4f6b10")
MAX_ENTRIES = 10_000  # a bound on probing entry streams, far beyond any real re-entry count


def step_message_id(enrolment_stream: str, step: int) -> str:
    """The one message a run may send for a step."""
    return str(uuid.uuid5(_STEP_MESSAGES, f"{enrolment_stream}:{step}"))


class StepQueued(msgspec.Struct, frozen=True, kw_only=True):
    tenant: str
    sequence_id: int
    step: int
    message_id: str
    queue: str
    completed: bool
    stream_id: str = ""  # the run's


class RunEnded(msgspec.Struct, frozen=True, kw_only=True):
    tenant: str
    sequence_id: int
    reason: str  # an exit reason, or "completed"


def context(tenant: str, correlation_id: str) -> CommandContext:
    return CommandContext(tenant=tenant, actor=ACTOR, correlation_id=correlation_id)


async def load_sequence_of(store: EventStore, sequence_id: int, tenant: str) -> Sequence:
    sequence, _ = await load(store, sequence_stream_id(sequence_id), tenant=tenant)
    assert isinstance(sequence, Sequence)
    return sequence


async def load_sequence_created(
    store: EventStore, sequence_id: int, tenant: str
) -> tuple[Sequence, Checkpoint]:
    """The sequence, and where in the log it was created: a trigger before that starts
    nothing (a welcome series made today does not greet yesterday's fans)."""
    recorded = await store.load(sequence_stream_id(sequence_id))
    if not recorded or recorded[0].metadata.tenant != tenant:
        raise NotFound(sequence_stream_id(sequence_id))
    sequence: Any = None
    for item in recorded:
        sequence = item.event.mutate(sequence)
    return sequence, Checkpoint(recorded[0].transaction_id, recorded[0].position)


async def enrol(
    sequence: Sequence, fan_id: int, trigger: str, now: datetime, *, store: EventStore
) -> Enrolment | None:
    """Start the fan's next run, if its re-entry rule lets it; None if it does not enter
    (again). ``trigger`` names what enrols it: met again (a batch redone after a crash), it
    finds the run it started and stops."""
    ctx = context(sequence.tenant, f"{sequence.id}:{fan_id}")

    async def attempt() -> Enrolment | None:
        previous: Enrolment | None = None
        for entry in range(1, MAX_ENTRIES + 1):
            stream_id = enrolment_stream_id(sequence.sequence_id, fan_id, entry)
            recorded = await store.load(stream_id)
            if recorded:
                current: Any = None
                for item in recorded:
                    current = item.event.mutate(current)
                if current.trigger == trigger or sequence.reentry == "never":
                    return None
                if current.status == "active" and sequence.reentry == "afterExit":
                    return None
                previous = current
                continue
            return await _start(sequence, fan_id, entry, trigger, now, previous, store, ctx)
        return None

    return await retry_on_conflict(attempt)


async def _start(
    sequence: Sequence,
    fan_id: int,
    entry: int,
    trigger: str,
    now: datetime,
    previous: Enrolment | None,
    store: EventStore,
    ctx: CommandContext,
) -> Enrolment:
    enrolment = Enrolment.enrol(
        sequence_id=sequence.sequence_id,
        fan_id=fan_id,
        tenant=sequence.tenant,
        entry=entry,
        trigger=trigger,
        now=now,
        first_due=step_due(sequence.steps[0], now, sequence.time_zone),
    )
    writes = [stream_write(enrolment, STREAM_TYPE)]
    # "always": a trigger during a run ends it and starts the next, in one append.
    if previous is not None and previous.exit("reentered", now):
        writes.insert(0, stream_write(previous, STREAM_TYPE))
    await store.append_all(writes, metadata=ctx.metadata())
    return enrolment


async def exit_run(
    stream_id: str,
    tenant: str,
    reason: str,
    now: datetime,
    *,
    store: EventStore,
    tag: str | None = None,
) -> RunEnded | None:
    """End the run for ``reason`` if it is under way and its sequence's exit rules say so."""
    ctx = context(tenant, stream_id)

    async def attempt() -> RunEnded | None:
        enrolment, _ = await load(store, stream_id, tenant=tenant)
        if enrolment.status != "active":
            return None
        sequence = await load_sequence_of(store, enrolment.sequence_id, tenant)
        if not sequence.exits_on(reason, tag) or not enrolment.exit(reason, now):
            return None
        await save(store, enrolment, STREAM_TYPE, ctx)
        return RunEnded(tenant=tenant, sequence_id=sequence.sequence_id, reason=reason)

    return await retry_on_conflict(attempt)


async def send_due_step(
    stream_id: str,
    tenant: str,
    now: datetime,
    *,
    store: EventStore,
    ids: IdAllocator,
    pricing: PricingCounts = NO_EVIDENCE,
) -> StepQueued | RunEnded | None:
    """Queue the run's due step (None: nothing due, or its sequence is paused). ``pricing``:
    what a step priced "auto" is priced from."""
    ctx = context(tenant, stream_id)

    async def attempt() -> StepQueued | RunEnded | None:
        enrolment, _ = await load(store, stream_id, tenant=tenant)
        if not enrolment.due(now):
            return None
        sequence = await load_sequence_of(store, enrolment.sequence_id, tenant)
        if sequence.status == "paused":
            return None
        if sequence.status == "archived":
            return await _end(enrolment, "archived", now, store, ctx)
        if enrolment.next_step >= len(sequence.steps):
            enrolment.finish(now)
            await save(store, enrolment, STREAM_TYPE, ctx)
            return RunEnded(tenant=tenant, sequence_id=sequence.sequence_id, reason="completed")
        try:
            return await _queue_step(enrolment, sequence, now, store, ids, ctx, pricing)
        except InvalidValue as error:
            # The fan was deleted, or the step rendered for it breaks a message rule (too
            # long): no later step can reach the fan either.
            reason = "deleted" if error.field == "recipient_id" else "undeliverable"
            return await _end(enrolment, reason, now, store, ctx)

    return await retry_on_conflict(attempt)


async def _queue_step(
    enrolment: Enrolment,
    sequence: Sequence,
    now: datetime,
    store: EventStore,
    ids: IdAllocator,
    ctx: CommandContext,
    pricing: PricingCounts,
) -> StepQueued:
    fan = await live_recipient(store, enrolment.fan_id, ctx)
    writes = await conversation_writes(fan, ctx, ids) or [
        StreamWrite(fan_stream_id(fan.fan_id), "fan", [], fan.version)  # held: not deleted
    ]
    index = enrolment.next_step
    step = sequence.steps[index]
    assert fan.conversation_id is not None
    variant, template, price_cents, attachments = step.message_for(
        enrolment.sequence_id, index, fan.fan_id
    )
    message_id = step_message_id(enrolment.id, index)
    if step.auto_price:
        # Decided once: the step's message id is derived, and its Queued event (appended with
        # the step) records the price, so a retried step meets what was decided.
        price_cents = (await price_for(pricing, ctx.tenant, fan.fan_id, message_id)).price_cents
    message = Message.queue(
        message_id=message_id,
        tenant=enrolment.tenant,
        conversation_id=fan.conversation_id,
        fan_id=fan.fan_id,
        content=render(template, name=fan.name, handle=fan.handle),
        price_cents=price_cents,
        attachments=attachments,
        priority=DEFAULT_PRIORITY,
        variant=variant,
    )
    last = index + 1 >= len(sequence.steps)
    next_due = None if last else step_due(sequence.steps[index + 1], now, sequence.time_zone)
    enrolment.record_step(
        step=index, message_id=message.message_id, now=now, next_due=next_due, variant=variant
    )
    await store.append_all(
        [*writes, stream_write(message, "message"), stream_write(enrolment, STREAM_TYPE)],
        metadata=ctx.metadata(),
        outbox=[outbox_entry(message, ctx)],
    )
    return StepQueued(
        tenant=enrolment.tenant,
        sequence_id=sequence.sequence_id,
        step=index,
        message_id=message.message_id,
        queue=message.queue_name(),
        completed=last,
        stream_id=enrolment.id,
    )


async def _end(
    enrolment: Enrolment, reason: str, now: datetime, store: EventStore, ctx: CommandContext
) -> RunEnded:
    enrolment.exit(reason, now)
    await save(store, enrolment, STREAM_TYPE, ctx)
    return RunEnded(tenant=enrolment.tenant, sequence_id=enrolment.sequence_id, reason=reason)
