"""The messaging command handlers against the in-memory fakes of their ports."""

from __future__ import annotations

import uuid
from typing import Any

import msgspec
import pytest

from application.context import CommandContext
from application.errors import ConcurrencyError, MessageIdReused, NotFound
from application.fans import CreateFan, DeleteFan, UpdateFan, create_fan, delete_fan, update_fan
from application.messages import (
    MAX_BATCH,
    MessageCommand,
    QueueMessage,
    StartConversation,
    mark_message_read,
    queue_message,
    queue_messages,
    record_dispatched,
    record_failed,
    record_sent,
    retry_message,
    start_conversation,
    stream_write,
)
from application.ports import OutboxEntry, StreamWrite
from domain.conversation import Conversation
from domain.errors import IllegalState, InvalidValue
from domain.fan import Fan, fan_stream_id
from domain.inbound import InboundMessage
from domain.message import Message, message_id_of, message_stream_id
from tests.support.fakes import CountingIds, InMemoryEventStore

SECRET = "a secret only the fan may read"
MEDIA = "https://cdn.example.com/private/clip.mp4"


async def fan_of(
    store: InMemoryEventStore, ids: CountingIds, ctx: CommandContext, name: str = "Ann"
) -> int:
    return (await create_fan(CreateFan(name=name), ctx, store=store, ids=ids)).fan.fan_id


async def send(
    store: InMemoryEventStore, ids: CountingIds, ctx: CommandContext, fan_id: int, **fields: Any
) -> Any:
    fields.setdefault("content", "Hello")
    return await queue_message(
        QueueMessage(recipient_id=fan_id, **fields), ctx, store=store, ids=ids
    )


def events_after(store: InMemoryEventStore, count: int) -> list[tuple[str, str, int]]:
    return [(r.event_type, r.stream_id, r.version) for r in store.log[count:]]


# --- queue_message --------------------------------------------------------------------------


async def test_the_first_message_to_a_fan_opens_the_conversation_and_queues_in_one_append(
    store: InMemoryEventStore, ids: CountingIds, alice: CommandContext
) -> None:
    fan_id = await fan_of(store, ids, alice)
    before = len(store.log)

    accepted = await send(store, ids, alice, fan_id, message_id=str(uuid.uuid4()))

    conversation = f"conversation-{accepted.conversation_id}"
    message = message_stream_id(alice.tenant, accepted.message_id)
    assert events_after(store, before) == [
        ("FanConversationOpened", fan_stream_id(fan_id), 2),
        ("ConversationStarted", conversation, 1),
        ("MessageQueued", message, 1),
    ]
    opened, started, queued = (r.event for r in store.log[before:])
    assert isinstance(opened, Fan.ConversationOpened)
    assert opened.conversation_id == accepted.conversation_id
    assert isinstance(started, Conversation.Started)
    assert (started.tenant, started.fan_id, started.platform) == (alice.tenant, fan_id, "onlyfans")
    assert isinstance(queued, Message.Queued)
    assert (queued.conversation_id, queued.fan_id, queued.content) == (
        accepted.conversation_id,
        fan_id,
        "Hello",
    )
    assert accepted.created is True
    assert accepted.position == store.log[-1].position
    assert accepted.queued_at == queued.timestamp
    assert accepted.queue == "normal"
    assert {r.metadata.tenant for r in store.log[before:]} == {alice.tenant}
    assert {r.metadata.correlation_id for r in store.log[before:]} == {alice.correlation_id}


async def test_a_second_message_to_the_fan_reuses_the_conversation(
    store: InMemoryEventStore, ids: CountingIds, alice: CommandContext
) -> None:
    fan_id = await fan_of(store, ids, alice)
    first = await send(store, ids, alice, fan_id)
    before = len(store.log)

    second = await send(store, ids, alice, fan_id, content="Again")

    assert second.conversation_id == first.conversation_id
    assert second.message_id != first.message_id
    assert events_after(store, before) == [
        ("MessageQueued", message_stream_id(alice.tenant, second.message_id), 1)
    ]
    assert sum(isinstance(r.event, Conversation.Started) for r in store.log) == 1


async def test_each_fan_gets_a_conversation_of_their_own(
    store: InMemoryEventStore, ids: CountingIds, alice: CommandContext
) -> None:
    ann = await fan_of(store, ids, alice, "Ann")
    bea = await fan_of(store, ids, alice, "Bea")

    to_ann = await send(store, ids, alice, ann)
    to_bea = await send(store, ids, alice, bea)

    assert to_ann.conversation_id != to_bea.conversation_id


