"""What the platform tells us happened: a fan read a message, bought a PPV message, or wrote.

Each webhook event is processed once: its id is recorded in the same transaction as the
events it causes, so a redelivered webhook changes nothing.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Awaitable, Callable
from typing import Any, Literal

import msgspec

from application.context import CommandContext
from application.errors import NotFound
from application.message_streams import legacy_message, load_message
from application.messages import conversation_writes, live_recipient, stream_write
from application.ports import EventStore, IdAllocator, StreamWrite
from application.streams import handle, load
from domain.errors import InvalidValue
from domain.fan import Fan, fan_stream_id
from domain.inbound import InboundMessage
from domain.message import Message, canonical_message_id, message_stream_id

WebhookType = Literal[
    "message.read",
    "message.delivered",
    "message.clicked",
    "message.purchased",
    "message.received",
]
_INBOUND_IDS = uuid.UUID("0f6f2d4e-8b7a-4d55-9b1e-3f8d1c2e7a90")


class WebhookEvent(msgspec.Struct, frozen=True, kw_only=True, rename="camel"):
    id: str
    type: WebhookType
    account: str
    data: dict[str, Any]


async def handle_webhook(
    event: WebhookEvent, ctx: CommandContext, *, store: EventStore, ids: IdAllocator
) -> int | None:
    """Apply one webhook event for tenant ``ctx.tenant``; returns the last position, or None
    if the event had already been processed (AlreadyProcessed is raised by the store)."""
    once = f"webhook:{ctx.tenant}:{event.id}"
    if event.type == "message.read":
        return await _change(_text(event.data, "messageId"), Message.mark_read, ctx, store, once)
    if event.type == "message.delivered":
        decide = Message.confirm_delivery
        return await _change(_text(event.data, "messageId"), decide, ctx, store, once)
    if event.type == "message.clicked":
        decide = Message.record_click
        return await _change(_text(event.data, "messageId"), decide, ctx, store, once)
    if event.type == "message.purchased":
        amount = event.data.get("amountCents")
        if isinstance(amount, bool) or not isinstance(amount, int):
            raise InvalidValue("amount_cents", "must be an integer number of cents")
        return await _purchased(_text(event.data, "messageId"), amount, ctx, store, once)
    return await _received(event.data, ctx, store, ids, once)


async def _change(
    message_id: str,
    decide: Callable[[Message], bool],
    ctx: CommandContext,
    store: EventStore,
    once: str,
) -> int | None:
    async def decide_on(message: Message) -> list[Any]:
        decide(message)
        return [message]

    return await _handle_message(store, message_id, decide_on, ctx, once)


async def _purchased(
    message_id: str, amount: int, ctx: CommandContext, store: EventStore, once: str
) -> int | None:
    async def decide(message: Message) -> list[Any]:
        if not message.purchase(amount):
            return [message]
        fan, _ = await load(store, fan_stream_id(message.fan_id), tenant=ctx.tenant)
        fan.record_purchase(amount, message_id)
        return [message, fan]

    return await _handle_message(store, message_id, decide, ctx, once)


async def _received(
    data: dict[str, Any], ctx: CommandContext, store: EventStore, ids: IdAllocator, once: str
) -> int | None:
    fan_id = data.get("fanId")
    if isinstance(fan_id, str) and fan_id.isdigit():
        fan_id = int(fan_id)
    if isinstance(fan_id, bool) or not isinstance(fan_id, int):
        raise InvalidValue("fan_id", "must be a fan id")
    platform_id = _text(data, "platformMessageId")
    text = _text(data, "text")
    # The platform's id names the message: the same message reported twice (under two
    # webhook ids) is still one message.
    message_id = str(uuid.uuid5(_INBOUND_IDS, f"{ctx.tenant}:{platform_id}"))

    async def read() -> tuple[Fan | None, int]:
        if await legacy_message(store, message_id, tenant=ctx.tenant):
            return None, 0  # recorded before message ids were scoped by tenant: received
        return await live_recipient(store, fan_id, ctx, field="fan_id"), 0

    async def decide(fan: Fan | None) -> list[StreamWrite]:
        if fan is None:
            return []
        writes = await conversation_writes(fan, ctx, ids)
        assert fan.conversation_id is not None
        inbound = InboundMessage.receive(
            message_id=message_id,
            tenant=ctx.tenant,
            conversation_id=fan.conversation_id,
            fan_id=fan.fan_id,
            content=text,
            platform_message_id=platform_id,
            platform=fan.platform,
        )
        # Its id names one message of the tenant: an outgoing one holding it (in a stream
        # apart, domain.inbound) refuses it, as one stream would.
        outgoing = StreamWrite(message_stream_id(ctx.tenant, message_id), "message", [], 0)
        return [*writes, outgoing, stream_write(inbound, "message")]

    async def append(_: Fan | None, writes: list[StreamWrite]) -> int | None:
        return await _append(store, [], ctx, once, writes)

    handled = await handle(
        store,
        fan_stream_id(fan_id),
        decide,
        ctx,
        stream_type="fan",
        load_stream=read,
        append=append,
    )
    return handled.position if handled.appended else None


async def _handle_message(
    store: EventStore,
    message_id: str,
    decide: Callable[[Message], Awaitable[list[Any]]],
    ctx: CommandContext,
    once: str,
) -> int | None:
    """Read the outgoing message, decide, append what each aggregate ``decide`` names
    decided, claiming ``once``."""

    async def append(message: Message, aggregates: list[Any]) -> int | None:
        # In the name of the member who sent the message: a purchase is that member's.
        return await _append(store, aggregates, ctx.acting_for(message.sent_by), once)

    handled = await handle(
        store,
        message_stream_id(ctx.tenant, message_id),
        decide,
        ctx,
        stream_type="message",
        load_stream=lambda: _message(store, message_id, ctx),
        append=append,
    )
    return handled.position


async def _message(store: EventStore, message_id: str, ctx: CommandContext) -> tuple[Message, int]:
    key = canonical_message_id(message_id)
    try:
        message, position = await load_message(store, key, tenant=ctx.tenant)
    except NotFound:
        raise InvalidValue("message_id", f"no message {key} for this account") from None
    if not isinstance(message, Message):
        raise InvalidValue("message_id", f"message {key} is not an outgoing message")
    return message, position


async def _append(
    store: EventStore,
    aggregates: list[Any],
    ctx: CommandContext,
    once: str,
    writes: list[StreamWrite] | None = None,
) -> int | None:
    """Append what the aggregates decided (after ``writes`` already made), claiming ``once``."""
    writes = [
        *(writes or []),
        *(stream_write(a, _stream_type(a)) for a in aggregates if a.pending_events),
    ]
    # Even with nothing to append the event id is claimed: a replay must be seen as one.
    positions = await store.append_all(writes, metadata=ctx.metadata(), once=once)
    return positions[-1] if positions else None


def _stream_type(aggregate: Any) -> str:
    return "fan" if isinstance(aggregate, Fan) else "message"


def _text(data: dict[str, Any], key: str) -> str:
    value = data.get(key)
    if not isinstance(value, str) or not value:
        raise InvalidValue(re.sub("([A-Z])", r"_\1", key).lower(), "is required")
    return value
