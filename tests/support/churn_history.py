"""A tenant's fans, messages and purchases written into the log at chosen times: for the tests
of the churn activity view and model (projections/churn_activity.py, application/churn.py)."""

from __future__ import annotations

import dataclasses
import uuid
from datetime import datetime
from typing import Any

from adapters import bootstrap
from application.ports import EventMetadata, StreamWrite
from domain.fan import Fan
from domain.inbound import InboundMessage
from domain.message import Message


class History:
    def __init__(self, container: bootstrap.Container, tenant: str) -> None:
        self.container = container
        self.tenant = tenant
        self.fans: dict[int, Fan] = {}
        # stream id -> (stream type, its new events, each with its own time)
        self.pending: dict[str, tuple[str, list[Any]]] = {}

    def _write(self, aggregate: Any, stream_type: str, when: datetime) -> None:
        events = [dataclasses.replace(e, timestamp=when) for e in aggregate.collect_events()]
        self.pending.setdefault(aggregate.id, (stream_type, []))[1].extend(events)

    async def flush(self) -> None:
        """Append what was written: each stream's new events as one write, many streams per
        transaction (the log's order then follows streams, not times: the views read times)."""
        metadata = EventMetadata(
            tenant=self.tenant, actor="test", correlation_id="c", causation_id="c"
        )
        writes = [
            StreamWrite(stream_id, kind, events, events[0].originator_version - 1)
            for stream_id, (kind, events) in self.pending.items()
        ]
        for start in range(0, len(writes), 500):
            await self.container.events.append_all(writes[start : start + 500], metadata=metadata)
        self.pending.clear()

    def fan(self, fan_id: int, when: datetime, **fields: Any) -> Fan:
        fan = Fan.register(fan_id=fan_id, tenant=self.tenant, name=f"Fan {fan_id}", **fields)
        self.fans[fan_id] = fan
        self._write(fan, "fan", when)
        return fan

    def fan_wrote(self, fan_id: int, when: datetime) -> None:
        inbound = InboundMessage.receive(
            message_id=str(uuid.uuid4()),
            tenant=self.tenant,
            conversation_id=fan_id,
            fan_id=fan_id,
            content="hey",
            platform_message_id=uuid.uuid4().hex,
        )
        self._write(inbound, "message", when)

    def sent(self, fan_id: int, when: datetime, *, campaign: int | None = None) -> Message:
        message = Message.queue(
            message_id=str(uuid.uuid4()),
            tenant=self.tenant,
            conversation_id=fan_id,
            fan_id=fan_id,
            content="hi",
            campaign_id=campaign,
        )
        self._write(message, "message", when)
        return message

    def read(self, message: Message, when: datetime) -> None:
        message.dispatch("normal")
        message.mark_sent("p-1")
        message.mark_read()
        self._write(message, "message", when)

    def bought(self, fan_id: int, when: datetime, amount: int = 1000) -> None:
        self.fans[fan_id].record_purchase(amount, str(uuid.uuid4()))
        self._write(self.fans[fan_id], "fan", when)

    def imported(self, fan_id: int, when: datetime, occurred_at: datetime, amount: int) -> None:
        self.fans[fan_id].import_transaction(
            amount_cents=amount,
            kind="tip",
            occurred_at=occurred_at,
            transaction_key=uuid.uuid4().hex,
        )
        self._write(self.fans[fan_id], "fan", when)

    def deleted(self, fan_id: int, when: datetime) -> None:
        self.fans[fan_id].delete()
        self._write(self.fans[fan_id], "fan", when)

    def erased(self, fan_id: int, when: datetime) -> None:
        self.fans[fan_id].erase()
        self._write(self.fans[fan_id], "fan", when)
