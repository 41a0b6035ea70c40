"""Saved replies (scripts), and sends written from them, as Given (events) / When (command) /
Then (events or error), on the in-memory event store."""

from __future__ import annotations

import uuid

import pytest

from application.context import CommandContext
from application.errors import MessageIdReused, NotFound
from application.fans import CreateFan, create_fan
from application.messages import QueueMessage, queue_message, queue_messages
from application.scripts import (
    ChangeScript,
    WriteScript,
    create_script,
    delete_script,
    update_script,
)
from domain.errors import Gone, InvalidValue
from domain.message import Message
from domain.script import Script
from tests.support.fakes import CountingIds, InMemoryEventStore

PPV = "https://cdn.example.com/vault/set-7.jpg"


async def a_fan(
    store: InMemoryEventStore, ids: CountingIds, ctx: CommandContext, name: str | None
) -> int:
    cmd = CreateFan(name=name, handle="annie") if name else CreateFan(handle="annie")
    return (await create_fan(cmd, ctx, store=store, ids=ids)).fan.fan_id


async def a_script(
    store: InMemoryEventStore, ids: CountingIds, ctx: CommandContext, **fields: object
) -> Script:
    fields.setdefault("name", "Good morning")
    fields.setdefault("content", "Morning {{first_name|babe}}, I made something for you")
    cmd = WriteScript(**fields)  # type: ignore[arg-type]
    return (await create_script(cmd, ctx, store=store, ids=ids)).script


def types_after(store: InMemoryEventStore, count: int) -> list[str]:
    return [r.event_type for r in store.log[count:]]


# --- the Script aggregate -------------------------------------------------------------------


async def test_a_script_is_created_with_its_template_price_and_media(
    store: InMemoryEventStore, ids: CountingIds, alice: CommandContext
) -> None:
    # Given nothing; When a script is written
    script = await a_script(store, ids, alice, price_cents=1_500, media_urls=(PPV,))

    # Then one ScriptCreated holds it, media typed from the URL
    assert types_after(store, 0) == ["ScriptCreated"]
    assert store.log[0].stream_id == f"script-{script.script_id}"
    assert (script.price_cents, script.attachments) == (1_500, (("image", PPV),))


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"name": "  "}, "name"),
        ({"content": "Hi {{nickname}}"}, "content"),
        ({"content": "Hi {{name"}, "content"),
        ({"price_cents": 50}, "price_cents"),
        ({"media_urls": ("http://cdn.example.com/a.jpg",)}, "attachments"),
    ],
)
async def test_a_script_that_breaks_a_rule_is_refused_and_records_nothing(
    store: InMemoryEventStore,
    ids: CountingIds,
    alice: CommandContext,
    fields: dict[str, object],
    field: str,
) -> None:
    with pytest.raises(InvalidValue) as refused:
        await a_script(store, ids, alice, **fields)
    assert refused.value.field == field
    assert store.log == []


async def test_an_update_changes_what_it_gives_and_an_unchanged_one_records_nothing(
    store: InMemoryEventStore, ids: CountingIds, alice: CommandContext
) -> None:
    # Given a script
    script = await a_script(store, ids, alice)

    # When its price changes, then the same price is given again
    changed = await update_script(
        ChangeScript(script_id=script.script_id, price_cents=900), alice, store=store
    )
    await update_script(
        ChangeScript(script_id=script.script_id, price_cents=900), alice, store=store
    )

    # Then one ScriptUpdated, holding the whole script
    assert types_after(store, 1) == ["ScriptUpdated"]
    assert (changed.script.price_cents, changed.script.content) == (900, script.content)


async def test_a_deleted_script_is_gone_for_updates_and_deletes(
    store: InMemoryEventStore, ids: CountingIds, alice: CommandContext
) -> None:
    script = await a_script(store, ids, alice)
    await delete_script(script.script_id, alice, store=store)

    with pytest.raises(Gone):
        await update_script(ChangeScript(script_id=script.script_id, name="x"), alice, store=store)
    with pytest.raises(Gone):
        await delete_script(script.script_id, alice, store=store)
    assert types_after(store, 0) == ["ScriptCreated", "ScriptDeleted"]


async def test_another_accounts_script_is_not_found(
    store: InMemoryEventStore, ids: CountingIds, alice: CommandContext, bob: CommandContext
) -> None:
    script = await a_script(store, ids, alice)
    with pytest.raises(NotFound):
        await update_script(ChangeScript(script_id=script.script_id, name="mine"), bob, store=store)
    with pytest.raises(NotFound):
        await delete_script(script.script_id, bob, store=store)
    assert types_after(store, 0) == ["ScriptCreated"]


# --- sending from a script -------------------------------------------------------------------


