"""Messages written into the log as members and fans would have, at chosen times: for the
tests of views built from them (member analytics, a shift's unanswered messages)."""

from __future__ import annotations

import dataclasses
import uuid
from datetime import datetime
from typing import Any

from adapters import bootstrap
from application.ports import EventMetadata, StreamWrite
from domain.inbound import InboundMessage
from domain.message import Message


class Log:
    """Writes a tenant's messages into the log as members would have, at chosen times."""

    def __init__(self, container: bootstrap.Container, tenant: str) -> None:
        self.container = container
        self.tenant = tenant

    async def _append(self, aggregate: Any, when: datetime, actor: str) -> None:
        events = [dataclasses.replace(e, timestamp=when) for e in aggregate.collect_events()]
        metadata = EventMetadata(
            tenant=self.tenant, actor=actor, correlation_id="c", causation_id="c"
        )
        write = StreamWrite(
            aggregate.id, "message", events, events[0].originator_version - 1, metadata=metadata
        )
        await self.container.events.append_all([write], metadata=metadata)

    async def sent(
        self,
        member: str | None,
        conversation: int,
        when: datetime,
        *,
        price: int = 0,
        campaign: int | None = None,
    ) -> Message:
        message = Message.queue(
            message_id=str(uuid.uuid4()),
            tenant=self.tenant,
            conversation_id=conversation,
            fan_id=conversation,
            content="hi",
            price_cents=price,
            campaign_id=campaign,
            sent_by=member,
        )
        await self._append(message, when, f"member:{member}" if member else "apikey:k")
        return message

    async def bought(self, message: Message, when: datetime) -> None:
        message.dispatch("normal")
        message.mark_sent("p-1")
        await self._append(message, when, "sender")
        message.purchase(message.price_cents)
        # As the webhook records it: in the name of the member who sent the message.
        await self._append(message, when, f"member:{message.sent_by}")

    async def fan_wrote(self, conversation: int, when: datetime) -> str:
        """The fan's message's id."""
        message_id = str(uuid.uuid4())
        inbound = InboundMessage.receive(
            message_id=message_id,
            tenant=self.tenant,
            conversation_id=conversation,
            fan_id=conversation,
            content="hey",
            platform_message_id=uuid.uuid4().hex,
        )
        await self._append(inbound, when, "webhook")
        return message_id