async def test_queueing_adds_one_outbox_entry_without_the_content_or_media_in_clear(
    store: InMemoryEventStore, ids: CountingIds, alice: CommandContext
) -> None:
    fan_id = await fan_of(store, ids, alice)

    accepted = await send(
        store,
        ids,
        alice,
        fan_id,
        content=SECRET,
        media_urls=(MEDIA,),
        attachments=(("image", "https://cdn.example.com/p.png"),),
        price_cents=1_000,
    )

    [entry] = store.outbox
    assert (entry.queue, entry.message_id, entry.subject) == (
        "normal",
        accepted.message_id,
        fan_stream_id(fan_id),
    )
    assert entry.body == {
        "messageId": accepted.message_id,
        "tenant": alice.tenant,
        "recipientId": fan_id,
        "conversationId": accepted.conversation_id,
        "priceCents": 1_000,
        "priority": 5,
        "attempt": 1,
        "campaignId": None,
        "correlationId": alice.correlation_id,
        "platform": "onlyfans",
    }
    clear = (
        msgspec.json.encode(entry.body).decode() + msgspec.json.encode(entry.attributes).decode()
    )
    assert SECRET not in clear
    assert "cdn.example.com" not in clear
    assert entry.personal == {
        "content": SECRET,
        "media": [
            {"type": "image", "url": "https://cdn.example.com/p.png"},
            {"type": "video", "url": MEDIA},
        ],
    }
    assert entry.attributes == {"correlation_id": alice.correlation_id}


async def test_a_high_priority_message_goes_to_the_high_queue(
    store: InMemoryEventStore, ids: CountingIds, alice: CommandContext
) -> None:
    fan_id = await fan_of(store, ids, alice)

    accepted = await send(store, ids, alice, fan_id, priority=9)

    assert accepted.queue == "high"
    assert [entry.queue for entry in store.outbox] == ["high"]


async def test_queueing_the_same_message_id_again_answers_the_first_and_records_nothing(
    store: InMemoryEventStore, ids: CountingIds, alice: CommandContext
) -> None:
    fan_id = await fan_of(store, ids, alice)
    message_id = str(uuid.uuid4())
    first = await send(store, ids, alice, fan_id, message_id=message_id, priority=8)
    log, outbox = list(store.log), list(store.outbox)

    again = await send(store, ids, alice, fan_id, message_id=message_id.upper(), priority=8)

    assert again.created is False
    assert (again.message_id, again.conversation_id, again.queue, again.position) == (
        first.message_id,
        first.conversation_id,
        first.queue,
        first.position,
    )
    assert again.queued_at == first.queued_at
    assert store.log == log
    assert store.outbox == outbox


async def test_a_message_id_is_stored_in_its_canonical_lower_case_form(
    store: InMemoryEventStore, ids: CountingIds, alice: CommandContext
) -> None:
    fan_id = await fan_of(store, ids, alice)
    message_id = uuid.uuid4()

    accepted = await send(store, ids, alice, fan_id, message_id=str(message_id).upper())

    assert accepted.message_id == str(message_id)
    assert store.log[-1].stream_id == f"message-{alice.tenant}:{message_id}"


async def test_a_message_id_that_is_not_a_uuid_is_refused(
    store: InMemoryEventStore, ids: CountingIds, alice: CommandContext
) -> None:
    fan_id = await fan_of(store, ids, alice)
    before = len(store.log)

    with pytest.raises(InvalidValue) as error:
        await send(store, ids, alice, fan_id, message_id="not-a-uuid")

    assert error.value.field == "message_id"
    assert len(store.log) == before


async def test_a_message_id_another_tenant_used_is_this_tenants_own_message_too(
    store: InMemoryEventStore, ids: CountingIds, alice: CommandContext, bob: CommandContext
) -> None:
    message_id = str(uuid.uuid4())
    bobs = await send(store, ids, bob, await fan_of(store, ids, bob), message_id=message_id)
    fan_id = await fan_of(store, ids, alice)

    alices = await send(store, ids, alice, fan_id, message_id=message_id, content="Mine")

    assert alices.created is True
    assert alices.message_id == bobs.message_id == message_id
    queued = {r.stream_id: r.event for r in store.log if isinstance(r.event, Message.Queued)}
    assert queued[message_stream_id(alice.tenant, message_id)].content == "Mine"
    assert queued[message_stream_id(bob.tenant, message_id)].content == "Hello"
    assert [entry.body["tenant"] for entry in store.outbox] == [bob.tenant, alice.tenant]


