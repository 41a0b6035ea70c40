"""Campaign fan-out: queue the campaign's messages, a chunk of fans at a time.

One chunk is one transaction: every message's events and outbox row, the conversations opened
for fans who had none, and the campaign's ``ChunkQueued`` moving its cursor past the chunk. The
campaign stream's expected version makes two workers (or a worker restarted after a crash)
unable to queue the same chunk twice; message ids derived from (campaign id, fan id) make it
impossible even if that guard were bypassed: a fan's message can be queued only once.

The chunk's fans come from the fans read model (fast: one query per chunk, no stream loads).
A fan whose row was stale (it opened a conversation since) fails the chunk's version checks;
the chunk is then retried once the view has caught up, and as a last resort queued message by
message through the same command as a one-to-one send, which reads every stream.

Also here: what the sender and the campaign worker do with the messages of a paused or
cancelled campaign (hold, release, cancel).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Literal

import msgspec

from application.auto_price import NO_EVIDENCE, PricingCounts, priced
from application.campaigns import Audience, AudienceChunk, Recipient, load_campaign
from application.context import CommandContext
from application.errors import ConcurrencyError, MessageIdReused
from application.messages import (
    MessageChanged,
    QueueMessage,
    append_with_outbox,
    handle_message,
    outbox_entry,
    queue_message,
    stream_write,
)
from application.ports import EventStore, IdAllocator, OutboxEntry, StreamWrite
from application.streams import retry_on_conflict
from domain.campaign import Campaign, campaign_stream_id, render
from domain.conversation import Conversation
from domain.errors import InvalidValue
from domain.events import EVENT_NAMES
from domain.fan import Fan, fan_stream_id
from domain.message import HIGH_PRIORITY, Message
from domain.platforms import PlatformCannotMessage, check_can_message

_CAMPAIGN_MESSAGES = uuid.UUID("7c1d7c0e-3f5a-4b1e-9a53-2b8d2f0b6c11")
CHUNK_ATTEMPTS = 3


def campaign_message_id(campaign_id: int, fan_id: int) -> str:
    """The one message a campaign may send a fan."""
    return str(uuid.uuid5(_CAMPAIGN_MESSAGES, f"{campaign_id}:{fan_id}"))


class ChunkResult(msgspec.Struct, frozen=True, kw_only=True):
    campaign_id: int
    queued: int
    skipped: int
    finished: bool
    position: int
    campaign: Campaign  # as saved with the chunk: the next chunk may start from it
    # Messages this call recorded for the first time (``queued`` also counts, on the slow
    # path, messages an interrupted earlier try had recorded): what the queued metric adds.
    created: int = 0
    # Fans skipped for a reason worth an operator's look: (fan id, reason).
    skipped_fans: tuple[tuple[int, str], ...] = ()
    # The pass that finished was an auto-winner test's portion: the rest waits for the winner.
    awaiting_winner: bool = False


class FanOutStalled(msgspec.Struct, frozen=True, kw_only=True):
    """The campaign has work but no chunk could be queued in ``attempts`` tries."""

    campaign_id: int
    attempts: int
    reason: str


async def fan_out_chunk(
    campaign_id: int,
    *,
    store: EventStore,
    audience: Audience,
    ids: IdAllocator,
    chunk_size: int = 500,
    now: datetime | None = None,
    attempts: int = CHUNK_ATTEMPTS,
    loaded: Campaign | None = None,
    pricing: PricingCounts | None = None,
) -> ChunkResult | None:
    """``fan_out_step``, for a caller that leaves a chunk it could not queue to the worker."""
    step = await fan_out_step(
        campaign_id,
        store=store,
        audience=audience,
        ids=ids,
        chunk_size=chunk_size,
        now=now,
        attempts=attempts,
        loaded=loaded,
        pricing=pricing,
    )
    return step if isinstance(step, ChunkResult) else None


async def fan_out_step(
    campaign_id: int,
    *,
    store: EventStore,
    audience: Audience,
    ids: IdAllocator,
    chunk_size: int = 500,
    now: datetime | None = None,
    attempts: int = CHUNK_ATTEMPTS,
    loaded: Campaign | None = None,
    pricing: PricingCounts | None = None,
) -> ChunkResult | FanOutStalled | None:
    """Queue the campaign's next chunk; None if it has nothing to queue now (paused, done,
    cancelled, scheduled later); FanOutStalled if, after ``attempts``, it could not.
    ``loaded``: the campaign as the caller last saved it (a launch, the previous chunk),
    saving a reload of its stream, whose launch event may hold 100,000 ids; if it has moved
    on since (paused, another worker), the chunk's expected version fails and the next
    attempt reads the stream. ``pricing``: what a campaign priced "auto" prices each
    recipient's message from (without it, from no evidence: the model's prior)."""
    tried = 0

    async def attempt() -> ChunkResult | None:
        nonlocal tried
        tried += 1
        async with audience.turn(campaign_id):
            if loaded is not None and tried == 1:
                campaign = loaded
            else:
                campaign, _ = await load_campaign(store, campaign_id, tenant=None)
            if not campaign.sending:
                return None
            if campaign.scheduled_at is not None and campaign.scheduled_at > (now or _now()):
                return None
            chunk = await audience.chunk(campaign, after=campaign.cursor, limit=chunk_size)
            if tried < CHUNK_ATTEMPTS:
                return await _queue_chunk(campaign, chunk, store, ids, pricing)
            return await _queue_one_by_one(campaign, chunk, store, ids, pricing)

    async def catch_up(_: ConcurrencyError) -> None:
        # The campaign moved (paused, another worker) or a fan row was stale: the next try
        # reads the campaign again, from a view that has caught up.
        await audience.catch_up()

    try:
        return await retry_on_conflict(attempt, tries=attempts, before_retry=catch_up)
    except ConcurrencyError as error:
        reason = str(error) or type(error).__name__
        return FanOutStalled(campaign_id=campaign_id, attempts=attempts, reason=reason)


async def _queue_chunk(
    campaign: Campaign,
    chunk: AudienceChunk,
    store: EventStore,
    ids: IdAllocator,
    pricing: PricingCounts | None,
) -> ChunkResult:
    ctx = _worker_context(campaign)
    prices = await _auto_prices(campaign, _this_pass(campaign, chunk), pricing)
    fresh = [r for r in _this_pass(campaign, chunk) if r.conversation_id is None]
    conversation_ids = iter(await ids.next_ids("conversation", len(fresh)) if fresh else [])
    writes: list[StreamWrite] = []
    outbox: list[OutboxEntry] = []
    skipped = 0
    skipped_fans: list[tuple[int, str]] = []
    for recipient in _this_pass(campaign, chunk):
        refused = _cannot_message(recipient)
        if refused is not None:
            skipped += 1
            skipped_fans.append((recipient.fan_id, refused))
            continue
        conversation_id = recipient.conversation_id
        if conversation_id is None:
            conversation_id = next(conversation_ids)
            writes += _open_conversation(recipient, conversation_id, campaign.tenant)
        try:
            message = _message(campaign, recipient, conversation_id, prices.get(recipient.fan_id))
        except InvalidValue:  # the rendered text breaks a rule (too long): this fan is skipped
            skipped += 1
            continue
        writes.append(stream_write(message, "message"))
        outbox.append(outbox_entry(message, ctx))
    return await _record_chunk(
        campaign,
        chunk,
        len(outbox),
        skipped,
        writes,
        outbox,
        store,
        ctx,
        tuple(skipped_fans),
        created=len(outbox),
    )


async def _queue_one_by_one(
    campaign: Campaign,
    chunk: AudienceChunk,
    store: EventStore,
    ids: IdAllocator,
    pricing: PricingCounts | None,
) -> ChunkResult:
    """The slow path: each message through the one-to-one command (idempotent by its id),
    then the chunk recorded on its own."""
    ctx = _worker_context(campaign)
    queued = skipped = created = 0
    skipped_fans: list[tuple[int, str]] = []
    for recipient in _this_pass(campaign, chunk):
        refused = _cannot_message(recipient)
        if refused is not None:
            skipped += 1
            skipped_fans.append((recipient.fan_id, refused))
            continue
        variant = campaign.variant_for(recipient.fan_id)
        template, price_cents, attachments = campaign.template_for(variant)
        cmd = QueueMessage(
            recipient_id=recipient.fan_id,
            content=_render(template, recipient),
            attachments=attachments,
            price_cents=price_cents,
            auto_price=campaign.auto_price,
            priority=campaign.priority,
            message_id=campaign_message_id(campaign.campaign_id, recipient.fan_id),
            campaign_id=campaign.campaign_id,
            variant=variant,
            to_rest=campaign.winner is not None,
        )
        try:
            accepted = await queue_message(
                cmd, ctx, store=store, ids=ids, pricing=pricing or NO_EVIDENCE
            )
            queued += 1
            created += accepted.created
        except InvalidValue:
            skipped += 1
        except MessageIdReused as error:
            skipped += 1
            skipped_fans.append((recipient.fan_id, str(error)))
    return await _record_chunk(
        campaign, chunk, queued, skipped, [], [], store, ctx, tuple(skipped_fans), created=created
    )


async def _record_chunk(
    campaign: Campaign,
    chunk: AudienceChunk,
    queued: int,
    skipped: int,
    writes: list[StreamWrite],
    outbox: list[OutboxEntry],
    store: EventStore,
    ctx: CommandContext,
    skipped_fans: tuple[tuple[int, str], ...] = (),
    *,
    created: int,
) -> ChunkResult:
    # Fans gone since launch are counted by the pass that reaches every fan's slot: the only
    # one, or an auto-winner test's second (so the test pass leaves them to it).
    gone = 0 if campaign.auto_winner and campaign.winner is None else chunk.skipped
    if chunk.cursor > campaign.cursor:
        campaign.record_chunk(
            cursor=chunk.cursor,
            queued=queued,
            skipped=skipped + gone,
            skipped_fans=skipped_fans,
        )
    if chunk.last:
        campaign.finish_fan_out()
    positions = await store.append_all(
        [*writes, stream_write(campaign, "campaign")], metadata=ctx.metadata(), outbox=outbox
    )
    return ChunkResult(
        campaign_id=campaign.campaign_id,
        queued=queued,
        skipped=skipped + gone,
        finished=chunk.last,
        position=positions[-1],
        campaign=campaign,
        skipped_fans=skipped_fans,
        created=created,
        awaiting_winner=campaign.awaiting_winner,
    )


async def _auto_prices(
    campaign: Campaign, recipients: list[Recipient], pricing: PricingCounts | None
) -> dict[int, int]:
    """Each recipient's price, for a campaign priced "auto": decided here, once, and recorded
    on its message (whose id is derived, so a replayed chunk meets the recorded one)."""
    if not campaign.auto_price or not recipients:
        return {}
    fan_ids = [r.fan_id for r in recipients]
    account, fans = await (pricing or NO_EVIDENCE).for_fans(campaign.tenant, fan_ids)
    return {
        fan_id: priced(
            account,
            fans.get(fan_id, []),
            campaign.tenant,
            campaign_message_id(campaign.campaign_id, fan_id),
        ).price_cents
        for fan_id in fan_ids
    }


def _message(
    campaign: Campaign, recipient: Recipient, conversation_id: int, auto_price: int | None = None
) -> Message:
    variant = campaign.variant_for(recipient.fan_id)
    template, price_cents, attachments = campaign.template_for(variant)
    if auto_price is not None:
        price_cents = auto_price
    return Message.queue(
        message_id=campaign_message_id(campaign.campaign_id, recipient.fan_id),
        tenant=campaign.tenant,
        conversation_id=conversation_id,
        fan_id=recipient.fan_id,
        content=_render(template, recipient),
        price_cents=price_cents,
        attachments=attachments,
        priority=campaign.priority,
        campaign_id=campaign.campaign_id,
        sent_by=campaign.launched_by,
        variant=variant,
        to_rest=campaign.winner is not None,
        platform=recipient.platform,
    )


def _cannot_message(recipient: Recipient) -> str | None:
    """Why no message can go to ``recipient`` on their platform (a Patreon member: its API has
    no direct messages), named per fan in the campaign's skips; None if one can."""
    try:
        check_can_message(recipient.platform, recipient.fan_id, configured=None)
    except PlatformCannotMessage as error:
        return f"platform-cannot-message: {error.message}"
    return None


