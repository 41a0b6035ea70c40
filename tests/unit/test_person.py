"""People across platforms: the Person's and the Fan's rules, and the link handlers on fakes."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from application.context import CommandContext
from application.errors import NotFound
from application.fans import CreateFan, EraseFan, create_fan, erase_fan
from application.people import (
    CreatePerson,
    LinkFan,
    UnlinkFan,
    create_person,
    link_fan,
    unlink_fan,
)
from domain.errors import InvalidValue
from domain.fan import Fan
from domain.person import FanAlreadyLinked, NotLinked, Person
from tests.support.fakes import CountingIds, InMemoryEventStore


def test_a_person_needs_two_fans_each_named_once() -> None:
    for bad in ([7], [7, 7], [7, 8, 7]):
        with pytest.raises(InvalidValue):
            Person.found(person_id=1, tenant="t", fan_ids=bad)
    person = Person.found(person_id=1, tenant="t", fan_ids=[8, 7])
    assert person.fan_ids == (8, 7)


def test_fan_ids_must_be_positive_integers() -> None:
    for bad in ([1, True], [1, 0], [1, "2"]):
        with pytest.raises(InvalidValue):
            Person.found(person_id=1, tenant="t", fan_ids=bad)  # type: ignore[arg-type]


def test_linking_a_fan_a_person_holds_records_nothing() -> None:
    person = Person.found(person_id=1, tenant="t", fan_ids=[7, 8])
    person.collect_events()
    assert person.link(7) is False
    assert person.collect_events() == []


def test_unlinking_a_fan_the_person_does_not_hold_is_refused() -> None:
    person = Person.found(person_id=1, tenant="t", fan_ids=[7, 8])
    with pytest.raises(NotLinked):
        person.unlink(9)
    person.unlink(8)
    assert person.fan_ids == (7,)


def test_a_fan_linked_to_one_person_refuses_another() -> None:
    fan = Fan.register(fan_id=7, tenant="t", name="Ann")
    assert fan.link_to_person(1) is True
    assert fan.link_to_person(1) is False
    with pytest.raises(FanAlreadyLinked) as refused:
        fan.link_to_person(2)
    assert (refused.value.fan_id, refused.value.person_id) == (7, 1)


def test_an_unlinked_fan_may_join_another_person() -> None:
    fan = Fan.register(fan_id=7, tenant="t", name="Ann")
    fan.link_to_person(1)
    with pytest.raises(NotLinked):
        fan.unlink_from_person(2)
    fan.unlink_from_person(1)
    assert fan.link_to_person(2) is True
    assert fan.person_id == 2


# One counter for every account of a test: fan ids are unique across accounts, as in Postgres.
_IDS = CountingIds()


async def _fans(store: InMemoryEventStore, ctx: CommandContext, count: int) -> list[int]:
    ids = _IDS
    made = [
        await create_fan(CreateFan(name=f"Ann {n}"), ctx, store=store, ids=ids)
        for n in range(count)
    ]
    return [result.fan.fan_id for result in made]


async def test_creating_a_person_appends_to_the_person_and_every_fan_at_once(
    store: InMemoryEventStore, alice: CommandContext
) -> None:
    fan_ids = await _fans(store, alice, 2)
    before = len(store.log)
    result = await create_person(
        CreatePerson(fan_ids=tuple(fan_ids)), alice, store=store, ids=CountingIds()
    )
    added = store.log[before:]
    assert [type(r.event) for r in added] == [
        Person.Created,
        Fan.LinkedToPerson,
        Fan.LinkedToPerson,
    ]
    assert len({r.transaction_id for r in added}) == 1
    assert result.position == added[-1].position


async def test_a_fan_of_another_account_is_an_invalid_value_and_nothing_is_recorded(
    store: InMemoryEventStore, alice: CommandContext, bob: CommandContext
) -> None:
    [mine] = await _fans(store, alice, 1)
    [theirs] = await _fans(store, bob, 1)
    before = len(store.log)
    with pytest.raises(InvalidValue):
        await create_person(
            CreatePerson(fan_ids=(mine, theirs)), alice, store=store, ids=CountingIds()
        )
    assert len(store.log) == before


class ReadsBeforeWrites(InMemoryEventStore):
    """Holds the first ``writers`` appends until all of them have arrived: each has read its
    streams before any has written, the race a conflict check exists for."""

    def __init__(self, writers: int) -> None:
        super().__init__()
        self.writers = writers
        self.armed = False
        self.arrived = 0
        self.all_read = asyncio.Event()

    async def append_all(self, writes: Any, **kwargs: Any) -> list[int]:
        if not self.armed:
            return await super().append_all(writes, **kwargs)
        self.arrived += 1
        if self.arrived <= self.writers:
            if self.arrived == self.writers:
                self.all_read.set()
            await asyncio.wait_for(self.all_read.wait(), timeout=5)
        return await super().append_all(writes, **kwargs)


async def test_two_links_of_one_fan_that_read_it_unlinked_conflict_and_the_loser_is_refused(
    alice: CommandContext,
) -> None:
    store = ReadsBeforeWrites(writers=2)
    a, b, c = await _fans(store, alice, 3)
    store.armed = True
    ids = CountingIds()
    outcomes = await asyncio.gather(
        create_person(CreatePerson(fan_ids=(a, b)), alice, store=store, ids=ids),
        create_person(CreatePerson(fan_ids=(a, c)), alice, store=store, ids=ids),
        return_exceptions=True,
    )
    assert store.arrived == 2, "the loser, reading the fan again, decided without appending"
    [refused] = [o for o in outcomes if isinstance(o, Exception)]
    assert isinstance(refused, FanAlreadyLinked)
    [won] = [o for o in outcomes if not isinstance(o, Exception)]
    fan_a = [r for r in store.log if r.stream_id == f"fan-{a}"]
    assert [type(r.event) for r in fan_a] == [Fan.Created, Fan.LinkedToPerson]
    assert fan_a[-1].event.person_id == won.person.person_id


async def test_linking_and_unlinking_move_a_fan_between_people(
    store: InMemoryEventStore, alice: CommandContext
) -> None:
    a, b, c, d = await _fans(store, alice, 4)
    ids = CountingIds()
    first = (await create_person(CreatePerson(fan_ids=(a, b)), alice, store=store, ids=ids)).person
    second = (await create_person(CreatePerson(fan_ids=(c, d)), alice, store=store, ids=ids)).person
    with pytest.raises(FanAlreadyLinked):
        await link_fan(LinkFan(person_id=second.person_id, fan_id=a), alice, store=store)
    await unlink_fan(UnlinkFan(person_id=first.person_id, fan_id=a), alice, store=store)
    moved = await link_fan(LinkFan(person_id=second.person_id, fan_id=a), alice, store=store)
    assert moved.person.fan_ids == (c, d, a)


async def test_another_accounts_person_is_not_found(
    store: InMemoryEventStore, alice: CommandContext, bob: CommandContext
) -> None:
    a, b = await _fans(store, alice, 2)
    [c] = await _fans(store, bob, 1)
    person = await create_person(
        CreatePerson(fan_ids=(a, b)), alice, store=store, ids=CountingIds()
    )
    with pytest.raises(NotFound):
        await link_fan(LinkFan(person_id=person.person.person_id, fan_id=c), bob, store=store)


async def test_an_erased_fan_can_still_be_unlinked_but_not_linked(
    store: InMemoryEventStore, alice: CommandContext
) -> None:
    a, b, c = await _fans(store, alice, 3)
    person = await create_person(
        CreatePerson(fan_ids=(a, b)), alice, store=store, ids=CountingIds()
    )
    await erase_fan(EraseFan(fan_id=c), alice, store=store)
    with pytest.raises(InvalidValue):
        await link_fan(LinkFan(person_id=person.person.person_id, fan_id=c), alice, store=store)
    await erase_fan(EraseFan(fan_id=a), alice, store=store)
    left = await unlink_fan(
        UnlinkFan(person_id=person.person.person_id, fan_id=a), alice, store=store
    )
    assert left.person.fan_ids == (b,)