@pytest.mark.parametrize(
    ("change", "named"),
    [
        ({"content": "Other"}, "content"),
        ({"price_cents": 500}, "price"),
        ({"media_urls": (MEDIA,)}, "media"),
        ({"priority": 9}, "priority"),
    ],
    ids=["content", "price", "media", "priority"],
)
async def test_a_message_id_used_again_for_another_message_is_refused_naming_the_difference(
    store: InMemoryEventStore,
    ids: CountingIds,
    alice: CommandContext,
    change: dict[str, Any],
    named: str,
) -> None:
    fan_id = await fan_of(store, ids, alice)
    message_id = str(uuid.uuid4())
    await send(store, ids, alice, fan_id, message_id=message_id)
    log, outbox = list(store.log), list(store.outbox)

    with pytest.raises(MessageIdReused) as refused:
        await send(store, ids, alice, fan_id, message_id=message_id, **change)

    assert str(refused.value).endswith(f"another {named}")
    assert store.log == log
    assert store.outbox == outbox


async def test_a_message_id_used_again_for_another_recipient_is_refused(
    store: InMemoryEventStore, ids: CountingIds, alice: CommandContext
) -> None:
    ann, bea = await fan_of(store, ids, alice, "Ann"), await fan_of(store, ids, alice, "Bea")
    message_id = str(uuid.uuid4())
    await send(store, ids, alice, ann, message_id=message_id)
    log = list(store.log)

    with pytest.raises(MessageIdReused, match="another recipient"):
        await send(store, ids, alice, bea, message_id=message_id)

    assert store.log == log


async def test_a_message_id_of_a_message_received_from_a_fan_is_refused_for_sending(
    store: InMemoryEventStore, ids: CountingIds, alice: CommandContext
) -> None:
    fan_id = await fan_of(store, ids, alice)
    message_id = str(uuid.uuid4())
    inbound = InboundMessage.receive(
        message_id=message_id,
        tenant=alice.tenant,
        conversation_id=1,
        fan_id=fan_id,
        content="hey",
        platform_message_id="of-1",
    )
    await store.append_all([stream_write(inbound, "message")], metadata=alice.metadata())

    with pytest.raises(MessageIdReused, match="received message"):
        await send(store, ids, alice, fan_id, message_id=message_id)


async def test_a_message_to_an_unknown_fan_is_refused_on_the_recipient(
    store: InMemoryEventStore, ids: CountingIds, alice: CommandContext
) -> None:
    with pytest.raises(InvalidValue) as error:
        await send(store, ids, alice, 424242)

    assert error.value.field == "recipient_id"
    assert store.log == []
    assert store.outbox == []


async def test_a_message_to_another_tenants_fan_is_refused_on_the_recipient(
    store: InMemoryEventStore, ids: CountingIds, alice: CommandContext, bob: CommandContext
) -> None:
    bobs_fan = await fan_of(store, ids, bob)
    log = list(store.log)

    with pytest.raises(InvalidValue) as error:
        await send(store, ids, alice, bobs_fan)

    assert error.value.field == "recipient_id"
    assert store.log == log
    assert store.outbox == []


async def test_a_message_to_a_deleted_fan_is_refused_on_the_recipient(
    store: InMemoryEventStore, ids: CountingIds, alice: CommandContext
) -> None:
    fan_id = await fan_of(store, ids, alice)
    await delete_fan(DeleteFan(fan_id=fan_id), alice, store=store)
    log = list(store.log)

    with pytest.raises(InvalidValue) as error:
        await send(store, ids, alice, fan_id)

    assert error.value.field == "recipient_id"
    assert store.log == log
    assert store.outbox == []


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"content": "  "}, "content"),
        ({"price_cents": 100}, "price_cents"),
        ({"media_urls": ("http://cdn.example.com/a.jpg",)}, "attachments"),
        ({"priority": 11}, "priority"),
    ],
    ids=["blank-content", "price", "http-media", "priority"],
)
async def test_a_refused_first_message_opens_no_conversation(
    store: InMemoryEventStore,
    ids: CountingIds,
    alice: CommandContext,
    fields: dict[str, Any],
    field: str,
) -> None:
    fan_id = await fan_of(store, ids, alice)
    log = list(store.log)

    with pytest.raises(InvalidValue) as error:
        await send(store, ids, alice, fan_id, **fields)

    assert error.value.field == field
    assert store.log == log
    assert store.outbox == []


