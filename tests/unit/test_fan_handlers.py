"""The fan command handlers against in-memory fakes of their ports."""

from __future__ import annotations

import pytest

from application.context import CommandContext
from application.errors import ConcurrencyError, NotFound
from application.fans import CreateFan, DeleteFan, UpdateFan, create_fan, delete_fan, update_fan
from domain.errors import Gone, InvalidValue
from domain.fan import Fan
from tests.support.fakes import CountingIds, InMemoryEventStore

ALICE = CommandContext(tenant="alice", actor="apikey:a", correlation_id="c-1")
BOB = CommandContext(tenant="bob", actor="apikey:b", correlation_id="c-2")


async def created(store: InMemoryEventStore, ctx: CommandContext = ALICE) -> int:
    result = await create_fan(CreateFan(name="Ann"), ctx, store=store, ids=CountingIds())
    return result.fan.fan_id


async def test_create_appends_one_event_with_the_callers_metadata(
    store: InMemoryEventStore,
) -> None:
    result = await create_fan(
        CreateFan(name="Ann", tags=("VIP",)), ALICE, store=store, ids=CountingIds()
    )
    [recorded] = store.log
    assert result.position == recorded.position
    assert isinstance(recorded.event, Fan.Created)
    assert recorded.event.tags == ("vip",)
    assert (recorded.metadata.tenant, recorded.metadata.actor) == ("alice", "apikey:a")
    assert recorded.metadata.correlation_id == recorded.metadata.causation_id == "c-1"


async def test_an_invalid_create_appends_nothing(store: InMemoryEventStore) -> None:
    with pytest.raises(InvalidValue):
        await create_fan(CreateFan(name="Ann", email="nope"), ALICE, store=store, ids=CountingIds())
    assert store.log == []


async def test_update_loads_decides_and_appends_after_the_loaded_version(
    store: InMemoryEventStore,
) -> None:
    fan_id = await created(store)
    result = await update_fan(UpdateFan(fan_id=fan_id, changes={"notes": "hi"}), ALICE, store=store)
    assert (result.fan.notes, result.fan.version) == ("hi", 2)
    assert [r.version for r in store.log] == [1, 2]


async def test_another_tenants_fan_is_not_found(store: InMemoryEventStore) -> None:
    fan_id = await created(store, ALICE)
    with pytest.raises(NotFound):
        await update_fan(UpdateFan(fan_id=fan_id, changes={"notes": "x"}), BOB, store=store)
    with pytest.raises(NotFound):
        await delete_fan(DeleteFan(fan_id=fan_id), BOB, store=store)
    assert len(store.log) == 1


async def test_a_stale_expected_version_is_a_conflict(store: InMemoryEventStore) -> None:
    fan_id = await created(store)
    await update_fan(UpdateFan(fan_id=fan_id, changes={"notes": "a"}), ALICE, store=store)
    with pytest.raises(ConcurrencyError):
        await update_fan(
            UpdateFan(fan_id=fan_id, changes={"notes": "b"}, expected_version=1),
            ALICE,
            store=store,
        )


async def test_a_concurrent_writer_makes_the_handler_retry_on_fresh_state(
    store: InMemoryEventStore,
) -> None:
    fan_id = await created(store)

    async def other_writer() -> None:
        await update_fan(
            UpdateFan(fan_id=fan_id, changes={"notes": "other"}), BOB_AS_ALICE, store=store
        )

    BOB_AS_ALICE = CommandContext(tenant="alice", actor="apikey:other", correlation_id="c-3")
    store.before_append.append(other_writer)
    result = await update_fan(
        UpdateFan(fan_id=fan_id, changes={"value_cents": 5}), ALICE, store=store
    )
    assert (result.fan.notes, result.fan.value_cents, result.fan.version) == ("other", 5, 3)


async def test_an_unchanged_update_appends_nothing_and_returns_the_current_position(
    store: InMemoryEventStore,
) -> None:
    fan_id = await created(store)
    result = await update_fan(UpdateFan(fan_id=fan_id, changes={"name": "Ann"}), ALICE, store=store)
    assert result.position == store.log[-1].position
    assert len(store.log) == 1


async def test_a_deleted_fan_cannot_be_updated_or_deleted_again(store: InMemoryEventStore) -> None:
    fan_id = await created(store)
    await delete_fan(DeleteFan(fan_id=fan_id), ALICE, store=store)
    with pytest.raises(Gone):
        await update_fan(UpdateFan(fan_id=fan_id, changes={"notes": "x"}), ALICE, store=store)
    with pytest.raises(Gone):
        await delete_fan(DeleteFan(fan_id=fan_id), ALICE, store=store)
