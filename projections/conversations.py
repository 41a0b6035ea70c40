"""The conversations read model: one row per conversation, with its latest activity and its
unread count (the fan's messages since the account's last one, as the live stream counts)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from application.ports import RecordedEvent, Sql
from domain.conversation import Conversation, conversation_id_of
from domain.inbound import InboundMessage
from domain.message import Message
from projections.base import TableRows

_COLUMNS = (
    "conversation_id",
    "tenant_id",
    "fan_id",
    "platform",
    "created_at",
    "last_message_at",
    "activity_at",
    "message_count",
    "assigned_to",
    "unread_count",
)


# A conversation starts, is assigned, and counts the messages queued in it or received into it.
_HANDLED = frozenset(
    {Conversation.Started, Conversation.Assigned, Message.Queued, InboundMessage.Received}
)


class ConversationsProjection:
    name = "conversations"
    tables = ("conversations",)

    async def apply(self, sql: Sql, recorded: RecordedEvent) -> None:
        await self.apply_batch(sql, [recorded])

    async def apply_batch(self, sql: Sql, batch: Sequence[RecordedEvent]) -> None:
        """Folded over the rows in memory (see projections.base)."""
        events = [r.event for r in batch if type(r.event) in _HANDLED]
        if not events:
            return
        rows = TableRows("conversations", "conversation_id", "bigint", _COLUMNS)
        await rows.load(sql, {_conversation_id(event) for event in events})
        for event in events:
            row = rows.get(_conversation_id(event))
            if type(event) is Conversation.Assigned:
                if row is not None:
                    row["assigned_to"] = event.member_id
            elif type(event) is Conversation.Started:
                if row is None:
                    rows.put(
                        event.conversation_id,
                        {
                            "tenant_id": event.tenant,
                            "fan_id": event.fan_id,
                            "platform": event.platform,
                            "created_at": event.timestamp,
                            "last_message_at": None,
                            "activity_at": event.timestamp,
                            "message_count": 0,
                            "assigned_to": None,
                            "unread_count": 0,
                        },
                    )
            elif row is not None:
                row["last_message_at"] = _greatest(row["last_message_at"], event.timestamp)
                row["activity_at"] = _greatest(row["activity_at"], event.timestamp)
                row["message_count"] += 1
                if type(event) is InboundMessage.Received:
                    row["unread_count"] += 1
                else:  # the account wrote: the fan's messages are answered
                    row["unread_count"] = 0
        await rows.flush(sql)


def _conversation_id(event: Any) -> int:
    # An assignment names its conversation by its stream only.
    if type(event) is Conversation.Assigned:
        return conversation_id_of(event.originator_id)
    return int(event.conversation_id)


def _greatest(current: datetime | None, new: datetime) -> datetime:
    """SQL's greatest(): NULLs are ignored."""
    return new if current is None else max(current, new)