async def test_two_first_messages_racing_to_a_fan_open_one_conversation(
    store: InMemoryEventStore, ids: CountingIds, alice: CommandContext
) -> None:
    fan_id = await fan_of(store, ids, alice)
    results: list[Any] = []

    async def other_sender() -> None:
        results.append(await send(store, ids, alice, fan_id, content="Other"))

    store.before_append.append(other_sender)
    mine = await send(store, ids, alice, fan_id, content="Mine")

    [other] = results
    assert mine.conversation_id == other.conversation_id
    assert sum(isinstance(r.event, Conversation.Started) for r in store.log) == 1
    assert sum(isinstance(r.event, Fan.ConversationOpened) for r in store.log) == 1
    assert sum(isinstance(r.event, Message.Queued) for r in store.log) == 2
    assert len(store.outbox) == 2


async def test_a_conflict_on_the_fan_records_nothing_of_the_losing_attempt(
    store: InMemoryEventStore, ids: CountingIds, alice: CommandContext
) -> None:
    fan_id = await fan_of(store, ids, alice)

    async def fan_edited_meanwhile() -> None:
        await update_fan(UpdateFan(fan_id=fan_id, changes={"notes": "x"}), alice, store=store)

    store.before_append.append(fan_edited_meanwhile)
    accepted = await send(store, ids, alice, fan_id)

    assert [r.event_type for r in store.log] == [
        "FanCreated",
        "FanUpdated",
        "FanConversationOpened",
        "ConversationStarted",
        "MessageQueued",
    ]
    assert [r.version for r in store.log if r.stream_id == fan_stream_id(fan_id)] == [1, 2, 3]
    assert [entry.message_id for entry in store.outbox] == [accepted.message_id]


# --- queue_messages -------------------------------------------------------------------------


async def test_a_batch_queues_each_message_on_its_own_and_reports_each_result(
    store: InMemoryEventStore, ids: CountingIds, alice: CommandContext
) -> None:
    fan_id = await fan_of(store, ids, alice)
    bad_id = str(uuid.uuid4())
    cmds = [QueueMessage(recipient_id=fan_id, content=f"Hi {n}") for n in range(MAX_BATCH - 1)]
    cmds.insert(
        4, QueueMessage(recipient_id=fan_id, content="Hi", price_cents=1, message_id=bad_id)
    )

    results = await queue_messages(cmds, alice, store=store, ids=ids)

    assert len(results) == MAX_BATCH
    failed = results[4]
    assert (failed.message_id, failed.accepted, failed.field) == (bad_id, None, "price_cents")
    assert failed.error
    accepted = [r for n, r in enumerate(results) if n != 4]
    assert all(r.accepted is not None and r.error is None for r in accepted)
    assert [r.message_id for r in accepted] == [
        message_id_of(r.stream_id) for r in store.log if isinstance(r.event, Message.Queued)
    ]
    assert len({r.accepted.conversation_id for r in accepted if r.accepted}) == 1
    assert len(store.outbox) == MAX_BATCH - 1
    assert await store.load(message_stream_id(alice.tenant, bad_id)) == []


async def test_a_message_id_given_twice_in_a_batch_is_refused_the_second_time(
    store: InMemoryEventStore, ids: CountingIds, alice: CommandContext
) -> None:
    fan_id = await fan_of(store, ids, alice)
    twice = str(uuid.uuid4())
    cmds = [
        QueueMessage(recipient_id=fan_id, content="Hi", message_id=twice),
        QueueMessage(recipient_id=fan_id, content="Other"),
        QueueMessage(recipient_id=fan_id, content="Hi", message_id=twice.upper()),
    ]

    first, other, second = await queue_messages(cmds, alice, store=store, ids=ids)

    assert first.accepted is not None
    assert other.accepted is not None
    assert (second.accepted, second.field, second.message_id) == (
        None,
        "message_id",
        twice.upper(),
    )
    assert second.error is not None
    assert "twice" in second.error
    assert len(store.outbox) == 2


async def test_a_batch_of_ten_good_messages_queues_all_ten(
    store: InMemoryEventStore, ids: CountingIds, alice: CommandContext
) -> None:
    fan_id = await fan_of(store, ids, alice)
    cmds = [QueueMessage(recipient_id=fan_id, content=f"Hi {n}") for n in range(MAX_BATCH)]

    results = await queue_messages(cmds, alice, store=store, ids=ids)

    assert [r.error for r in results] == [None] * MAX_BATCH
    assert len(store.outbox) == MAX_BATCH


