"""A person: fans of one account, on any platforms, known to be the same human being.

The person's stream lists its fans; each fan's own stream says which person it belongs to
(``Fan.LinkedToPerson``), and a link appends to both streams in one transaction at their
expected versions. So "a fan belongs to at most one person" is decided on the fan's stream:
two links of one fan racing each other conflict there, and the loser, reading again, is
refused. The events carry ids only, never personal data.
"""

from __future__ import annotations

from collections.abc import Iterable

from eventsourcing.domain import BaseAggregate, event

from domain.base import AggregateCreated, DomainEvent
from domain.errors import Gone, IllegalState, InvalidValue

MIN_FANS = 2
# Far above any real person (one account per platform, a few old ones): a guard on input.
MAX_FANS = 50


def person_stream_id(person_id: int) -> str:
    return f"person-{person_id}"


class FanAlreadyLinked(IllegalState):
    """The fan belongs to another person already (409): unlink it there first."""

    def __init__(self, fan_id: int, person_id: int) -> None:
        super().__init__(f"fan {fan_id} already belongs to person {person_id}")
        self.fan_id = fan_id
        self.person_id = person_id


class NotLinked(Gone):
    """The person holds no such fan (404 at the API, like any missing resource)."""


def distinct_fan_ids(fan_ids: Iterable[int]) -> tuple[int, ...]:
    """The fans a new person starts with: at least two, each named once, in the order given."""
    ids: list[int] = []
    for fan_id in fan_ids:
        if isinstance(fan_id, bool) or not isinstance(fan_id, int) or fan_id < 1:
            raise InvalidValue("fan_ids", "must be positive integer fan ids")
        if fan_id in ids:
            raise InvalidValue("fan_ids", f"names fan {fan_id} twice")
        ids.append(fan_id)
    if len(ids) < MIN_FANS:
        raise InvalidValue("fan_ids", f"a person needs at least {MIN_FANS} different fans")
    if len(ids) > MAX_FANS:
        raise InvalidValue("fan_ids", f"a person holds at most {MAX_FANS} fans")
    return tuple(ids)


class Person(BaseAggregate[str]):
    @staticmethod
    def create_id(person_id: int) -> str:
        return person_stream_id(person_id)

    class Event(DomainEvent):
        pass

    class Created(Event, AggregateCreated):
        person_id: int
        tenant: str
        fan_ids: tuple[int, ...]

    class FanLinked(Event):
        fan_id: int

    class FanUnlinked(Event):
        fan_id: int

    @classmethod
    def found(cls, *, person_id: int, tenant: str, fan_ids: Iterable[int]) -> Person:
        return cls(person_id=person_id, tenant=tenant, fan_ids=distinct_fan_ids(fan_ids))

    @event(Created)
    def __init__(self, person_id: int, tenant: str, fan_ids: tuple[int, ...]) -> None:
        self.person_id = person_id
        self.tenant = tenant
        self.fan_ids = tuple(fan_ids)

    def link(self, fan_id: int) -> bool:
        """Add a fan; False (nothing recorded) if it is one of this person's already."""
        if fan_id in self.fan_ids:
            return False
        if len(self.fan_ids) >= MAX_FANS:
            raise InvalidValue("fan_id", f"a person holds at most {MAX_FANS} fans")
        self._fan_linked(fan_id=fan_id)
        return True

    @event(FanLinked)
    def _fan_linked(self, fan_id: int) -> None:
        self.fan_ids = (*self.fan_ids, fan_id)

    def unlink(self, fan_id: int) -> None:
        """Take a fan out; the person stays, with what remains (a fan may be added again)."""
        if fan_id not in self.fan_ids:
            raise NotLinked(f"fan {fan_id} is not linked to person {self.person_id}")
        self._fan_unlinked(fan_id=fan_id)

    @event(FanUnlinked)
    def _fan_unlinked(self, fan_id: int) -> None:
        self.fan_ids = tuple(f for f in self.fan_ids if f != fan_id)