def _this_pass(campaign: Campaign, chunk: AudienceChunk) -> list[Recipient]:
    """The chunk's fans this pass of the fan-out sends to (all but in an auto-winner test)."""
    return [r for r in chunk.recipients if campaign.in_this_pass(r.fan_id)]


def _render(template: str, recipient: Recipient) -> str:
    return render(template, name=recipient.name, handle=recipient.handle)


def _open_conversation(
    recipient: Recipient, conversation_id: int, tenant: str
) -> list[StreamWrite]:
    conversation = Conversation.start(
        conversation_id=conversation_id,
        tenant=tenant,
        fan_id=recipient.fan_id,
        platform=recipient.platform,
    )
    opened = Fan.conversation_opened_at(recipient.fan_id, recipient.version, conversation_id)
    return [
        StreamWrite(fan_stream_id(recipient.fan_id), "fan", [opened], recipient.version),
        stream_write(conversation, "conversation"),
    ]


def _worker_context(campaign: Campaign) -> CommandContext:
    return CommandContext(
        tenant=campaign.tenant, actor="campaign-worker", correlation_id=campaign.id
    ).acting_for(campaign.launched_by)


def _now() -> datetime:
    return datetime.now(UTC)


# -- the messages of a paused or cancelled campaign ----------------------------------------

