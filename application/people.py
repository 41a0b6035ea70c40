"""Person commands: link fans of one account, on any platforms, as one person.

Each command reads the person's stream and every fan it touches, lets both sides decide, and
appends to all of them in one ``append_all`` at the versions read. A fan linked meanwhile by
another command (to another person) makes that append conflict; the retry reads the fan
again and the fan itself refuses (FanAlreadyLinked). Nothing is decided on a read model.
"""

from __future__ import annotations

from typing import cast

import msgspec

from application.context import CommandContext
from application.errors import NotFound
from application.ports import EventStore, IdAllocator, StreamWrite
from application.streams import load, retry_on_conflict
from domain.base import DomainEvent
from domain.errors import InvalidValue
from domain.fan import Fan, fan_stream_id
from domain.person import Person, distinct_fan_ids, person_stream_id

STREAM_TYPE = "person"
FAN_STREAM_TYPE = "fan"


class CreatePerson(msgspec.Struct, frozen=True, kw_only=True):
    fan_ids: tuple[int, ...]


class LinkFan(msgspec.Struct, frozen=True, kw_only=True):
    person_id: int
    fan_id: int


class UnlinkFan(msgspec.Struct, frozen=True, kw_only=True):
    person_id: int
    fan_id: int


class PersonChanged(msgspec.Struct, frozen=True):
    """The person as the command left it, and the log position a reader can wait for."""

    person: Person
    position: int


async def create_person(
    cmd: CreatePerson, ctx: CommandContext, *, store: EventStore, ids: IdAllocator
) -> PersonChanged:
    fan_ids = distinct_fan_ids(cmd.fan_ids)  # refused before an id is spent
    person_id = await ids.next_id("person")

    async def attempt() -> PersonChanged:
        person = Person.found(person_id=person_id, tenant=ctx.tenant, fan_ids=fan_ids)
        fans = [await _named_fan(store, fan_id, ctx, "fan_ids") for fan_id in fan_ids]
        for fan in fans:
            fan.link_to_person(person_id)
        position = await _append(store, person, fans, ctx)
        assert position is not None
        return PersonChanged(person, position)

    return await retry_on_conflict(attempt)


async def link_fan(cmd: LinkFan, ctx: CommandContext, *, store: EventStore) -> PersonChanged:
    async def attempt() -> PersonChanged:
        person, position = await _person(store, cmd.person_id, ctx)
        fan = await _named_fan(store, cmd.fan_id, ctx, "fan_id")
        fan.link_to_person(person.person_id)
        person.link(cmd.fan_id)
        appended = await _append(store, person, [fan], ctx)
        return PersonChanged(person, position if appended is None else appended)

    return await retry_on_conflict(attempt)


async def unlink_fan(cmd: UnlinkFan, ctx: CommandContext, *, store: EventStore) -> PersonChanged:
    async def attempt() -> PersonChanged:
        person, _ = await _person(store, cmd.person_id, ctx)
        person.unlink(cmd.fan_id)
        fan, _ = await load(store, fan_stream_id(cmd.fan_id), tenant=ctx.tenant)
        fan.unlink_from_person(person.person_id)
        position = await _append(store, person, [fan], ctx)
        assert position is not None
        return PersonChanged(person, position)

    return await retry_on_conflict(attempt)


async def _person(store: EventStore, person_id: int, ctx: CommandContext) -> tuple[Person, int]:
    person, position = await load(store, person_stream_id(person_id), tenant=ctx.tenant)
    return cast(Person, person), position


async def _named_fan(store: EventStore, fan_id: int, ctx: CommandContext, field: str) -> Fan:
    """A fan the request names in its body: one that is not there (or is another account's,
    told apart from nothing) is a bad value of the request, not a missing resource."""
    try:
        fan, _ = await load(store, fan_stream_id(fan_id), tenant=ctx.tenant)
    except NotFound:
        raise InvalidValue(field, f"fan {fan_id} not found") from None
    if fan.deleted:
        raise InvalidValue(field, f"fan {fan_id} was deleted")
    return cast(Fan, fan)


async def _append(
    store: EventStore, person: Person, fans: list[Fan], ctx: CommandContext
) -> int | None:
    """Append what the person and its fans decided, together, each at the version read."""
    writes = [_write(person, STREAM_TYPE), *[_write(fan, FAN_STREAM_TYPE) for fan in fans]]
    present = [write for write in writes if write is not None]
    if not present:
        return None
    positions = await store.append_all(present, metadata=ctx.metadata())
    return positions[-1]


def _write(aggregate: Person | Fan, stream_type: str) -> StreamWrite | None:
    pending = cast(list[DomainEvent], aggregate.collect_events())
    if not pending:
        return None
    return StreamWrite(
        aggregate.id, stream_type, pending, expected_version=pending[0].originator_version - 1
    )
