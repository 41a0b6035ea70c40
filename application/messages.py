"""Messaging commands: queue a message (the reference's sendMessage), queue up to ten
(sendBatch), start a conversation, mark read, retry; and the relay's outcome commands.

Queueing appends the message's events and its outbox row in one transaction, so a message is
either accepted and certain to reach the queue, or not accepted at all. The message id is the
idempotency key, in the tenant's own namespace: queueing an id that exists answers what the
first call answered if it asks for the same message, and is refused (409) if it asks for
another, so that a second message is never reported queued while the first is kept.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any, TypeVar

import msgspec

from application.auto_price import PricingCounts, price_for
from application.context import CommandContext
from application.errors import ConcurrencyError, MessageIdReused, NotFound
from application.message_streams import legacy_message, load_message, recorded_message
from application.ports import EventStore, IdAllocator, OutboxEntry, RecordedEvent, StreamWrite
from application.scripts import live_script
from application.sensitive_words import SensitiveWordsCache
from application.streams import Handled, handle, load, retry_on_conflict, save
from domain.conversation import Conversation
from domain.errors import Gone, IllegalState, InvalidValue
from domain.fan import Fan, fan_stream_id
from domain.inbound import inbound_stream_id
from domain.message import (
    DEFAULT_PRIORITY,
    HIGH_PRIORITY,
    Message,
    attachment_type_of,
    canonical_message_id,
    message_stream_id,
    queue_for,
)
from domain.platforms import check_can_message

MAX_BATCH = 10
R = TypeVar("R")


class QueueMessage(msgspec.Struct, frozen=True, kw_only=True):
    """With ``script_id``, what is not given (content None, price None, no media) comes
    from that script, its content rendered for the recipient."""

    recipient_id: int
    content: str | None = None
    media_urls: tuple[str, ...] = ()
    attachments: tuple[tuple[str, str], ...] = ()
    price_cents: int | None = 0
    # ``priceCents: "auto"``: the pricing bandit decides the price when the message is queued
    # (application/auto_price.py); ``price_cents`` is then ignored.
    auto_price: bool = False
    priority: int = DEFAULT_PRIORITY
    message_id: str | None = None
    campaign_id: int | None = None
    script_id: int | None = None
    high_priority_from: int = HIGH_PRIORITY
    # A campaign's A/B test variant (domain.message.Message.Queued).
    variant: int | None = None
    to_rest: bool = False
    # The platforms this deployment has a gateway for: a message to a fan on another is
    # refused (domain.platforms). None: not asked (the campaign worker, whose fan-out skips
    # what no platform can carry, and whose sender fails what no gateway here speaks to).
    platforms: frozenset[str] | None = None


class MessageAccepted(msgspec.Struct, frozen=True, kw_only=True):
    message_id: str
    conversation_id: int
    queue: str
    queued_at: datetime
    position: int
    # False when the message id had been queued before: nothing new was recorded.
    created: bool = True


class BatchItemResult(msgspec.Struct, frozen=True, kw_only=True):
    message_id: str | None
    accepted: MessageAccepted | None = None
    error: str | None = None
    field: str | None = None


class StartConversation(msgspec.Struct, frozen=True, kw_only=True):
    fan_id: int
    platform: str | None = None


class MessageCommand(msgspec.Struct, frozen=True, kw_only=True):
    message_id: str


class MessageChanged(msgspec.Struct, frozen=True):
    message: Message
    position: int


class KnownRecipient(msgspec.Struct, frozen=True):
    """What queueing a message needs of its recipient, read at the fan stream's ``version``."""

    fan_id: int
    conversation_id: int
    version: int
    platform: str = "onlyfans"


class RecipientCache:
    """Recipients recently read live, with their conversation open, per tenant.

    A send to one of them skips reading the fan's stream: its append holds that stream at the
    version read (a write without events), in the statement that records the message. A fan
    changed since (deleted, erased, edited) fails that check; the entry is dropped and the fan
    read afresh. So the cache can cost a send a second try, never let through one that a fresh
    read would refuse. It holds ids and versions only, no personal data."""

    def __init__(self, ttl_seconds: float = 60.0, limit: int = 100_000) -> None:
        self._ttl = ttl_seconds
        self._limit = limit
        self._entries: dict[tuple[str, int], tuple[float, KnownRecipient]] = {}

    def get(self, tenant: str, fan_id: int) -> KnownRecipient | None:
        hit = self._entries.get((tenant, fan_id))
        if hit is None or hit[0] <= time.monotonic():
            return None
        return hit[1]

    def remember(self, tenant: str, recipient: KnownRecipient) -> None:
        if len(self._entries) >= self._limit:
            self._entries.clear()
        self._entries[(tenant, recipient.fan_id)] = (time.monotonic() + self._ttl, recipient)

    def forget(self, tenant: str, fan_id: int) -> None:
        self._entries.pop((tenant, fan_id), None)


