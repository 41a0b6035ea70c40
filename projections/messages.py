"""The messages read model: each message with its delivery status and timestamps."""

from __future__ import annotations

from typing import Any

from application.ports import RecordedEvent, Sql
from domain.fan import Fan
from domain.inbound import InboundMessage
from domain.message import Message

_STATUS_UPDATES: dict[type[Any], tuple[str, str]] = {
    # event -> (status, the column stamped with the event's time)
    Message.Dispatched: ("dispatched", "dispatched_at"),
    Message.Sent: ("sent", "sent_at"),
    Message.Read: ("read", "read_at"),
}


class MessagesProjection:
    name = "messages"
    tables = ("messages",)

    async def apply(self, sql: Sql, recorded: RecordedEvent) -> None:
        event = recorded.event
        message_id = recorded.stream_id.removeprefix("message-")
        if isinstance(event, Message.Queued):
            await sql.execute(
                """
                INSERT INTO messages (message_id, tenant_id, conversation_id, fan_id, direction,
                    content, price_cents, attachments, priority, status, campaign_id,
                    queued_at, updated_at)
                VALUES ($1, $2, $3, $4, 'out', $5, $6, $7, $8, 'queued', $9, $10, $10)
                ON CONFLICT (message_id) DO NOTHING
                """,
                message_id,
                event.tenant,
                event.conversation_id,
                event.fan_id,
                event.content,
                event.price_cents,
                # None once the fan was erased: replayed after an erasure, the row keeps no media.
                [{"type": kind, "url": url} for kind, url in event.attachments or ()],
                event.priority,
                event.campaign_id,
                event.timestamp,
            )
        elif type(event) in _STATUS_UPDATES:
            status, column = _STATUS_UPDATES[type(event)]
            await sql.execute(
                f"UPDATE messages SET status = $2, {column} = $3, updated_at = $3,"
                " platform_message_id = coalesce($4, platform_message_id),"
                " failure_reason = NULL WHERE message_id = $1",
                message_id,
                status,
                event.timestamp,
                getattr(event, "platform_message_id", None),
            )
        elif isinstance(event, Message.Failed):
            await sql.execute(
                "UPDATE messages SET status = 'failed', failure_reason = $2, failed_at = $3,"
                " updated_at = $3 WHERE message_id = $1",
                message_id,
                event.reason,
                event.timestamp,
            )
        elif isinstance(event, Message.Requeued):
            await sql.execute(
                "UPDATE messages SET status = 'queued', failure_reason = NULL,"
                " attempts = attempts + 1, updated_at = $2 WHERE message_id = $1",
                message_id,
                event.timestamp,
            )
        elif isinstance(event, InboundMessage.Received):
            await sql.execute(
                """
                INSERT INTO messages (message_id, tenant_id, conversation_id, fan_id, direction,
                    content, priority, status, platform_message_id, queued_at, updated_at)
                VALUES ($1, $2, $3, $4, 'in', $5, 0, 'received', $6, $7, $7)
                ON CONFLICT (message_id) DO NOTHING
                """,
                message_id,
                event.tenant,
                event.conversation_id,
                event.fan_id,
                event.content,
                event.platform_message_id,
                event.timestamp,
            )
        elif isinstance(event, Message.Purchased):
            await sql.execute(
                "UPDATE messages SET revenue_cents = $2, purchased_at = $3, updated_at = $3"
                " WHERE message_id = $1",
                message_id,
                event.amount_cents,
                event.timestamp,
            )
        elif isinstance(event, Fan.Erased):
            # Amounts, dates and statuses stay; what the fan wrote or was sent goes.
            await sql.execute(
                "UPDATE messages SET content = NULL, attachments = '[]' WHERE fan_id = $1",
                int(recorded.stream_id.removeprefix("fan-")),
            )