async def test_a_batch_of_more_than_ten_is_refused_whole(
    store: InMemoryEventStore, ids: CountingIds, alice: CommandContext
) -> None:
    fan_id = await fan_of(store, ids, alice)
    log = list(store.log)
    cmds = [QueueMessage(recipient_id=fan_id, content="Hi") for _ in range(MAX_BATCH + 1)]

    with pytest.raises(InvalidValue) as error:
        await queue_messages(cmds, alice, store=store, ids=ids)

    assert error.value.field == "messages"
    assert store.log == log
    assert store.outbox == []


# --- start_conversation ---------------------------------------------------------------------


async def test_starting_a_conversation_opens_it_once(
    store: InMemoryEventStore, ids: CountingIds, alice: CommandContext
) -> None:
    fan_id = await fan_of(store, ids, alice)

    conversation_id, position = await start_conversation(
        StartConversation(fan_id=fan_id), alice, store=store, ids=ids
    )
    again, no_position = await start_conversation(
        StartConversation(fan_id=fan_id), alice, store=store, ids=ids
    )

    assert position == store.log[-1].position
    assert (again, no_position) == (conversation_id, None)
    assert [r.event_type for r in store.log] == [
        "FanCreated",
        "FanConversationOpened",
        "ConversationStarted",
    ]
    assert (await send(store, ids, alice, fan_id)).conversation_id == conversation_id
    assert store.outbox[-1].body["conversationId"] == conversation_id


async def test_a_conversation_with_another_tenants_fan_is_refused_on_the_fan_id(
    store: InMemoryEventStore, ids: CountingIds, alice: CommandContext, bob: CommandContext
) -> None:
    bobs_fan = await fan_of(store, ids, bob)

    with pytest.raises(InvalidValue) as error:
        await start_conversation(StartConversation(fan_id=bobs_fan), alice, store=store, ids=ids)

    assert error.value.field == "fan_id"
    assert len(store.log) == 1


# --- retry, outcomes, read ------------------------------------------------------------------


async def test_retrying_a_failed_message_requeues_it_with_a_new_outbox_entry(
    store: InMemoryEventStore, ids: CountingIds, alice: CommandContext
) -> None:
    fan_id = await fan_of(store, ids, alice)
    accepted = await send(store, ids, alice, fan_id, content=SECRET)
    await record_failed(accepted.message_id, "gave up", alice, store=store)

    changed = await retry_message(
        MessageCommand(message_id=accepted.message_id), alice, store=store
    )

    assert isinstance(store.log[-1].event, Message.Requeued)
    assert store.log[-1].version == 3
    assert changed.position == store.log[-1].position
    # A person's retry puts it on its way again; it is no try at the platform.
    assert (changed.message.status, changed.message.rounds, changed.message.attempts) == (
        "queued",
        2,
        0,
    )
    first, second = store.outbox
    assert first.message_id == second.message_id == accepted.message_id
    assert (first.body["attempt"], second.body["attempt"]) == (1, 2)
    assert second.personal["content"] == SECRET
    assert SECRET not in msgspec.json.encode(second.body).decode()


@pytest.mark.parametrize("outcome", ["queued", "dispatched", "sent"])
async def test_retrying_a_message_that_has_not_failed_is_illegal_and_records_nothing(
    store: InMemoryEventStore, ids: CountingIds, alice: CommandContext, outcome: str
) -> None:
    fan_id = await fan_of(store, ids, alice)
    message_id = (await send(store, ids, alice, fan_id)).message_id
    if outcome == "dispatched":
        await record_dispatched(message_id, "normal", alice, store=store)
    if outcome == "sent":
        await record_sent(message_id, "of-1", alice, store=store)
    log = list(store.log)

    with pytest.raises(IllegalState):
        await retry_message(MessageCommand(message_id=message_id), alice, store=store)

    assert store.log == log
    assert len(store.outbox) == 1


async def test_another_tenants_message_is_not_found_for_retry_and_read(
    store: InMemoryEventStore, ids: CountingIds, alice: CommandContext, bob: CommandContext
) -> None:
    fan_id = await fan_of(store, ids, alice)
    message_id = (await send(store, ids, alice, fan_id)).message_id
    await record_failed(message_id, "gave up", alice, store=store)
    log = list(store.log)

    with pytest.raises(NotFound):
        await retry_message(MessageCommand(message_id=message_id), bob, store=store)
    with pytest.raises(NotFound):
        await mark_message_read(MessageCommand(message_id=message_id), bob, store=store)

    assert store.log == log