async def queue_message(
    cmd: QueueMessage,
    ctx: CommandContext,
    *,
    store: EventStore,
    ids: IdAllocator,
    recipients: RecipientCache | None = None,
    words: SensitiveWordsCache | None = None,
    pricing: PricingCounts | None = None,
) -> MessageAccepted:
    """``words``: refuse content holding one of the account's sensitive words (the campaign
    fan-out passes none: a campaign's content was checked when it was written). ``pricing``:
    what an ``auto_price`` message is priced from."""
    message_id = _message_id(cmd.message_id)
    if cmd.script_id is not None:
        try:
            cmd = await from_script(cmd, ctx, store)
        except (InvalidValue, NotFound, Gone):
            recorded = (
                await recorded_message(store, message_id, tenant=ctx.tenant)
                if cmd.message_id is not None
                else None
            )
            if not recorded:
                raise
            # The script or the fan has gone since this id was queued from it: nothing is
            # left to render, and the message as queued stands for what its script gave.
            return _existing(recorded, _as_queued_from_script(cmd, recorded[0].event), message_id)
    if cmd.content is None:
        raise InvalidValue("content", "is required unless a script gives it")
    if cmd.auto_price:
        cmd = await _auto_priced(cmd, message_id, ctx, pricing)

    async def attempt() -> MessageAccepted:
        if cmd.message_id is not None:
            # An id chosen by the caller may name a message recorded before ids were scoped
            # by tenant, in a stream the append below would not meet. A generated id cannot.
            legacy = await legacy_message(store, message_id, tenant=ctx.tenant)
            if legacy:
                return _existing(legacy, cmd, message_id)
        # Optimistic: a new id is the common case, so the stream is not read first. A message
        # id queued before shows as a conflict (or, if the fan has gone since, a refusal), and
        # is then answered as the first call was, if it asked for the same message.
        try:
            return await _queue_new(cmd, message_id, ctx, store, ids, recipients, words)
        except (ConcurrencyError, InvalidValue) as error:
            if words is not None and isinstance(error, ConcurrencyError):
                words.forget(ctx.tenant)  # the list may be what moved on
            recorded = await recorded_message(store, message_id, tenant=ctx.tenant)
            if recorded:
                return _existing(recorded, cmd, message_id)
            raise

    return await retry_on_conflict(attempt, retry=True)


async def _auto_priced(
    cmd: QueueMessage, message_id: str, ctx: CommandContext, pricing: PricingCounts | None
) -> QueueMessage:
    """``cmd`` with the bandit's price for its recipient. The price is recorded on the
    message: a repeat of its id answers what was queued whatever is sampled now (see
    ``_differences``), and the sender sends the recorded price."""
    if pricing is None:
        raise InvalidValue("price_cents", '"auto" is not available here')
    chosen = await price_for(pricing, ctx.tenant, cmd.recipient_id, message_id)
    return msgspec.structs.replace(cmd, price_cents=chosen.price_cents)


async def _queue_new(
    cmd: QueueMessage,
    message_id: str,
    ctx: CommandContext,
    store: EventStore,
    ids: IdAllocator,
    recipients: RecipientCache | None,
    words: SensitiveWordsCache | None,
) -> MessageAccepted:
    holds = []
    if words is not None:
        # Before any stream is touched: a refused message records nothing.
        listed = await words.of(store, ctx.tenant)
        listed.refuse(cmd.content or "")
        holds.append(listed.hold())
    known = recipients.get(ctx.tenant, cmd.recipient_id) if recipients is not None else None
    if recipients is not None and known is not None:
        check_can_message(known.platform, known.fan_id, configured=cmd.platforms)
        try:
            return await _append_message(cmd, message_id, ctx, store, known, [*holds])
        except ConcurrencyError:
            # The fan moved on since it was read (or the message id exists: the fresh path
            # below meets that conflict again, and the caller answers it).
            recipients.forget(ctx.tenant, cmd.recipient_id)
    fan = await live_recipient(store, cmd.recipient_id, ctx)
    # Before any stream is touched: a message no gateway here can carry records nothing.
    check_can_message(fan.platform, fan.fan_id, configured=cmd.platforms)
    writes = await conversation_writes(fan, ctx, ids)
    assert fan.conversation_id is not None
    # After conversation_writes the fan's version counts the event opening the conversation,
    # appended with the message.
    recipient = KnownRecipient(fan.fan_id, fan.conversation_id, fan.version, fan.platform)
    accepted = await _append_message(cmd, message_id, ctx, store, recipient, [*writes, *holds])
    if recipients is not None:
        recipients.remember(ctx.tenant, recipient)
    return accepted


