"""The Conversation aggregate: the one thread between a creator (tenant) and a fan on a platform."""

from __future__ import annotations

from eventsourcing.domain import BaseAggregate, event

from domain.base import AggregateCreated, DomainEvent


def conversation_stream_id(conversation_id: int) -> str:
    return f"conversation-{conversation_id}"


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
