"""Inbound messages have streams of their own (``inbound-<tenant>:<uuid>``); those recorded
before, at ``message-<tenant>:<uuid>``, stay readable where they are. Either way a message id
names one message of a tenant. Given / When / Then, on the in-memory fakes."""

from __future__ import annotations

import dataclasses
import uuid

import pytest

from application.context import CommandContext
from application.errors import ConcurrencyError, MessageIdReused
from application.fans import CreateFan, create_fan
from application.message_streams import load_message
from application.messages import QueueMessage, queue_message
from application.webhooks import _INBOUND_IDS, WebhookEvent, handle_webhook
from domain.errors import InvalidValue
from domain.inbound import InboundMessage, inbound_stream_id
from domain.message import message_id_of, message_stream_id
from tests.support.fakes import CountingIds, InMemoryEventStore


async def a_fan(store: InMemoryEventStore, ids: CountingIds, ctx: CommandContext) -> int:
    return (await create_fan(CreateFan(name="Ann"), ctx, store=store, ids=ids)).fan.fan_id


def received(fan_id: int, platform_id: str = "of-in-1") -> WebhookEvent:
    return WebhookEvent(
        id=str(uuid.uuid4()),
        type="message.received",
        account="acct",
        data={"fanId": fan_id, "text": "hey", "platformMessageId": platform_id},
    )


async def an_old_inbound_message(
    store: InMemoryEventStore, ctx: CommandContext, fan_id: int
) -> str:
    """Given: an inbound message recorded as before, in the message- prefix."""
    message_id = str(uuid.uuid4())
    inbound = InboundMessage.receive(
        message_id=message_id,
        tenant=ctx.tenant,
        conversation_id=1,
        fan_id=fan_id,
        content="an old hello",
        platform_message_id="of-old",
    )
    [new] = inbound.collect_events()
    event = dataclasses.replace(new, originator_id=message_stream_id(ctx.tenant, message_id))
    await store.append(
        event.originator_id, "message", [event], expected_version=0, metadata=ctx.metadata()
    )
    return message_id


async def test_a_received_message_is_recorded_in_a_stream_of_its_own(
    store: InMemoryEventStore, ids: CountingIds, alice: CommandContext
) -> None:
    fan_id = await a_fan(store, ids, alice)
    await handle_webhook(received(fan_id), alice, store=store, ids=ids)
    [inbound] = [r for r in store.log if isinstance(r.event, InboundMessage.Received)]
    message_id = inbound.event.message_id
    assert inbound.stream_id == inbound_stream_id(alice.tenant, message_id)
    assert inbound.stream_type == "message"
    assert message_id_of(inbound.stream_id) == message_id
    message, _ = await load_message(store, message_id, tenant=alice.tenant)
    assert isinstance(message, InboundMessage)


async def test_a_message_received_before_is_read_where_it_was_recorded(
    store: InMemoryEventStore, ids: CountingIds, alice: CommandContext
) -> None:
    fan_id = await a_fan(store, ids, alice)
    message_id = await an_old_inbound_message(store, alice, fan_id)
    message, _ = await load_message(store, message_id, tenant=alice.tenant)
    assert isinstance(message, InboundMessage)
    assert message.id == message_stream_id(alice.tenant, message_id)
    with pytest.raises(MessageIdReused, match="received message"):
        await queue_message(
            QueueMessage(recipient_id=fan_id, content="Hi", message_id=message_id),
            alice,
            store=store,
            ids=ids,
        )


async def test_a_received_messages_id_is_refused_for_sending(
    store: InMemoryEventStore, ids: CountingIds, alice: CommandContext
) -> None:
    fan_id = await a_fan(store, ids, alice)
    await handle_webhook(received(fan_id), alice, store=store, ids=ids)
    [inbound] = [r.event for r in store.log if isinstance(r.event, InboundMessage.Received)]
    count = len(store.log)
    with pytest.raises(MessageIdReused, match="received message"):
        await queue_message(
            QueueMessage(recipient_id=fan_id, content="Hi", message_id=inbound.message_id),
            alice,
            store=store,
            ids=ids,
        )
    assert len(store.log) == count


async def test_a_received_message_whose_id_an_outgoing_one_holds_is_refused(
    store: InMemoryEventStore, ids: CountingIds, alice: CommandContext
) -> None:
    fan_id = await a_fan(store, ids, alice)
    # Given an outgoing message under the id the next platform message will be received as
    # (the ids are derived from values a client can predict).
    next_id = str(uuid.uuid5(_INBOUND_IDS, f"{alice.tenant}:of-next"))
    await queue_message(
        QueueMessage(recipient_id=fan_id, content="Hi", message_id=next_id),
        alice,
        store=store,
        ids=ids,
    )
    count = len(store.log)
    with pytest.raises(ConcurrencyError):
        await handle_webhook(received(fan_id, "of-next"), alice, store=store, ids=ids)
    assert len(store.log) == count


async def test_webhook_events_about_a_received_message_are_refused(
    store: InMemoryEventStore, ids: CountingIds, alice: CommandContext
) -> None:
    fan_id = await a_fan(store, ids, alice)
    await handle_webhook(received(fan_id), alice, store=store, ids=ids)
    [inbound] = [r.event for r in store.log if isinstance(r.event, InboundMessage.Received)]
    read = WebhookEvent(
        id=str(uuid.uuid4()),
        type="message.read",
        account="acct",
        data={"messageId": inbound.message_id},
    )
    with pytest.raises(InvalidValue, match="not an outgoing message"):
        await handle_webhook(read, alice, store=store, ids=ids)
