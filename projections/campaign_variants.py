"""The results of campaigns' A/B tests, per variant: ``campaign_variant_metrics``.

Each variant message counts once per kind: sent, opened (read), replied, purchased (a message
bought at least once), and its revenue (every purchase). Messages sent to the rest of an
auto-winner campaign's audience, after the test, are counted apart (``to_rest``): the test's
results are the test portion's alone.

Replied: the fan wrote in the conversation after the variant message was sent and before the
account's next message there. A reply is the fan answering *this* message; once the account
writes again (a one-to-one message, another campaign), what the fan says answers that.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from application.ports import RecordedEvent, Sql
from domain.events import EVENT_TYPES
from domain.inbound import InboundMessage
from domain.message import Message, message_id_of
from projections.base import TableRows

_MESSAGE_COLUMNS = (
    *("message_id", "tenant_id", "campaign_id", "variant", "to_rest", "conversation_id"),
    *("sent", "opened", "replied", "purchased"),
)
_METRIC_COLUMNS = (
    *("campaign_id", "variant", "to_rest", "tenant_id", "queued", "sent", "opened", "replied"),
    *("purchased", "revenue_cents"),
)
_FLAG_OF: dict[type[Any], str] = {Message.Sent: "sent", Message.Read: "opened"}
_HANDLED = frozenset(
    {cls for cls in EVENT_TYPES.values() if issubclass(cls, Message.Event)}
    | {InboundMessage.Received}
)


class CampaignVariantsProjection:
    name = "campaign_variants"
    tables = ("campaign_variant_messages", "campaign_variant_replies", "campaign_variant_metrics")

    async def apply(self, sql: Sql, recorded: RecordedEvent) -> None:
        await self.apply_batch(sql, [recorded])

    async def apply_batch(self, sql: Sql, batch: Sequence[RecordedEvent]) -> None:
        events = [r for r in batch if type(r.event) in _HANDLED]
        if not events:
            return
        messages = TableRows(
            "campaign_variant_messages",
            ("message_id", "tenant_id"),
            ("uuid", "text"),
            _MESSAGE_COLUMNS,
        )
        replies = TableRows(
            "campaign_variant_replies",
            ("conversation_id", "tenant_id"),
            ("bigint", "text"),
            ("conversation_id", "tenant_id", "message_id"),
        )
        metrics = TableRows(
            "campaign_variant_metrics",
            ("campaign_id", "variant", "to_rest"),
            ("bigint", "smallint", "boolean"),
            _METRIC_COLUMNS,
        )
        queued = [r for r in events if type(r.event) is Message.Queued]
        # Most messages are no variant's: those queued in this batch need no row looked up.
        plain = {_message_key(r) for r in queued if r.event.variant is None}
        await messages.load(
            sql,
            {_message_key(r) for r in events if type(r.event) is not InboundMessage.Received}
            - plain,
        )
        await replies.load(
            sql,
            {
                (r.event.conversation_id, r.metadata.tenant)
                for r in events
                if type(r.event) in (Message.Queued, InboundMessage.Received)
            },
        )
        await metrics.load(
            sql,
            {_metric_key(row) for row in messages.present()}
            | {
                (r.event.campaign_id, r.event.variant, r.event.to_rest)
                for r in queued
                if r.event.variant is not None
            },
        )
        for recorded in events:
            _fold(recorded, messages, replies, metrics)
        await messages.flush(sql)
        await replies.flush(sql)
        await metrics.flush(sql)


def _fold(
    recorded: RecordedEvent, messages: TableRows, replies: TableRows, metrics: TableRows
) -> None:
    event = recorded.event
    tenant = recorded.metadata.tenant
    if isinstance(event, InboundMessage.Received):
        answered = replies.get((event.conversation_id, tenant))
        if answered is None:
            return
        message = messages.get((answered["message_id"], tenant))
        if message is not None and message["sent"] and not message["replied"]:
            message["replied"] = True
            _count(metrics, message, "replied", 1, tenant)
        return
    key = _message_key(recorded)
    if isinstance(event, Message.Queued):
        conversation = (event.conversation_id, tenant)
        if event.variant is None or event.campaign_id is None:
            replies.remove(conversation)  # the account wrote again: older tests' replies end
            return
        if messages.get(key) is not None:
            return
        message = {
            "campaign_id": event.campaign_id,
            "variant": event.variant,
            "to_rest": event.to_rest,
            "conversation_id": event.conversation_id,
            **dict.fromkeys(("sent", "opened", "replied", "purchased"), False),
        }
        messages.put(key, message)
        replies.put(conversation, {"message_id": key[0]})
        _count(metrics, message, "queued", 1, tenant)
        return
    message = messages.get(key)
    if message is None:
        return
    flag = _FLAG_OF.get(type(event))
    if flag is not None and not message[flag]:
        message[flag] = True
        _count(metrics, message, flag, 1, tenant)
    elif isinstance(event, Message.Purchased):
        if not message["purchased"]:
            message["purchased"] = True
            _count(metrics, message, "purchased", 1, tenant)
        _count(metrics, message, "revenue_cents", event.amount_cents, tenant)


def _count(metrics: TableRows, message: dict[str, Any], column: str, by: int, tenant: str) -> None:
    key = _metric_key(message)
    row = metrics.get(key)
    if row is None:
        row = {"tenant_id": tenant, **dict.fromkeys(_METRIC_COLUMNS[4:], 0)}
        metrics.put(key, row)
    row[column] += by


def _metric_key(message: dict[str, Any]) -> tuple[int, int, bool]:
    return message["campaign_id"], message["variant"], message["to_rest"]


def _message_key(recorded: RecordedEvent) -> tuple[str, str]:
    return message_id_of(recorded.stream_id), recorded.metadata.tenant
