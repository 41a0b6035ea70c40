"""The conversations read model: one row per conversation, with its latest activity."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from application.ports import RecordedEvent, Sql
from domain.conversation import Conversation
from domain.inbound import InboundMessage
from domain.message import Message
from projections.base import TableRows, folds_all

_COLUMNS = (
    "conversation_id",
    "tenant_id",
    "fan_id",
    "platform",
    "created_at",
    "last_message_at",
    "activity_at",
    "message_count",
)


class ConversationsProjection:
    name = "conversations"
    tables = ("conversations",)

    async def apply_batch(self, sql: Sql, batch: Sequence[RecordedEvent]) -> None:
        """The same changes as ``apply`` event by event, folded over the rows in memory."""
        if not folds_all(batch, (Conversation.Event,), frozenset({Conversation.Started})):
            for recorded in batch:
                await self.apply(sql, recorded)
            return
        events = [
            r.event
            for r in batch
            if isinstance(r.event, Conversation.Started | Message.Queued | InboundMessage.Received)
        ]
        if not events:
            return
        rows = TableRows("conversations", "conversation_id", "bigint", _COLUMNS)
        await rows.load(sql, (event.conversation_id for event in events))
        for event in events:
            row = rows.get(event.conversation_id)
            if isinstance(event, Conversation.Started):
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
                        },
                    )
            elif row is not None:
                row["last_message_at"] = _greatest(row["last_message_at"], event.timestamp)
                row["activity_at"] = _greatest(row["activity_at"], event.timestamp)
                row["message_count"] += 1
        await rows.flush(sql)

    async def apply(self, sql: Sql, recorded: RecordedEvent) -> None:
        event = recorded.event
        if isinstance(event, Conversation.Started):
            await sql.execute(
                """
                INSERT INTO conversations
                    (conversation_id, tenant_id, fan_id, platform, created_at, activity_at)
                VALUES ($1, $2, $3, $4, $5, $5)
                ON CONFLICT (conversation_id) DO NOTHING
                """,
                event.conversation_id,
                event.tenant,
                event.fan_id,
                event.platform,
                event.timestamp,
            )
        elif isinstance(event, Message.Queued | InboundMessage.Received):
            await sql.execute(
                """
                UPDATE conversations
                SET last_message_at = greatest(last_message_at, $2),
                    activity_at = greatest(activity_at, $2),
                    message_count = message_count + 1
                WHERE conversation_id = $1
                """,
                event.conversation_id,
                event.timestamp,
            )


def _greatest(current: datetime | None, new: datetime) -> datetime:
    """SQL's greatest(): NULLs are ignored."""
    return new if current is None else max(current, new)
