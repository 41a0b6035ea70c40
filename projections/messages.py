"""The messages read model: each message with its delivery status and timestamps."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from application.ports import RecordedEvent, Sql
from domain.fan import Fan
from domain.inbound import InboundMessage
from domain.message import Message, message_id_of
from projections.base import Row, TableRows

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
    "first_failed_at",
    "updated_at",
    "revenue_cents",
    "purchased_at",
    "delivered_at",
    "clicked_at",
    "attempt_history",
    "platform",
]
_FOLDED = frozenset(
    {
        Message.Queued,
        InboundMessage.Received,
        *_STATUS_UPDATES,
        Message.Failed,
        Message.AttemptFailed,
        Message.Requeued,
        Message.Purchased,
        Message.Released,
        *_STOPPED,
        *_RECEIPTS,
    }
)
_NEW_ROW: Row = dict.fromkeys(_COLUMNS) | {"attempts": 0, "revenue_cents": 0, "attempt_history": []}


# What the fold reads: the messages' own events, and a fan's erasure.
_HANDLED = _FOLDED | {Fan.Erased}


class MessagesProjection:
    name = "messages"
    tables = ("messages",)

    async def apply(self, sql: Sql, recorded: RecordedEvent) -> None:
        await self.apply_batch(sql, [recorded])

    async def apply_batch(self, sql: Sql, batch: Sequence[RecordedEvent]) -> None:
        """Folded over the rows in memory (see projections.base)."""
        handled = [r for r in batch if type(r.event) in _HANDLED]
        if not handled:
            return
        events = [r for r in handled if type(r.event) is not Fan.Erased]
        erased = [
            int(r.stream_id.removeprefix("fan-")) for r in handled if type(r.event) is Fan.Erased
        ]
        if events:
            rows = TableRows("messages", _KEY, _KEY_TYPES, _COLUMNS)
            await rows.load(sql, {_key(r) for r in events})
            for recorded in events:
                _fold(rows, recorded)
            if erased:
                _erase_in_memory(rows, set(erased))
            await rows.flush(sql)
        if erased:
            # After the batch's own rows are written: an erased fan gets no new messages, so
            # clearing all of theirs at the end is what clearing at the erasure would leave.
            # Amounts, dates and statuses stay; what the fan wrote or was sent goes.
            await sql.execute(
                "UPDATE messages SET content = NULL, attachments = '[]'"
                " WHERE fan_id = ANY($1::bigint[])",
                erased,
            )


# Message ids are each tenant's own: two tenants may hold the same one.
_KEY = ("message_id", "tenant_id")
_KEY_TYPES = ("uuid", "text")


def _key(recorded: RecordedEvent) -> tuple[str, str]:
    return message_id_of(recorded.stream_id), recorded.metadata.tenant


def _fold(rows: TableRows, recorded: RecordedEvent) -> None:
    event = recorded.event
    kind = type(event)
    key = _key(recorded)
    row = rows.get(key)
    if kind is Message.Queued:
        if row is None:
            rows.put(
                key,
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
                    "platform": event.platform,
                    "queued_at": event.timestamp,
                    "updated_at": event.timestamp,
                },
            )
    elif kind is InboundMessage.Received:
        if row is None:
            rows.put(
                key,
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
                    "platform": event.platform,
                    "queued_at": event.timestamp,
                    "updated_at": event.timestamp,
                },
            )
    elif row is None:
        return
    elif kind in _STATUS_UPDATES:
        status, column = _STATUS_UPDATES[kind]
        row.update(status=status, updated_at=event.timestamp, failure_reason=None)
        row[column] = event.timestamp
        platform_message_id = getattr(event, "platform_message_id", None)
        if platform_message_id is not None:
            row["platform_message_id"] = platform_message_id
        if kind is Message.Sent:
            row["failed_at"] = None  # a later try got it through: it is no longer failed
            if event.attempted:
                _attempted(row, event.timestamp, "sent", None)
    elif kind is Message.Failed:
        row.update(
            status="failed",
            failure_reason=event.reason,
            failed_at=event.timestamp,
            first_failed_at=row["first_failed_at"] or event.timestamp,
            updated_at=event.timestamp,
        )
        if event.attempted:
            _attempted(row, event.timestamp, "failed", event.reason)
    elif kind is Message.AttemptFailed:
        row["updated_at"] = event.timestamp
        _attempted(row, event.timestamp, "retrying", event.reason)
    elif kind is Message.Requeued:
        row.update(status="queued", failure_reason=None, updated_at=event.timestamp)
    elif kind in _STOPPED:
        row.update(status=_STOPPED[kind], failure_reason=event.reason, updated_at=event.timestamp)
    elif kind is Message.Released:
        row.update(status="queued", failure_reason=None, updated_at=event.timestamp)
    elif kind in _RECEIPTS:
        row.update({_RECEIPTS[kind]: event.timestamp, "updated_at": event.timestamp})
    elif kind is Message.Purchased:
        row.update(
            revenue_cents=event.amount_cents,
            purchased_at=event.timestamp,
            updated_at=event.timestamp,
        )


# The history keeps the latest tries only: a message retried by hand over and over must not
# grow its row without bound (``attempts`` still counts every one).
_HISTORY_KEPT = 50


def _attempted(row: Row, at: Any, outcome: str, reason: str | None) -> None:
    """One try at the platform: ``sent``, ``retrying`` (an error; tried again later) or
    ``failed`` (the last try, or a refusal)."""
    row["attempts"] += 1
    history = [*(row["attempt_history"] or []), {"at": at, "outcome": outcome, "reason": reason}]
    row["attempt_history"] = history[-_HISTORY_KEPT:]


def _erase_in_memory(rows: TableRows, fans: set[int]) -> None:
    for row in rows.present():
        if row["fan_id"] in fans:
            row.update(content=None, attachments=[])
