"""The people read model: each person of an account and the ids of the fans it holds.

Only ids live here: what a person's fans are called, are worth and said is read, at query
time, from the fans and conversations read models, so that an erased fan's personal data is
never copied where its erasure would have to find it.
"""

from __future__ import annotations

from collections.abc import Sequence

from application.ports import RecordedEvent, Sql
from domain.person import Person
from projections.base import TableRows

_PEOPLE = ["person_id", "tenant_id", "created_at", "updated_at", "version"]
_LINKS = ["fan_id", "person_id", "tenant_id", "linked_at"]
_FOLDED = frozenset({Person.Created, Person.FanLinked, Person.FanUnlinked})


class PeopleProjection:
    name = "people"
    tables = ("people", "person_fans")

    async def apply(self, sql: Sql, recorded: RecordedEvent) -> None:
        await self.apply_batch(sql, [recorded])

    async def apply_batch(self, sql: Sql, batch: Sequence[RecordedEvent]) -> None:
        """Folded over the rows in memory (see projections.base)."""
        events = [r for r in batch if type(r.event) in _FOLDED]
        if not events:
            return
        people = TableRows("people", "person_id", "bigint", _PEOPLE)
        links = TableRows("person_fans", "fan_id", "bigint", _LINKS)
        await people.load(sql, {_person_id(r.stream_id) for r in events})
        await links.load(sql, {fan_id for r in events for fan_id in _fan_ids(r)})
        for recorded in events:
            _fold(people, links, recorded)
        await people.flush(sql)
        await links.flush(sql)


def _person_id(stream_id: str) -> int:
    return int(stream_id.removeprefix("person-"))


def _fan_ids(recorded: RecordedEvent) -> tuple[int, ...]:
    event = recorded.event
    if type(event) is Person.Created:
        return tuple(event.fan_ids)
    return (event.fan_id,)


def _fold(people: TableRows, links: TableRows, recorded: RecordedEvent) -> None:
    event = recorded.event
    person_id = _person_id(recorded.stream_id)
    tenant = recorded.metadata.tenant
    if type(event) is Person.Created:
        people.put(
            person_id,
            {
                "tenant_id": tenant,
                "created_at": event.timestamp,
                "updated_at": event.timestamp,
                "version": recorded.version,
            },
        )
    row = people.get(person_id)
    if row is None:
        return
    row["updated_at"] = event.timestamp
    row["version"] = recorded.version
    if type(event) is Person.FanUnlinked:
        links.remove(event.fan_id)
        return
    for fan_id in _fan_ids(recorded):
        links.put(
            fan_id,
            {"person_id": person_id, "tenant_id": tenant, "linked_at": event.timestamp},
        )
