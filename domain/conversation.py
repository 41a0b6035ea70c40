"""The Conversation aggregate: the one thread between a creator (tenant) and a fan on a platform.

A conversation may be assigned to one member of the creator's workspace, who answers it, or
to nobody. Who may be assigned is the workspace's to say (application/conversations.py); the
conversation refuses a member whose accounts do not include its own.
"""

from __future__ import annotations

from eventsourcing.domain import BaseAggregate, event

from domain.base import AggregateCreated, DomainEvent
from domain.errors import InvalidValue

_PREFIX = "conversation-"


def conversation_stream_id(conversation_id: int) -> str:
    return f"{_PREFIX}{conversation_id}"


def conversation_id_of(stream_id: str) -> int:
    """The id a conversation's stream is named after (``conversation_stream_id``'s inverse)."""
    return int(stream_id.removeprefix(_PREFIX))


class Conversation(BaseAggregate[str]):
    @staticmethod
    def create_id(conversation_id: int) -> str:
        return conversation_stream_id(conversation_id)

    class Event(DomainEvent):
        pass

    class Started(Event, AggregateCreated):
        conversation_id: int
        tenant: str
        fan_id: int
        platform: str

    class Assigned(Event):
        member_id: str | None  # None: unassigned

    @classmethod
    def start(
        cls, *, conversation_id: int, tenant: str, fan_id: int, platform: str
    ) -> Conversation:
        return cls(conversation_id=conversation_id, tenant=tenant, fan_id=fan_id, platform=platform)

    @event(Started)
    def __init__(self, conversation_id: int, tenant: str, fan_id: int, platform: str) -> None:
        self.conversation_id = conversation_id
        self.tenant = tenant
        self.fan_id = fan_id
        self.platform = platform
        self.assigned_to: str | None = None

    def assign(self, member_id: str | None, *, member_accounts: tuple[str, ...] | None) -> None:
        """To ``member_id`` (who may act on ``member_accounts``, None: every account of the
        workspace), or to nobody (None). Assigning it as it is changes nothing."""
        if (
            member_id is not None
            and member_accounts is not None
            and self.tenant not in member_accounts
        ):
            raise InvalidValue("member_id", "may not act on this conversation's account")
        if member_id != self.assigned_to:
            self._assigned(member_id=member_id)

    @event(Assigned)
    def _assigned(self, member_id: str | None) -> None:
        self.assigned_to = member_id
