"""The handle rule in the fan handlers, against the in-memory event store (held to the
Postgres store by the contract suite in tests/support/event_store_contract.py)."""

from __future__ import annotations

import pytest

from application.context import CommandContext
from application.fans import (
    CreateFan,
    DeleteFan,
    EraseFan,
    UpdateFan,
    create_fan,
    delete_fan,
    erase_fan,
    update_fan,
)
from application.ports import ClaimHolder
from domain.fan import HandleTaken
from tests.support.fakes import CountingIds, InMemoryEventStore, creator_context

IDS = CountingIds()


async def made(store: InMemoryEventStore, ctx: CommandContext, handle: str) -> int:
    result = await create_fan(CreateFan(handle=handle), ctx, store=store, ids=IDS)
    return result.fan.fan_id


async def test_given_a_fan_with_a_handle_creating_another_with_it_is_refused_naming_the_first(
    store: InMemoryEventStore,
) -> None:
    ctx = creator_context()
    first = await made(store, ctx, "@Ann")
    before = len(store.log)

    with pytest.raises(HandleTaken) as taken:
        await made(store, ctx, "ann")

    assert taken.value.fan_id == first
    assert len(store.log) == before


async def test_a_rename_frees_the_old_handle_and_a_rename_to_a_held_one_is_refused(
    store: InMemoryEventStore,
) -> None:
    ctx = creator_context()
    ann = await made(store, ctx, "ann")
    bob = await made(store, ctx, "bob")
    with pytest.raises(HandleTaken):
        await update_fan(UpdateFan(fan_id=bob, changes={"handle": "ANN"}), ctx, store=store)

    await update_fan(UpdateFan(fan_id=ann, changes={"handle": "anna"}), ctx, store=store)

    await update_fan(UpdateFan(fan_id=bob, changes={"handle": "ann"}), ctx, store=store)


@pytest.mark.parametrize("erase", [False, True])
async def test_a_deleted_or_erased_fan_frees_its_handle(
    store: InMemoryEventStore, erase: bool
) -> None:
    ctx = creator_context()
    ann = await made(store, ctx, "ann")

    if erase:
        await erase_fan(EraseFan(fan_id=ann), ctx, store=store)
    else:
        await delete_fan(DeleteFan(fan_id=ann), ctx, store=store)

    again = await made(store, ctx, "ann")
    with pytest.raises(HandleTaken) as taken:
        await made(store, ctx, "ann")
    assert taken.value.fan_id == again


async def test_a_holder_the_log_shows_without_the_handle_is_taken_over(
    store: InMemoryEventStore,
) -> None:
    ctx = creator_context()
    ann = await made(store, ctx, "ann")
    await update_fan(UpdateFan(fan_id=ann, changes={"handle": "anna"}), ctx, store=store)
    # An entry left behind by a rename before handles were claimed.
    store.claims[ctx.tenant, "onlyfans:handle:ann"] = ClaimHolder(f"fan-{ann}", "old")

    taker = await made(store, ctx, "ann")

    with pytest.raises(HandleTaken) as taken:
        await made(store, ctx, "ann")
    assert taken.value.fan_id == taker