async def test_a_send_from_a_script_renders_it_for_the_fan_and_records_the_script(
    store: InMemoryEventStore, ids: CountingIds, alice: CommandContext
) -> None:
    # Given a fan and a PPV script with media
    fan_id = await a_fan(store, ids, alice, "Ann Smith")
    script = await a_script(store, ids, alice, price_cents=1_500, media_urls=(PPV,))

    # When a message is sent from it
    accepted = await queue_message(
        QueueMessage(recipient_id=fan_id, script_id=script.script_id, price_cents=None),
        alice,
        store=store,
        ids=ids,
    )

    # Then it is queued with the content rendered for Ann, the script's price and media
    queued = store.log[-1].event
    assert isinstance(queued, Message.Queued)
    assert queued.message_id == accepted.message_id
    assert queued.content == "Morning Ann, I made something for you"
    assert (queued.price_cents, queued.attachments) == (1_500, (("image", PPV),))
    assert queued.script_id == script.script_id


async def test_what_the_send_gives_wins_over_the_script(
    store: InMemoryEventStore, ids: CountingIds, alice: CommandContext
) -> None:
    fan_id = await a_fan(store, ids, alice, None)
    script = await a_script(store, ids, alice, price_cents=1_500, media_urls=(PPV,))
    other = "https://cdn.example.com/vault/clip.mp4"

    await queue_message(
        QueueMessage(
            recipient_id=fan_id, script_id=script.script_id, price_cents=0, media_urls=(other,)
        ),
        alice,
        store=store,
        ids=ids,
    )

    queued = store.log[-1].event
    assert isinstance(queued, Message.Queued)
    # A fan without a name: the fallback of {{first_name|babe}} is the handle first.
    assert queued.content == "Morning annie, I made something for you"
    assert (queued.price_cents, queued.attachments) == (0, (("video", other),))


async def test_a_send_from_another_accounts_or_a_deleted_script_is_not_found_and_records_nothing(
    store: InMemoryEventStore, ids: CountingIds, alice: CommandContext, bob: CommandContext
) -> None:
    fan_id = await a_fan(store, ids, alice, "Ann")
    theirs = await a_script(store, ids, bob)
    deleted = await a_script(store, ids, alice)
    await delete_script(deleted.script_id, alice, store=store)
    before = len(store.log)

    for script_id in (theirs.script_id, deleted.script_id, 10**9):
        with pytest.raises((NotFound, Gone)):
            await queue_message(
                QueueMessage(recipient_id=fan_id, script_id=script_id), alice, store=store, ids=ids
            )
    results = await queue_messages(
        [QueueMessage(recipient_id=fan_id, script_id=theirs.script_id)], alice, store=store, ids=ids
    )
    assert (results[0].accepted, results[0].field) == (None, "script_id")
    assert len(store.log) == before


async def test_a_message_id_sent_again_from_the_script_answers_the_same_and_from_another_refuses(
    store: InMemoryEventStore, ids: CountingIds, alice: CommandContext
) -> None:
    fan_id = await a_fan(store, ids, alice, "Ann")
    script = await a_script(store, ids, alice)
    message_id = str(uuid.uuid4())
    cmd = QueueMessage(recipient_id=fan_id, script_id=script.script_id, message_id=message_id)
    first = await queue_message(cmd, alice, store=store, ids=ids)
    before = len(store.log)

    again = await queue_message(cmd, alice, store=store, ids=ids)
    # The rendered content is the body: the script edited since renders another one.
    await update_script(
        ChangeScript(script_id=script.script_id, content="Night {{name}}"), alice, store=store
    )
    with pytest.raises(MessageIdReused, match="content"):
        await queue_message(cmd, alice, store=store, ids=ids)

    assert (again.created, again.queued_at) == (False, first.queued_at)
    assert types_after(store, before) == ["ScriptUpdated"]


async def test_a_message_id_sent_again_after_its_script_was_deleted_answers_the_first_answer(
    store: InMemoryEventStore, ids: CountingIds, alice: CommandContext
) -> None:
    # Given a message queued from a script, which is then deleted
    fan_id = await a_fan(store, ids, alice, "Ann")
    script = await a_script(store, ids, alice, price_cents=1_500)
    cmd = QueueMessage(
        recipient_id=fan_id,
        script_id=script.script_id,
        price_cents=None,
        message_id=str(uuid.uuid4()),
    )
    first = await queue_message(cmd, alice, store=store, ids=ids)
    await delete_script(script.script_id, alice, store=store)
    before = len(store.log)

    # When the same send is repeated
    again = await queue_message(cmd, alice, store=store, ids=ids)

    # Then it answers as the first time, and records nothing
    assert (again.message_id, again.created, again.queued_at) == (
        first.message_id,
        False,
        first.queued_at,
    )
    assert len(store.log) == before