async def _append_message(
    cmd: QueueMessage,
    message_id: str,
    ctx: CommandContext,
    store: EventStore,
    recipient: KnownRecipient,
    writes: list[StreamWrite],
) -> MessageAccepted:
    """Queue the message to ``recipient``, appended with ``writes`` (the fan's own, when the
    message opens its conversation, and any streams held); else the fan's stream is held at
    the version it was read at, so a fan deleted or erased meanwhile refuses the message
    instead of receiving it."""
    fan = fan_stream_id(recipient.fan_id)
    if not any(write.stream_id == fan for write in writes):
        writes = [StreamWrite(fan, "fan", [], recipient.version), *writes]
    if cmd.message_id is not None:
        # An id chosen by the caller may be a received message's, whose stream is apart
        # (domain.inbound): held at version 0, it refuses the id as one stream would.
        writes.append(StreamWrite(inbound_stream_id(ctx.tenant, message_id), "message", [], 0))
    message = Message.queue(
        message_id=message_id,
        tenant=ctx.tenant,
        conversation_id=recipient.conversation_id,
        fan_id=recipient.fan_id,
        content=cmd.content or "",
        price_cents=cmd.price_cents,
        attachments=[*cmd.attachments, *((attachment_type_of(u), u) for u in cmd.media_urls)],
        priority=cmd.priority,
        campaign_id=cmd.campaign_id,
        script_id=cmd.script_id,
        sent_by=ctx.member_id,
        variant=cmd.variant,
        to_rest=cmd.to_rest,
        platform=recipient.platform,
    )
    queued_at = message.created_on
    writes.append(stream_write(message, "message"))
    positions = await store.append_all(
        writes,
        metadata=ctx.metadata(),
        outbox=[outbox_entry(message, ctx, cmd.high_priority_from)],
    )
    return MessageAccepted(
        message_id=message_id,
        conversation_id=message.conversation_id,
        queue=message.queue_name(cmd.high_priority_from),
        queued_at=queued_at,
        position=positions[-1],
    )


async def queue_messages(
    cmds: list[QueueMessage],
    ctx: CommandContext,
    *,
    store: EventStore,
    ids: IdAllocator,
    recipients: RecipientCache | None = None,
    words: SensitiveWordsCache | None = None,
    pricing: PricingCounts | None = None,
) -> list[BatchItemResult]:
    """Each message is accepted or refused on its own: one bad message fails only itself. An
    id given twice in one batch is refused the second time, whatever it asks for: the caller
    meant two messages or made a mistake, and either way only one can be queued."""
    if len(cmds) > MAX_BATCH:
        raise InvalidValue("messages", f"at most {MAX_BATCH} messages per batch")
    results = []
    seen: set[str] = set()
    for cmd in cmds:
        try:
            if cmd.message_id is not None:
                chosen = canonical_message_id(cmd.message_id)
                if chosen in seen:
                    raise InvalidValue("message_id", f"{chosen} appears twice in this batch")
                seen.add(chosen)
            accepted = await queue_message(
                cmd, ctx, store=store, ids=ids, recipients=recipients, words=words, pricing=pricing
            )
            results.append(BatchItemResult(message_id=accepted.message_id, accepted=accepted))
        except InvalidValue as error:
            results.append(
                BatchItemResult(message_id=cmd.message_id, error=error.message, field=error.field)
            )
        except ConcurrencyError as error:  # the message id was used for another message
            results.append(
                BatchItemResult(message_id=cmd.message_id, error=str(error), field="message_id")
            )
        except (NotFound, Gone):  # its script: unknown, deleted or another account's
            results.append(
                BatchItemResult(
                    message_id=cmd.message_id,
                    error=f"script {cmd.script_id} is not a script of this account",
                    field="script_id",
                )
            )
    return results


