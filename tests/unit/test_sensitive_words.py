"""An account's sensitive words, and the sends they refuse, as Given / When / Then on the
in-memory event store."""

from __future__ import annotations

import pytest

from application.campaigns import CreateCampaign, create_campaign
from application.context import CommandContext
from application.fans import CreateFan, create_fan
from application.messages import QueueMessage, queue_message, queue_messages
from application.sensitive_words import SensitiveWordsCache, set_sensitive_words
from domain.errors import InvalidValue
from domain.sensitive_words import WordList
from tests.support.fakes import CountingIds, InMemoryEventStore


async def a_fan(store: InMemoryEventStore, ids: CountingIds, ctx: CommandContext) -> int:
    return (await create_fan(CreateFan(name="Ann"), ctx, store=store, ids=ids)).fan.fan_id


async def send(
    store: InMemoryEventStore,
    ids: CountingIds,
    ctx: CommandContext,
    fan_id: int,
    content: str,
    words: SensitiveWordsCache,
) -> object:
    return await queue_message(
        QueueMessage(recipient_id=fan_id, content=content), ctx, store=store, ids=ids, words=words
    )


@pytest.mark.parametrize(
    ("content", "found"),
    [
        ("Send it on CashApp", "cashapp"),
        ("my snap is annie", "Snap"),
        ("pay via cash app please", "cash app"),
        ("cashapp.", "cashapp"),
        ("I love cashews and snapping photos", None),
        ("Hello", None),
    ],
)
def test_words_match_whole_and_without_case(content: str, found: str | None) -> None:
    assert WordList(("cashapp", "Snap", "cash app")).first_in(content) == found


async def test_setting_words_records_the_list_once_and_replaces_it_after(
    store: InMemoryEventStore, alice: CommandContext
) -> None:
    # Given nothing; When the list is set, set again the same, then replaced
    await set_sensitive_words(["cashapp", " CashApp ", "venmo"], alice, store=store)
    await set_sensitive_words(["cashapp", "venmo"], alice, store=store)
    listed, _ = await set_sensitive_words(["paypal"], alice, store=store)

    # Then: created (duplicates without case dropped), unchanged, replaced
    assert [r.event_type for r in store.log] == ["SensitiveWordsCreated", "SensitiveWordsReplaced"]
    assert store.log[0].event.words == ("cashapp", "venmo")
    assert listed.words == ("paypal",)


@pytest.mark.parametrize("words", [[""], ["x" * 101], ["a\x00b"], [f"w{n}" for n in range(501)]])
async def test_a_list_that_breaks_a_rule_is_refused_and_records_nothing(
    store: InMemoryEventStore, alice: CommandContext, words: list[str]
) -> None:
    with pytest.raises(InvalidValue) as refused:
        await set_sensitive_words(words, alice, store=store)
    assert refused.value.field == "words"
    assert store.log == []


async def test_a_send_holding_a_word_is_refused_naming_it_and_records_nothing(
    store: InMemoryEventStore, ids: CountingIds, alice: CommandContext
) -> None:
    # Given a fan and the word "venmo"
    fan_id = await a_fan(store, ids, alice)
    await set_sensitive_words(["venmo"], alice, store=store)
    before = len(store.log)

    # When a message holds it
    with pytest.raises(InvalidValue) as refused:
        await send(store, ids, alice, fan_id, "Pay me on Venmo!", SensitiveWordsCache())

    # Then it is refused, naming the word, and nothing is recorded
    assert refused.value.field == "content"
    assert "venmo" in refused.value.message
    assert len(store.log) == before
    assert store.outbox == []


async def test_another_accounts_words_refuse_nothing_here(
    store: InMemoryEventStore, ids: CountingIds, alice: CommandContext, bob: CommandContext
) -> None:
    fan_id = await a_fan(store, ids, alice)
    await set_sensitive_words(["venmo"], bob, store=store)

    await send(store, ids, alice, fan_id, "Pay me on Venmo!", SensitiveWordsCache())

    assert store.log[-1].event_type == "MessageQueued"


async def test_a_word_added_after_the_list_was_cached_still_refuses_the_next_send(
    store: InMemoryEventStore, ids: CountingIds, alice: CommandContext
) -> None:
    # Given a send that cached an empty list
    fan_id = await a_fan(store, ids, alice)
    cache = SensitiveWordsCache(ttl_seconds=3600)
    await send(store, ids, alice, fan_id, "Pay me on Venmo", cache)

    # When a word is added by another process, and the next send holds it
    await set_sensitive_words(["venmo"], alice, store=store)
    before = len(store.log)
    with pytest.raises(InvalidValue):
        await send(store, ids, alice, fan_id, "Venmo again", cache)

    # Then the send's hold on the list met the change, and the fresh list refused it
    assert len(store.log) == before


async def test_a_word_set_between_the_sends_read_and_its_append_refuses_it(
    store: InMemoryEventStore, ids: CountingIds, alice: CommandContext
) -> None:
    # Given a fan, and no words yet
    fan_id = await a_fan(store, ids, alice)
    before = len(store.log)

    # When "venmo" is set after the send read the (empty) list, before its append
    async def another_writer() -> None:
        await set_sensitive_words(["venmo"], alice, store=store)

    store.before_append.append(another_writer)
    with pytest.raises(InvalidValue) as refused:
        await send(store, ids, alice, fan_id, "venmo me", SensitiveWordsCache())

    # Then the send's hold on the list met the change, and the list read afresh refused it
    assert refused.value.field == "content"
    assert [r.event_type for r in store.log[before:]] == ["SensitiveWordsCreated"]


async def test_a_batch_refuses_only_the_message_holding_a_word(
    store: InMemoryEventStore, ids: CountingIds, alice: CommandContext
) -> None:
    fan_id = await a_fan(store, ids, alice)
    await set_sensitive_words(["venmo"], alice, store=store)

    results = await queue_messages(
        [
            QueueMessage(recipient_id=fan_id, content="Hi"),
            QueueMessage(recipient_id=fan_id, content="venmo me"),
        ],
        alice,
        store=store,
        ids=ids,
        words=SensitiveWordsCache(),
    )

    assert results[0].accepted is not None
    assert (results[1].accepted, results[1].field) == (None, "content")


async def test_a_campaign_whose_content_holds_a_word_is_refused_and_records_nothing(
    store: InMemoryEventStore, ids: CountingIds, alice: CommandContext
) -> None:
    fan_id = await a_fan(store, ids, alice)
    await set_sensitive_words(["onlyfans.com/other"], alice, store=store)
    before = len(store.log)

    with pytest.raises(InvalidValue) as refused:
        await create_campaign(
            CreateCampaign(
                name="Promo", content="Hi {{name}}, see onlyfans.com/other", recipient_ids=(fan_id,)
            ),
            alice,
            store=store,
            ids=ids,
        )

    assert refused.value.field == "content"
    assert len(store.log) == before
    campaign, _ = await create_campaign(
        CreateCampaign(name="Promo", content="Hi {{name}}", recipient_ids=(fan_id,)),
        alice,
        store=store,
        ids=ids,
    )
    assert store.log[-1].event_type == "CampaignCreated"
    assert campaign.content == "Hi {{name}}"
