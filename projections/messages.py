"""The messages read model: each message with its delivery status and timestamps."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from application.ports import RecordedEvent, Sql
from domain.fan import Fan
from domain.inbound import InboundMessage
from domain.message import Message
from projections.base import Row, TableRows, folds_all

_STATUS_UPDATES: dict[type[Any], tuple[str, str]] = {
    # event -> (status, the column stamped with the event's time)
    Message.Dispatched: ("dispatched", "dispatched_at"),
    Message.Sent: ("sent", "sent_at"),
    Message.Read: ("read", "read_at"),
}
# Stopped by its campaign (paused or cancelled): the status, with the reason.
_STOPPED: dict[type[Any], str] = {Message.Held: "held", Message.Cancelled: "cancelled"}
# The platform's receipts: a time, not a status (a delivered message is still "sent").
_RECEIPTS: dict[type[Any], str] = {Message.Delivered: "delivered_at", Message.Clicked: "clicked_at"}


_COLUMNS = [
    "message_id",
    "tenant_id",
    "conversation_id",
    "fan_id",
    "direction",
    "content",
    "price_cents",
    "attachments",
    "priority",
    "status",
    "failure_reason",
    "campaign_id",
    "platform_message_id",
    "attempts",
    "queued_at",
    "dispatched_at",
    "sent_at",
    "read_at",
    "failed_at",
    "updated_at",
    "revenue_cents",
    "purchased_at",
    "delivered_at",
    "clicked_at",
]
_FOLDED = frozenset(
    {
        Message.Queued,
        InboundMessage.Received,
        *_STATUS_UPDATES,
        Message.Failed,
        Message.Requeued,
        Message.Purchased,
        Message.Released,
        *_STOPPED,
        *_RECEIPTS,
    }
)
_NEW_ROW: Row = dict.fromkeys(_COLUMNS) | {"attempts": 1, "revenue_cents": 0}


class MessagesProjection:
    name = "messages"
    tables = ("messages",)

    async def apply_batch(self, sql: Sql, batch: Sequence[RecordedEvent]) -> None:
        """The same changes as ``apply`` event by event, folded over the rows in memory."""
        if not folds_all(batch, (Message.Event, InboundMessage.Event), _FOLDED):
            for recorded in batch:
                await self.apply(sql, recorded)
            return
        events = [r for r in batch if isinstance(r.event, Message.Event | InboundMessage.Event)]
        erased = [
            int(r.stream_id.removeprefix("fan-")) for r in batch if isinstance(r.event, Fan.Erased)
        ]
        if events:
            rows = TableRows("messages", "message_id", "uuid", _COLUMNS)
            await rows.load(sql, (_message_id(r) for r in events))
            for recorded in events:
                _fold(rows, recorded)
            if erased:
                _erase_in_memory(rows, set(erased))
            await rows.flush(sql)
        if erased:
            # After the batch's own rows are written: an erased fan gets no new messages, so
            # clearing all of theirs at the end is what clearing at the erasure would leave.
            await sql.execute(
                "UPDATE messages SET content = NULL, attachments = '[]'"
                " WHERE fan_id = ANY($1::bigint[])",
                erased,
            )

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
        elif type(event) in _STOPPED:
            await sql.execute(
                "UPDATE messages SET status = $2, failure_reason = $3, updated_at = $4"
                " WHERE message_id = $1",
                message_id,
                _STOPPED[type(event)],
                event.reason,
                event.timestamp,
            )
        elif isinstance(event, Message.Released):
            await sql.execute(
                "UPDATE messages SET status = 'queued', failure_reason = NULL, updated_at = $2"
                " WHERE message_id = $1",
                message_id,
                event.timestamp,
            )
        elif type(event) in _RECEIPTS:
            await sql.execute(
                f"UPDATE messages SET {_RECEIPTS[type(event)]} = $2, updated_at = $2"
                " WHERE message_id = $1",
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


def _message_id(recorded: RecordedEvent) -> str:
    return recorded.stream_id.removeprefix("message-")


def _fold(rows: TableRows, recorded: RecordedEvent) -> None:
    event = recorded.event
    message_id = _message_id(recorded)
    row = rows.get(message_id)
    if isinstance(event, Message.Queued):
        if row is None:
            rows.put(
                message_id,
                _NEW_ROW
                | {
                    "tenant_id": event.tenant,
                    "conversation_id": event.conversation_id,
                    "fan_id": event.fan_id,
                    "direction": "out",
                    "content": event.content,
                    "price_cents": event.price_cents,
                    "attachments": [
                        {"type": kind, "url": url} for kind, url in event.attachments or ()
                    ],
                    "priority": event.priority,
                    "status": "queued",
                    "campaign_id": event.campaign_id,
                    "queued_at": event.timestamp,
                    "updated_at": event.timestamp,
                },
            )
    elif isinstance(event, InboundMessage.Received):
        if row is None:
            rows.put(
                message_id,
                _NEW_ROW
                | {
                    "tenant_id": event.tenant,
                    "conversation_id": event.conversation_id,
                    "fan_id": event.fan_id,
                    "direction": "in",
                    "content": event.content,
                    "price_cents": 0,
                    "attachments": [],
                    "priority": 0,
                    "status": "received",
                    "platform_message_id": event.platform_message_id,
                    "queued_at": event.timestamp,
                    "updated_at": event.timestamp,
                },
            )
    elif row is None:
        return
    elif type(event) in _STATUS_UPDATES:
        status, column = _STATUS_UPDATES[type(event)]
        row.update(status=status, updated_at=event.timestamp, failure_reason=None)
        row[column] = event.timestamp
        platform_message_id = getattr(event, "platform_message_id", None)
        if platform_message_id is not None:
            row["platform_message_id"] = platform_message_id
    elif isinstance(event, Message.Failed):
        row.update(
            status="failed",
            failure_reason=event.reason,
            failed_at=event.timestamp,
            updated_at=event.timestamp,
        )
    elif isinstance(event, Message.Requeued):
        row.update(status="queued", failure_reason=None, updated_at=event.timestamp)
        row["attempts"] += 1
    elif type(event) in _STOPPED:
        row.update(
            status=_STOPPED[type(event)], failure_reason=event.reason, updated_at=event.timestamp
        )
    elif isinstance(event, Message.Released):
        row.update(status="queued", failure_reason=None, updated_at=event.timestamp)
    elif type(event) in _RECEIPTS:
        row.update({_RECEIPTS[type(event)]: event.timestamp, "updated_at": event.timestamp})
    elif isinstance(event, Message.Purchased):
        row.update(
            revenue_cents=event.amount_cents,
            purchased_at=event.timestamp,
            updated_at=event.timestamp,
        )


def _erase_in_memory(rows: TableRows, fans: set[int]) -> None:
    for row in rows.present():
        if row["fan_id"] in fans:
            row.update(content=None, attachments=[])