def _as_queued_from_script(cmd: QueueMessage, queued: object) -> QueueMessage:
    """``cmd`` with what it left to its script taken from the message ``queued``."""
    if not isinstance(queued, Message.Queued):
        return cmd  # a received message's id: _existing refuses it
    media_given = bool(cmd.media_urls or cmd.attachments)
    return msgspec.structs.replace(
        cmd,
        content=queued.content if cmd.content is None else cmd.content,
        price_cents=queued.price_cents if cmd.price_cents is None else cmd.price_cents,
        attachments=cmd.attachments if media_given else tuple(queued.attachments or ()),
    )


async def from_script(cmd: QueueMessage, ctx: CommandContext, store: EventStore) -> QueueMessage:
    """``cmd`` with what it leaves out taken from its script, the content rendered for its
    recipient (the fan as the log has it now). NotFound for a script that is not the
    account's; the rendered content is then the message's body, for a repeat of its id too."""
    assert cmd.script_id is not None
    script = await live_script(store, cmd.script_id, ctx)
    content = cmd.content
    if content is None:
        fan = await live_recipient(store, cmd.recipient_id, ctx)
        content = script.render_for(name=fan.name, handle=fan.handle)
    media_given = bool(cmd.media_urls or cmd.attachments)
    return msgspec.structs.replace(
        cmd,
        content=content,
        price_cents=script.price_cents if cmd.price_cents is None else cmd.price_cents,
        attachments=cmd.attachments if media_given else script.attachments,
    )


async def start_conversation(
    cmd: StartConversation, ctx: CommandContext, *, store: EventStore, ids: IdAllocator
) -> tuple[int, int | None]:
    """The fan's conversation id (opened if need be), and the position if one was opened."""

    async def decide(fan: Fan) -> list[StreamWrite]:
        if cmd.platform is not None and cmd.platform != fan.platform:
            raise InvalidValue("platform", f"fan {fan.fan_id} is on {fan.platform}")
        return await conversation_writes(fan, ctx, ids)

    async def append(fan: Fan, writes: list[StreamWrite]) -> int | None:
        if not writes:
            return None
        return (await store.append_all(writes, metadata=ctx.metadata()))[-1]

    async def read() -> tuple[Fan, int]:
        return await live_recipient(store, cmd.fan_id, ctx, field="fan_id"), 0

    handled = await handle(
        store,
        fan_stream_id(cmd.fan_id),
        decide,
        ctx,
        stream_type="fan",
        load_stream=read,
        append=append,
    )
    assert handled.aggregate.conversation_id is not None
    return handled.aggregate.conversation_id, handled.position if handled.appended else None


async def retry_message(
    cmd: MessageCommand,
    ctx: CommandContext,
    *,
    store: EventStore,
    high_priority_from: int = HIGH_PRIORITY,
    at_attempt: int | None = None,
    unsettled_reason: str | None = None,
) -> MessageChanged:
    """A person puts a failed message back on its way: requeued, with a new outbox row.

    A redrive of a dead letter (application/dead_letters.py) passes the attempt its copy
    carried: a message retried since is not retried again for it (IllegalState). And a reason:
    a message that shows no outcome (its sender died before recording one) is recorded failed
    for it first, in the same append, at the version read, so nothing can slip in between."""

    async def decide(message: Message) -> bool:
        # The queue body's "attempt" is the message's round (times put on its way), not its
        # tries at the platform.
        if at_attempt is not None and message.rounds > at_attempt:
            raise IllegalState(
                f"message {message.message_id} was retried since attempt {at_attempt}"
            )
        if unsettled_reason is not None and message.status in ("queued", "dispatched"):
            message.fail(unsettled_reason)
        message.retry()
        return True

    handled = await handle_message(
        store,
        cmd.message_id,
        decide,
        ctx,
        append=lambda message, _: append_with_outbox(store, message, ctx, high_priority_from),
    )
    return MessageChanged(handled.aggregate, handled.position)


async def mark_message_read(
    cmd: MessageCommand, ctx: CommandContext, *, store: EventStore
) -> MessageChanged:
    return await _change(store, cmd.message_id, ctx, lambda m: m.mark_read())


async def record_dispatched(
    message_id: str, queue: str, ctx: CommandContext, *, store: EventStore
) -> MessageChanged:
    """The relay put the message on the queue (a repeat records nothing)."""
    return await _change(store, message_id, ctx, lambda m: m.dispatch(queue))


