"""The conversations read model: one row per conversation, with its latest activity."""

from __future__ import annotations

from application.ports import RecordedEvent, Sql
from domain.conversation import Conversation
from domain.inbound import InboundMessage
from domain.message import Message


class ConversationsProjection:
    name = "conversations"
    tables = ("conversations",)

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
