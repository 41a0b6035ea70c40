"""The HTTP contract of /api/crm/people (camelCase on the wire)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

import msgspec

from adapters.http.messaging_schemas import FanId
from adapters.http.openapi import rule
from adapters.http.schemas import Body
from application.people_queries import (
    PersonConversationView,
    PersonFanView,
    PersonView,
    Suggestion,
)
from domain.person import MAX_FANS, MIN_FANS, Person


class CreatePersonBody(Body):
    """Fans of this account, on any platforms, that are one person."""

    fan_ids: Annotated[
        list[FanId],
        rule(
            "Different live fans of this account, on any platforms",
            min_items=MIN_FANS,
            max_items=MAX_FANS,
            unique_items=True,
        ),
    ]


class LinkFanBody(Body):
    fan_id: FanId


class PersonLinksOut(msgspec.Struct, kw_only=True, rename="camel"):
    id: int
    fan_ids: list[int]


class PersonChangedOut(msgspec.Struct, kw_only=True, rename="camel"):
    """A command's answer: the person's fans, and the log position to read your write at."""

    person: PersonLinksOut
    position: int

    @classmethod
    def of(cls, person: Person, position: int) -> PersonChangedOut:
        return cls(
            person=PersonLinksOut(id=person.person_id, fan_ids=list(person.fan_ids)),
            position=position,
        )


class PersonFanOut(msgspec.Struct, kw_only=True, rename="camel"):
    id: int
    platform: str
    name: str | None
    handle: str | None
    value_cents: int

    @classmethod
    def from_view(cls, view: PersonFanView) -> PersonFanOut:
        return cls(
            id=view.fan_id,
            platform=view.platform,
            name=view.name,
            handle=view.handle,
            value_cents=view.value_cents,
        )


class PersonConversationOut(msgspec.Struct, kw_only=True, rename="camel"):
    id: int
    fan_id: int
    platform: str
    last_message_at: datetime | None
    unread_count: int

    @classmethod
    def from_view(cls, view: PersonConversationView) -> PersonConversationOut:
        return cls(
            id=view.conversation_id,
            fan_id=view.fan_id,
            platform=view.platform,
            last_message_at=view.last_message_at,
            unread_count=view.unread_count,
        )


class PersonOut(msgspec.Struct, kw_only=True, rename="camel"):
    id: int
    fans: list[PersonFanOut]
    lifetime_value_cents: int
    conversations: list[PersonConversationOut]
    created_at: datetime

    @classmethod
    def from_view(cls, view: PersonView) -> PersonOut:
        return cls(
            id=view.person_id,
            fans=[PersonFanOut.from_view(fan) for fan in view.fans],
            lifetime_value_cents=view.lifetime_value_cents,
            conversations=[PersonConversationOut.from_view(c) for c in view.conversations],
            created_at=view.created_at,
        )


class PersonEnvelope(msgspec.Struct, kw_only=True):
    person: PersonOut


class PeopleListOut(msgspec.Struct, kw_only=True, rename="camel"):
    people: list[PersonOut]
    next_cursor: str | None


class SuggestionOut(msgspec.Struct, kw_only=True, rename="camel"):
    matched_by: list[str]
    fans: list[PersonFanOut]

    @classmethod
    def from_view(cls, view: Suggestion) -> SuggestionOut:
        return cls(
            matched_by=list(view.matched_by),
            fans=[PersonFanOut.from_view(fan) for fan in view.fans],
        )


class SuggestionsOut(msgspec.Struct, kw_only=True):
    suggestions: list[SuggestionOut]
