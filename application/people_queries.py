"""Queries on people (fans linked as one person), and the port that answers them."""

from __future__ import annotations

from datetime import datetime
from typing import Literal, Protocol

import msgspec

MatchedBy = Literal["handle", "email"]


class PersonFanView(msgspec.Struct, frozen=True, kw_only=True):
    fan_id: int
    platform: str
    name: str | None
    handle: str | None
    value_cents: int


class PersonConversationView(msgspec.Struct, frozen=True, kw_only=True):
    conversation_id: int
    fan_id: int
    platform: str
    last_message_at: datetime | None
    unread_count: int


class PersonView(msgspec.Struct, frozen=True, kw_only=True):
    """A person as its live fans show it: an erased or deleted fan is no longer among them."""

    person_id: int
    fans: list[PersonFanView]
    conversations: list[PersonConversationView]
    created_at: datetime
    version: int

    @property
    def lifetime_value_cents(self) -> int:
        return sum(fan.value_cents for fan in self.fans)


class PeoplePage(msgspec.Struct, frozen=True):
    people: list[PersonView]
    next_cursor: str | None


class Suggestion(msgspec.Struct, frozen=True, kw_only=True):
    """Live fans, on at least two platforms, not linked to anyone, that look like one person:
    the same handle (as the import compares them) or the same email."""

    matched_by: tuple[MatchedBy, ...]
    fans: list[PersonFanView]


class PeopleReadModel(Protocol):
    async def get_person(self, tenant: str, person_id: int) -> PersonView | None: ...

    async def list_people(self, tenant: str, limit: int, cursor: str | None) -> PeoplePage: ...

    async def suggestions(self, tenant: str, limit: int) -> list[Suggestion]: ...