# The events that start and stop a launched campaign's sending, newest first decides.
_STOPPED_BY: dict[str, Literal["paused", "cancelled"]] = {
    EVENT_NAMES[Campaign.Paused]: "paused",
    EVENT_NAMES[Campaign.Cancelled]: "cancelled",
}
_CONTROL_EVENTS = (*_STOPPED_BY, EVENT_NAMES[Campaign.Resumed])


async def campaign_stopped(
    store: EventStore, campaign_id: int
) -> Literal["paused", "cancelled"] | None:
    """Whether the campaign's messages must not go out now: "paused", "cancelled", or None.

    Asked of the event store, not of the campaigns view: the pause's event is committed before
    its 200 is sent, while the view shows it only once its projector gets there."""
    latest = await store.latest_event_type(campaign_stream_id(campaign_id), _CONTROL_EVENTS)
    return None if latest is None else _STOPPED_BY.get(latest)


async def hold_message(
    message_id: str, reason: str, ctx: CommandContext, *, store: EventStore
) -> bool:
    """The sender took it off the queue unsent because its campaign is paused."""
    return await _decide(store, message_id, ctx, lambda m: m.hold(reason))


async def cancel_message(
    message_id: str, reason: str, ctx: CommandContext, *, store: EventStore
) -> bool:
    return await _decide(store, message_id, ctx, lambda m: m.cancel(reason))


async def release_message(
    message_id: str,
    ctx: CommandContext,
    *,
    store: EventStore,
    high_priority_from: int = HIGH_PRIORITY,
) -> MessageChanged | None:
    """Its campaign resumed: back on its way, with a new outbox row."""

    async def decide(message: Message) -> bool:
        return message.release()

    async def append(message: Message, released: bool) -> int | None:
        if not released:
            return None
        return await append_with_outbox(store, message, ctx, high_priority_from)

    handled = await handle_message(store, message_id, decide, ctx, append=append)
    return MessageChanged(handled.aggregate, handled.position) if handled.appended else None


async def _decide(
    store: EventStore, message_id: str, ctx: CommandContext, decide: Callable[[Message], bool]
) -> bool:
    async def decide_on(message: Message) -> bool:
        return decide(message)

    return (await handle_message(store, message_id, decide_on, ctx)).appended