async def test_recording_a_dispatch_twice_records_one_event(
    store: InMemoryEventStore, ids: CountingIds, alice: CommandContext
) -> None:
    fan_id = await fan_of(store, ids, alice)
    message_id = (await send(store, ids, alice, fan_id)).message_id

    first = await record_dispatched(message_id, "normal", alice, store=store)
    second = await record_dispatched(message_id, "normal", alice, store=store)

    dispatches = [r for r in store.log if isinstance(r.event, Message.Dispatched)]
    assert len(dispatches) == 1
    assert first.position == second.position == dispatches[0].position
    assert second.message.status == "dispatched"


async def test_a_sent_message_is_marked_read_once(
    store: InMemoryEventStore, ids: CountingIds, alice: CommandContext
) -> None:
    fan_id = await fan_of(store, ids, alice)
    message_id = (await send(store, ids, alice, fan_id)).message_id
    await record_dispatched(message_id, "normal", alice, store=store)
    await record_sent(message_id, "of-7", alice, store=store)

    read = await mark_message_read(MessageCommand(message_id=message_id), alice, store=store)
    again = await mark_message_read(MessageCommand(message_id=message_id), alice, store=store)

    stream = message_stream_id(alice.tenant, message_id)
    assert [r.event_type for r in store.log if r.stream_id == stream] == [
        "MessageQueued",
        "MessageDispatched",
        "MessageSent",
        "MessageRead",
    ]
    assert read.message.status == again.message.status == "read"
    assert read.position == again.position == store.log[-1].position


async def test_a_queued_message_cannot_be_marked_read(
    store: InMemoryEventStore, ids: CountingIds, alice: CommandContext
) -> None:
    fan_id = await fan_of(store, ids, alice)
    message_id = (await send(store, ids, alice, fan_id)).message_id
    log = list(store.log)

    with pytest.raises(IllegalState):
        await mark_message_read(MessageCommand(message_id=message_id), alice, store=store)

    assert store.log == log


async def test_a_failure_after_the_message_was_sent_records_nothing(
    store: InMemoryEventStore, ids: CountingIds, alice: CommandContext
) -> None:
    fan_id = await fan_of(store, ids, alice)
    message_id = (await send(store, ids, alice, fan_id)).message_id
    sent = await record_sent(message_id, "of-1", alice, store=store)

    late = await record_failed(message_id, "timeout", alice, store=store)

    assert late.message.status == "sent"
    assert late.position == sent.position
    assert not any(isinstance(r.event, Message.Failed) for r in store.log)


# --- the fake store itself ------------------------------------------------------------------


async def test_the_fakes_append_all_is_all_or_nothing_across_streams(
    store: InMemoryEventStore, ids: CountingIds, alice: CommandContext
) -> None:
    fan_id = await fan_of(store, ids, alice)
    stale = Fan.register(fan_id=fan_id, tenant=alice.tenant, name="Stale")
    conversation = Conversation.start(
        conversation_id=99, tenant=alice.tenant, fan_id=fan_id, platform="onlyfans"
    )
    with pytest.raises(ConcurrencyError):
        await store.append_all(
            [
                StreamWrite(conversation.id, "conversation", conversation.collect_events(), 0),
                StreamWrite(stale.id, "fan", stale.collect_events(), 0),
            ],
            metadata=alice.metadata(),
            outbox=[OutboxEntry(queue="normal", message_id="m", body={})],
        )

    assert len(store.log) == 1
    assert store.outbox == []


async def test_a_last_try_at_a_message_the_relay_had_failed_still_counts_as_a_try(
    store: InMemoryEventStore, ids: CountingIds, alice: CommandContext
) -> None:
    fan_id = await fan_of(store, ids, alice)
    message_id = (await send(store, ids, alice, fan_id)).message_id
    # The relay gave up, yet its send had reached the queue; the sender's last try fails too.
    await record_failed(message_id, "queue unavailable", alice, store=store)

    changed = await record_failed(message_id, "gave up: 503", alice, store=store, attempted=True)

    assert isinstance(store.log[-1].event, Message.AttemptFailed)
    assert (changed.message.status, changed.message.attempts) == ("failed", 1)
    assert (await record_failed(message_id, "again", alice, store=store)).message.attempts == 1