async def record_all_dispatched(
    dispatched: list[tuple[str, int, str, CommandContext]], *, store: EventStore
) -> None:
    """Record many dispatches at once: (message id, version its outbox row was written at,
    queue, its context). One transaction for all; if any stream moved since (the sender
    recorded it sent already), each is recorded on its own instead."""
    # At the scoped stream: a message recorded before ids were scoped (its legacy stream) fails
    # the version check there and is recorded on its own below, where it is.
    writes = [
        StreamWrite(
            message_stream_id(ctx.tenant, message_id),
            "message",
            [Message.dispatched_at(message_stream_id(ctx.tenant, message_id), version, queue)],
            version,
            metadata=ctx.metadata(),
        )
        for message_id, version, queue, ctx in dispatched
    ]
    if not writes:
        return
    try:
        await store.append_all(writes, metadata=writes[0].metadata)  # type: ignore[arg-type]
    except ConcurrencyError:
        for message_id, _, queue, ctx in dispatched:
            await record_dispatched(message_id, queue, ctx, store=store)


async def record_failed(
    message_id: str,
    reason: str,
    ctx: CommandContext,
    *,
    store: EventStore,
    attempted: bool = False,
) -> MessageChanged:
    """Given up on after the last attempt: shows as failed until a person retries it.
    ``attempted``: it ends a try at the platform (counted in the message's attempts, even
    if the message was failed already: a relay gave up on a send that reached the queue)."""

    def decide(message: Message) -> bool:
        if message.fail(reason, attempted=attempted):
            return True
        return attempted and message.status == "failed" and message.attempt_failed(reason)

    return await _change(store, message_id, ctx, decide)


async def record_attempt_failed(
    message_id: str, reason: str, ctx: CommandContext, *, store: EventStore
) -> MessageChanged:
    """A try at the platform failed and the message will be tried again."""
    return await _change(store, message_id, ctx, lambda m: m.attempt_failed(reason))


async def record_sent(
    message_id: str, platform_message_id: str | None, ctx: CommandContext, *, store: EventStore
) -> MessageChanged:
    return await _change(store, message_id, ctx, lambda m: m.mark_sent(platform_message_id))


async def record_sent_on(
    message: Message, platform_message_id: str | None, ctx: CommandContext, *, store: EventStore
) -> None:
    """``record_sent`` for a message the caller has just loaded (the sender, which read it to
    drop duplicates): appended at that version, reloaded only if it moved on since (the relay
    recorded its dispatch in between)."""
    await _change(
        store,
        message.message_id,
        ctx,
        lambda m: m.mark_sent(platform_message_id),
        loaded=(message, 0),
    )


def outbox_entry(
    message: Message, ctx: CommandContext, high_priority_from: int = HIGH_PRIORITY
) -> OutboxEntry:
    """The queue message for the sender; content and media are sealed by the store."""
    return OutboxEntry(
        queue=message.queue_name(high_priority_from),
        message_id=message.message_id,
        stream_version=message.version,
        subject=fan_stream_id(message.fan_id),
        body={
            "messageId": message.message_id,
            "tenant": message.tenant,
            "recipientId": message.fan_id,
            "conversationId": message.conversation_id,
            "priceCents": message.price_cents,
            "priority": message.priority,
            "attempt": message.rounds,
            "campaignId": message.campaign_id,
            "correlationId": ctx.correlation_id,
            "platform": message.platform,
        }
        # Whose message it is: the relay and the sender record its events in that name.
        | ({"sentBy": message.sent_by} if message.sent_by is not None else {}),
        personal={
            "content": message.content,
            "media": [{"type": kind, "url": url} for kind, url in message.attachments],
        },
        attributes={"correlation_id": ctx.correlation_id}
        | ({"trace_id": ctx.trace_id} if ctx.trace_id else {}),
    )


async def _change(
    store: EventStore,
    message_id: str,
    ctx: CommandContext,
    change: Callable[[Message], object],
    *,
    loaded: tuple[Message, int] | None = None,
) -> MessageChanged:
    async def decide(message: Message) -> object:
        return change(message)

    handled = await handle_message(store, message_id, decide, ctx, loaded=loaded)
    return MessageChanged(handled.aggregate, handled.position)


