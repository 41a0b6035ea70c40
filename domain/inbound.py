"""An inbound message: a fan writing to the creator, as a platform webhook reports it.

Its stream is ``inbound-<tenant>:<uuid>``, apart from outgoing messages (``message-``). Inbound
messages recorded before they had a prefix of their own live at ``message-<tenant>:<uuid>``
and stay there (the audit hash chain covers stream ids): application/message_streams.py reads
both. A message id names one message of a tenant, inbound or outgoing, whichever prefix holds
it; the commands that record one hold the other's stream at version 0 (see application/).
"""

from __future__ import annotations

from eventsourcing.domain import BaseAggregate, event

from domain.base import AggregateCreated, DomainEvent
from domain.message import normalise_content


def inbound_stream_id(tenant: str, message_id: str) -> str:
    """Where a message received from a fan lives, in its tenant's namespace. The id is the
    last 36 characters, as in every message stream (``domain.message.message_id_of``)."""
    return f"inbound-{tenant}:{message_id}"


class InboundMessage(BaseAggregate[str]):
    @staticmethod
    def create_id(tenant: str, message_id: str) -> str:
        return inbound_stream_id(tenant, message_id)

    class Event(DomainEvent):
        pass

    class Received(Event, AggregateCreated):
        message_id: str
        tenant: str
        conversation_id: int
        fan_id: int
        # None once the fan is erased: the key that decrypts it is gone.
        content: str | None
        platform_message_id: str
        # The fan's platform, which it came from; absent before platforms were told apart.
        platform: str = "onlyfans"

    @classmethod
    def receive(
        cls,
        *,
        message_id: str,
        tenant: str,
        conversation_id: int,
        fan_id: int,
        content: str,
        platform_message_id: str,
        platform: str = "onlyfans",
    ) -> InboundMessage:
        return cls(
            message_id=message_id,
            tenant=tenant,
            conversation_id=conversation_id,
            fan_id=fan_id,
            content=normalise_content(content),
            platform_message_id=platform_message_id.replace("\x00", "")[:200],
            platform=platform,
        )

    @event(Received)
    def __init__(
        self,
        message_id: str,
        tenant: str,
        conversation_id: int,
        fan_id: int,
        content: str | None,
        platform_message_id: str,
        platform: str = "onlyfans",
    ) -> None:
        self.message_id = message_id
        self.tenant = tenant
        self.conversation_id = conversation_id
        self.fan_id = fan_id
        self.platform = platform
        self.content = content
        self.platform_message_id = platform_message_id
        self.status = "received"
