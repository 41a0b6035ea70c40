"""Queueing a message to a recipient read recently (RecipientCache): the fan's stream is not
read again, but the append holds it at the version read, so a fan changed since is never
sent to on stale knowledge."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from application.context import CommandContext
from application.fans import CreateFan, DeleteFan, UpdateFan, create_fan, delete_fan, update_fan
from application.messages import QueueMessage, RecipientCache, queue_message
from domain.errors import InvalidValue
from domain.fan import fan_stream_id
from domain.message import message_stream_id
from tests.support.fakes import CountingIds, InMemoryEventStore, creator_context


@pytest.fixture
def cache() -> RecipientCache:
    return RecipientCache()


class LoadsSeen:
    """Records the streams the handler reads, as the store is asked for them."""

    def __init__(self, store: InMemoryEventStore) -> None:
        self.streams: list[str] = []
        inner = store.load

        async def load(stream_id: str, **kwargs: Any) -> Any:
            self.streams.append(stream_id)
            return await inner(stream_id, **kwargs)

        store.load = load  # type: ignore[method-assign]


async def fan_of(store: InMemoryEventStore, ids: CountingIds, ctx: CommandContext) -> int:
    return (await create_fan(CreateFan(name="Ann"), ctx, store=store, ids=ids)).fan.fan_id


async def send(
    store: InMemoryEventStore,
    ids: CountingIds,
    ctx: CommandContext,
    fan_id: int,
    cache: RecipientCache | None,
    **fields: Any,
) -> Any:
    fields.setdefault("content", "Hello")
    return await queue_message(
        QueueMessage(recipient_id=fan_id, **fields), ctx, store=store, ids=ids, recipients=cache
    )


async def test_a_send_to_a_recipient_read_before_does_not_read_the_fan_again(
    store: InMemoryEventStore, ids: CountingIds, alice: CommandContext, cache: RecipientCache
) -> None:
    fan_id = await fan_of(store, ids, alice)
    first = await send(store, ids, alice, fan_id, cache)
    loads = LoadsSeen(store)
    before = len(store.log)

    second = await send(store, ids, alice, fan_id, cache, content="Again")

    assert fan_stream_id(fan_id) not in loads.streams
    assert second.conversation_id == first.conversation_id
    assert [(r.event_type, r.stream_id) for r in store.log[before:]] == [
        ("MessageQueued", message_stream_id(alice.tenant, second.message_id))
    ]
    assert [entry.message_id for entry in store.outbox] == [first.message_id, second.message_id]


async def test_a_fan_deleted_after_being_cached_refuses_the_message(
    store: InMemoryEventStore, ids: CountingIds, alice: CommandContext, cache: RecipientCache
) -> None:
    fan_id = await fan_of(store, ids, alice)
    await send(store, ids, alice, fan_id, cache)
    await delete_fan(DeleteFan(fan_id=fan_id), alice, store=store)
    log, outbox = list(store.log), list(store.outbox)

    with pytest.raises(InvalidValue) as error:
        await send(store, ids, alice, fan_id, cache)

    assert error.value.field == "recipient_id"
    assert store.log == log
    assert store.outbox == outbox


async def test_a_fan_edited_after_being_cached_gets_the_message_and_is_cached_again(
    store: InMemoryEventStore, ids: CountingIds, alice: CommandContext, cache: RecipientCache
) -> None:
    fan_id = await fan_of(store, ids, alice)
    await send(store, ids, alice, fan_id, cache)
    await update_fan(UpdateFan(fan_id=fan_id, changes={"notes": "likes cats"}), alice, store=store)

    accepted = await send(store, ids, alice, fan_id, cache)
    loads = LoadsSeen(store)
    again = await send(store, ids, alice, fan_id, cache)

    assert store.log[-2].stream_id == message_stream_id(alice.tenant, accepted.message_id)
    assert store.log[-1].stream_id == message_stream_id(alice.tenant, again.message_id)
    assert fan_stream_id(fan_id) not in loads.streams


async def test_a_fan_deleted_between_the_read_and_the_append_refuses_the_message(
    store: InMemoryEventStore, ids: CountingIds, alice: CommandContext
) -> None:
    fan_id = await fan_of(store, ids, alice)
    await send(store, ids, alice, fan_id, None)
    deleted = False

    async def delete_first() -> None:
        nonlocal deleted
        deleted = True
        await delete_fan(DeleteFan(fan_id=fan_id), alice, store=store)

    store.before_append.append(delete_first)
    log_before_delete = len(store.log)

    with pytest.raises(InvalidValue) as error:
        await send(store, ids, alice, fan_id, None)

    assert deleted
    assert error.value.field == "recipient_id"
    assert [r.event_type for r in store.log[log_before_delete:]] == ["FanDeleted"]
    assert len(store.outbox) == 1


async def test_one_tenants_cached_fan_is_refused_to_another_tenant(
    store: InMemoryEventStore, ids: CountingIds, alice: CommandContext, cache: RecipientCache
) -> None:
    fan_id = await fan_of(store, ids, alice)
    await send(store, ids, alice, fan_id, cache)
    log = list(store.log)
    bob = creator_context()

    with pytest.raises(InvalidValue) as error:
        await send(store, ids, bob, fan_id, cache)

    assert error.value.field == "recipient_id"
    assert store.log == log


async def test_a_message_id_sent_again_to_a_cached_fan_is_answered_as_the_first_time(
    store: InMemoryEventStore, ids: CountingIds, alice: CommandContext, cache: RecipientCache
) -> None:
    fan_id = await fan_of(store, ids, alice)
    await send(store, ids, alice, fan_id, cache)
    message_id = str(uuid.uuid4())
    first = await send(store, ids, alice, fan_id, cache, message_id=message_id)
    log = list(store.log)

    again = await send(store, ids, alice, fan_id, cache, message_id=message_id)

    assert (again.message_id, again.position, again.created) == (
        first.message_id,
        first.position,
        False,
    )
    assert store.log == log
