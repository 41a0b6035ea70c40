"""The fast path for many due steps of one account at once: every stream read in two queries,
every step's writes in one append (one transaction), as a campaign's chunk is queued.

The append holds each run, fan and new message at the version read, so it commits whole or
not at all: a run that moved meanwhile (an exit, another worker) fails the lot, and the caller
then sends each step by the slow path (application.enrolments.send_due_step), which reads its
streams afresh. Runs the fast path does not decide (a sequence archived or cut short, a fan
gone, a fan met twice in the batch, a step that renders too long) go to the slow path too.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any, Protocol

import msgspec

from application.auto_price import NO_EVIDENCE, PricingCounts, priced
from application.enrolments import STREAM_TYPE, StepQueued, context, step_message_id
from application.errors import ConcurrencyError
from application.messages import outbox_entry, stream_write
from application.ports import EventStore, IdAllocator, OutboxEntry, RecordedEvent, StreamWrite
from domain.campaign import render
from domain.conversation import Conversation
from domain.enrolment import Enrolment
from domain.errors import InvalidValue
from domain.fan import Fan, fan_stream_id
from domain.message import DEFAULT_PRIORITY, Message
from domain.sequence import Sequence as Seq
from domain.sequence import sequence_stream_id
from domain.sequence_rules import step_due


class BatchStore(EventStore, Protocol):
    async def load_streams(self, stream_ids: Sequence[str]) -> dict[str, list[RecordedEvent]]:
        """Several streams in one query: those with no event are absent from the answer."""
        ...


class Batched(msgspec.Struct, frozen=True, kw_only=True):
    queued: list[StepQueued]
    rest: list[str]  # runs left to the slow path
    position: int | None = None  # of the append, if one was made


async def send_due_steps(
    stream_ids: list[str],
    tenant: str,
    now: datetime,
    *,
    store: BatchStore,
    ids: IdAllocator,
    pricing: PricingCounts = NO_EVIDENCE,
) -> Batched:
    runs = _replayed(await store.load_streams(stream_ids), tenant)
    rest = [stream_id for stream_id in stream_ids if stream_id not in runs]
    due = [run for run in runs.values() if run.due(now)]
    related = await store.load_streams(
        sorted(
            {sequence_stream_id(r.sequence_id) for r in due}
            | {fan_stream_id(r.fan_id) for r in due}
        )
    )
    others = _replayed(related, tenant)
    plan: list[tuple[Enrolment, Seq, Fan]] = []
    fans_met: set[int] = set()
    for run in due:
        sequence = others.get(sequence_stream_id(run.sequence_id))
        fan = others.get(fan_stream_id(run.fan_id))
        if isinstance(sequence, Seq) and sequence.status == "paused":
            continue  # nothing to do now
        if not _plain(run, sequence, fan) or run.fan_id in fans_met:
            rest.append(run.id)
            continue
        assert isinstance(sequence, Seq)
        assert isinstance(fan, Fan)
        fans_met.add(run.fan_id)
        plan.append((run, sequence, fan))
    queued, position = await _append(plan, rest, tenant, now, store, ids, pricing)
    return Batched(queued=queued, rest=rest, position=position)


async def _append(
    plan: list[tuple[Enrolment, Seq, Fan]],
    rest: list[str],
    tenant: str,
    now: datetime,
    store: BatchStore,
    ids: IdAllocator,
    pricing: PricingCounts,
) -> tuple[list[StepQueued], int | None]:
    ctx = context(tenant, f"automation-batch:{now.isoformat()}")
    prices = await _auto_prices(plan, tenant, pricing)
    fresh = sum(fan.conversation_id is None for _, _, fan in plan)
    conversation_ids = iter(await ids.next_ids("conversation", fresh) if fresh else [])
    writes: list[StreamWrite] = []
    outbox: list[OutboxEntry] = []
    queued: list[StepQueued] = []
    for run, sequence, fan in plan:
        index = run.next_step
        step = sequence.steps[index]
        conversation_id = fan.conversation_id or next(conversation_ids)
        variant, template, price_cents, attachments = step.message_for(
            run.sequence_id, index, fan.fan_id
        )
        price_cents = prices.get(run.id, price_cents)
        try:
            message = Message.queue(
                message_id=step_message_id(run.id, index),
                tenant=tenant,
                conversation_id=conversation_id,
                fan_id=fan.fan_id,
                content=render(template, name=fan.name, handle=fan.handle),
                price_cents=price_cents,
                attachments=attachments,
                priority=DEFAULT_PRIORITY,
                variant=variant,
            )
        except InvalidValue:
            rest.append(run.id)
            continue
        writes += _fan_writes(fan, conversation_id, tenant)
        last = index + 1 >= len(sequence.steps)
        next_due = None if last else step_due(sequence.steps[index + 1], now, sequence.time_zone)
        run.record_step(
            step=index, message_id=message.message_id, now=now, next_due=next_due, variant=variant
        )
        writes += [stream_write(message, "message"), stream_write(run, STREAM_TYPE)]
        outbox.append(outbox_entry(message, ctx))
        queued.append(
            StepQueued(
                tenant=tenant,
                sequence_id=sequence.sequence_id,
                step=index,
                message_id=message.message_id,
                queue=message.queue_name(),
                completed=last,
                stream_id=run.id,
            )
        )
    if not writes:
        return [], None
    try:
        positions = await store.append_all(writes, metadata=ctx.metadata(), outbox=outbox)
    except ConcurrencyError:
        rest += [q.stream_id for q in queued]
        return [], None
    return queued, positions[-1]


async def _auto_prices(
    plan: list[tuple[Enrolment, Seq, Fan]], tenant: str, pricing: PricingCounts
) -> dict[str, int]:
    """The price of each run whose due step is priced "auto", by run: one read of the counts
    for the whole batch."""
    auto = [(run, fan) for run, seq, fan in plan if seq.steps[run.next_step].auto_price]
    if not auto:
        return {}
    account, fans = await pricing.for_fans(tenant, [fan.fan_id for _, fan in auto])
    return {
        run.id: priced(
            account, fans.get(fan.fan_id, []), tenant, step_message_id(run.id, run.next_step)
        ).price_cents
        for run, fan in auto
    }


def _fan_writes(fan: Fan, conversation_id: int, tenant: str) -> list[StreamWrite]:
    if fan.conversation_id is not None:
        return [StreamWrite(fan.id, "fan", [], fan.version)]  # held: not deleted meanwhile
    conversation = Conversation.start(
        conversation_id=conversation_id, tenant=tenant, fan_id=fan.fan_id, platform=fan.platform
    )
    fan.open_conversation(conversation_id)
    return [stream_write(fan, "fan"), stream_write(conversation, "conversation")]


def _plain(run: Enrolment, sequence: Any, fan: Any) -> bool:
    """Whether the fast path may send the run's step: a live sequence with that step, a fan."""
    return (
        isinstance(sequence, Seq)
        and sequence.status == "active"
        and run.next_step < len(sequence.steps)
        and isinstance(fan, Fan)
        and not fan.deleted
    )


def _replayed(streams: dict[str, list[RecordedEvent]], tenant: str) -> dict[str, Any]:
    found: dict[str, Any] = {}
    for stream_id, recorded in streams.items():
        if not recorded or recorded[0].metadata.tenant != tenant:
            continue
        aggregate: Any = None
        for item in recorded:
            aggregate = item.event.mutate(aggregate)
        found[stream_id] = aggregate
    return found