async def handle_message(
    store: EventStore,
    message_id: str,
    decide: Callable[[Message], Awaitable[R]],
    ctx: CommandContext,
    *,
    append: Callable[[Message, R], Awaitable[int | None]] | None = None,
    loaded: tuple[Message, int] | None = None,
) -> Handled[R]:
    """``handle`` for ``ctx.tenant``'s message, wherever its stream is (message_streams); a
    process records what it decided in the name of the member who sent it."""

    async def save_message(message: Message, _: object) -> int | None:
        return await save(store, message, "message", ctx.acting_for(message.sent_by))

    return await handle(
        store,
        message_stream_id(ctx.tenant, message_id),
        decide,
        ctx,
        stream_type="message",
        load_stream=lambda: load_message(store, message_id, tenant=ctx.tenant),
        append=append or save_message,
        loaded=loaded,
    )


async def append_with_outbox(
    store: EventStore,
    message: Message,
    ctx: CommandContext,
    high_priority_from: int = HIGH_PRIORITY,
) -> int:
    """Append the message's events with its outbox row: it goes on its way (again)."""
    positions = await store.append_all(
        [stream_write(message, "message")],
        metadata=ctx.metadata(),
        outbox=[outbox_entry(message, ctx, high_priority_from)],
    )
    return positions[-1]


def _existing(recorded: list[RecordedEvent], cmd: QueueMessage, message_id: str) -> MessageAccepted:
    """The answer to a message id this tenant has used: the first answer again if the same
    message is asked for; else refused, naming what differs."""
    queued = recorded[0].event
    if not isinstance(queued, Message.Queued):
        raise MessageIdReused(f"message id {message_id} is already used by a received message")
    differs = _differences(queued, cmd)
    if differs:
        raise MessageIdReused(
            f"message id {message_id} was already used for a message with another"
            f" {', '.join(differs)}"
        )
    return MessageAccepted(
        message_id=message_id,
        conversation_id=queued.conversation_id,
        queue=queue_for(queued.priority, queued.campaign_id, cmd.high_priority_from),
        queued_at=queued.timestamp,
        position=recorded[0].position,
        created=False,
    )


def _differences(queued: Message.Queued, cmd: QueueMessage) -> list[str]:
    asked = [*cmd.attachments, *((attachment_type_of(u), u) for u in cmd.media_urls)]
    differs = []
    if queued.fan_id != cmd.recipient_id:
        differs.append("recipient")
    # Content and media read back as None once the fan is erased: nothing left to compare.
    if queued.content is not None and queued.content != cmd.content:
        differs.append("content")
    # "auto" asks for whatever price was decided when the id was first queued.
    if not cmd.auto_price and queued.price_cents != (cmd.price_cents or 0):
        differs.append("price")
    if queued.attachments is not None and [tuple(a) for a in queued.attachments] != [
        tuple(a) for a in asked
    ]:
        differs.append("media")
    if queued.priority != cmd.priority:
        differs.append("priority")
    if queued.campaign_id != cmd.campaign_id:
        differs.append("campaign")
    if queued.script_id != cmd.script_id:
        differs.append("script")
    return differs


async def live_recipient(
    store: EventStore, fan_id: int, ctx: CommandContext, *, field: str = "recipient_id"
) -> Fan:
    try:
        fan, _ = await load(store, fan_stream_id(fan_id), tenant=ctx.tenant)
    except NotFound:
        raise InvalidValue(field, f"fan {fan_id} is not a fan of this account") from None
    if fan.deleted:
        raise InvalidValue(field, f"fan {fan_id} was deleted")
    assert isinstance(fan, Fan)
    return fan


async def conversation_writes(fan: Fan, ctx: CommandContext, ids: IdAllocator) -> list[StreamWrite]:
    """Open the fan's one conversation if it has none yet: the writes to append with the
    command (the fan's stream records it, so two concurrent openers conflict)."""
    if fan.conversation_id is not None:
        return []
    conversation = Conversation.start(
        conversation_id=await ids.next_id("conversation"),
        tenant=ctx.tenant,
        fan_id=fan.fan_id,
        platform=fan.platform,
    )
    fan.open_conversation(conversation.conversation_id)
    return [stream_write(fan, "fan"), stream_write(conversation, "conversation")]


def stream_write(aggregate: Any, stream_type: str) -> StreamWrite:
    pending = aggregate.collect_events()
    return StreamWrite(aggregate.id, stream_type, pending, pending[0].originator_version - 1)


def _message_id(given: str | None) -> str:
    return str(uuid.uuid4()) if given is None else canonical_message_id(given)
