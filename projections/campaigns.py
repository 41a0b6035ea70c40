"""Two read models of campaigns: ``campaigns`` (what was asked and how far the fan-out got)
and ``campaign_metrics`` (what became of the campaign's messages).

The metrics count each message once, by where it is now: a message that failed and was then
retried and sent moves from ``failed`` to ``sent``. ``delivered``, ``opened`` and ``clicked``
count the first receipt of each kind per message; ``revenueCents`` adds the PPV purchases.
Both fold a whole batch in memory and write each touched row once (see projections.base).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import msgspec

from application.ports import RecordedEvent, Sql
from domain.campaign import Campaign
from domain.events import EVENT_TYPES
from domain.message import Message, message_id_of
from projections.base import TableRows

_CAMPAIGN_COLUMNS = (
    *("campaign_id", "tenant_id", "name", "kind", "status", "content", "attachments"),
    *("price_cents", "priority", "recipient_count", "segment", "scheduled_at"),
    *("total_recipients", "queued", "skipped", "fan_out_cursor", "fanned_out_at"),
    *("created_at", "launched_at", "finished_at", "updated_at", "version"),
    *("variants", "ab_test", "awaiting_winner", "winner", "winner_probability", "decided_at"),
    "auto_price",
)

_STATUS_OF: dict[type[Any], str] = {
    Campaign.Launched: "active",
    Campaign.Paused: "paused",
    Campaign.Resumed: "active",
    Campaign.Cancelled: "cancelled",
    Campaign.Completed: "completed",
}


# By exact class (see projections.base). Any campaign event moves the row's version.
_CAMPAIGN_EVENTS = frozenset(cls for cls in EVENT_TYPES.values() if issubclass(cls, Campaign.Event))


class CampaignsProjection:
    name = "campaigns"
    tables = ("campaigns",)

    async def apply(self, sql: Sql, recorded: RecordedEvent) -> None:
        await self.apply_batch(sql, [recorded])

    async def apply_batch(self, sql: Sql, batch: Sequence[RecordedEvent]) -> None:
        events = [r for r in batch if type(r.event) in _CAMPAIGN_EVENTS]
        if not events:
            return
        campaigns = TableRows("campaigns", "campaign_id", "bigint", _CAMPAIGN_COLUMNS)
        await campaigns.load(sql, (_campaign_id(r.stream_id) for r in events))
        for recorded in events:
            _fold_campaign(campaigns, recorded)
        await campaigns.flush(sql)


def _fold_campaign(campaigns: TableRows, recorded: RecordedEvent) -> None:
    event = recorded.event
    campaign_id = _campaign_id(recorded.stream_id)
    row = campaigns.get(campaign_id)
    if isinstance(event, Campaign.Created):
        if row is None:
            campaigns.put(campaign_id, _created_row(event, recorded.version))
        return
    if row is None:
        return
    row["updated_at"] = event.timestamp
    row["version"] = recorded.version
    if isinstance(event, Campaign.ChunkQueued):
        row["queued"] += event.queued
        row["skipped"] += event.skipped
        row["fan_out_cursor"] = event.cursor
    elif isinstance(event, Campaign.FanOutFinished):
        row["fanned_out_at"] = event.timestamp
    elif isinstance(event, Campaign.TestPortionQueued):
        row["awaiting_winner"] = True
    elif isinstance(event, Campaign.WinnerChosen):
        row["awaiting_winner"] = False
        row["winner"] = event.variant
        row["winner_probability"] = event.probability_best
        row["decided_at"] = event.timestamp
        row["fan_out_cursor"] = 0  # the second pass starts over
    elif type(event) in _STATUS_OF:
        row["status"] = _STATUS_OF[type(event)]
        if isinstance(event, Campaign.Launched):
            row["launched_at"] = event.timestamp
            row["total_recipients"] = event.total_recipients
        elif isinstance(event, Campaign.Cancelled | Campaign.Completed):
            row["finished_at"] = event.timestamp


def _created_row(event: Campaign.Created, version: int) -> dict[str, Any]:
    segment = None
    if event.recipient_ids is None:
        segment = {
            "tags": list(event.segment_tags),
            "minValueCents": event.segment_min_value_cents,
            "activeSince": event.segment_active_since,
        }
        if event.segment_at_risk:
            segment["atRisk"] = True
    return {
        "tenant_id": event.tenant,
        "name": event.name,
        "kind": event.kind,
        "status": "draft",
        "content": event.content,
        "attachments": [{"type": kind, "url": url} for kind, url in event.attachments],
        "price_cents": event.price_cents,
        "auto_price": event.auto_price,
        "priority": event.priority,
        "recipient_count": None if event.recipient_ids is None else len(event.recipient_ids),
        "segment": msgspec.to_builtins(segment),
        "scheduled_at": event.scheduled_at,
        "total_recipients": 0,
        "queued": 0,
        "skipped": 0,
        "fan_out_cursor": 0,
        "fanned_out_at": None,
        "created_at": event.timestamp,
        "launched_at": None,
        "finished_at": None,
        "updated_at": event.timestamp,
        "version": version,
        **_test_columns(event),
    }


def _test_columns(event: Campaign.Created) -> dict[str, Any]:
    test = event.ab_test
    return {
        "variants": [
            {
                "name": v.name,
                "content": v.content,
                "priceCents": v.price_cents,
                "mediaUrls": [url for _, url in v.attachments],
                "weight": v.weight,
            }
            for v in event.variants
        ]
        if event.variants
        else None,
        "ab_test": None
        if test is None
        else {
            "goal": test.goal,
            "autoWinner": test.auto_winner,
            "holdout": test.holdout_percent,
            "minPerVariant": test.min_per_variant,
            "threshold": test.threshold,
        },
        "awaiting_winner": False,
        "winner": None,
        "winner_probability": None,
        "decided_at": None,
    }


# Where a message's status puts it in the metrics; "pending" is not counted on its own.
_BUCKET_OF: dict[type[Any], str] = {
    Message.Sent: "sent",
    Message.Failed: "failed",
    Message.Requeued: "pending",
    Message.Released: "pending",
    Message.Held: "held",
    Message.Cancelled: "cancelled",
}
_FLAG_OF: dict[type[Any], str] = {
    Message.Delivered: "delivered",
    Message.Read: "opened",
    Message.Clicked: "clicked",
}
_BUCKETS = ("sent", "failed", "held", "cancelled")
_METRICS = ("queued", *_BUCKETS, "delivered", "opened", "clicked", "revenue_cents")
_MESSAGE_COLUMNS = (
    "message_id",
    "tenant_id",
    "campaign_id",
    "bucket",
    "delivered",
    "opened",
    "clicked",
)
# Message ids are each tenant's own: two tenants may hold the same one.
_MESSAGE_KEY = ("message_id", "tenant_id")
_MESSAGE_KEY_TYPES = ("uuid", "text")
_METRIC_COLUMNS = ("campaign_id", "tenant_id", *_METRICS, "updated_at")


_METRICS_EVENTS = frozenset(
    {cls for cls in EVENT_TYPES.values() if issubclass(cls, Message.Event)} | {Campaign.Created}
)


_NAME_A_CAMPAIGN = frozenset({Campaign.Created, Message.Queued})


class CampaignMetricsProjection:
    name = "campaign_metrics"
    tables = ("campaign_messages", "campaign_metrics")

    async def apply(self, sql: Sql, recorded: RecordedEvent) -> None:
        await self.apply_batch(sql, [recorded])

    async def apply_batch(self, sql: Sql, batch: Sequence[RecordedEvent]) -> None:
        events = [r for r in batch if type(r.event) in _METRICS_EVENTS]
        if not events:
            return
        messages = TableRows(
            "campaign_messages", _MESSAGE_KEY, _MESSAGE_KEY_TYPES, _MESSAGE_COLUMNS
        )
        # A message queued in this batch outside any campaign has no row to look for: most
        # messages of a replay, whose later events mostly follow in the same batch.
        outside = {
            _message_id(r)
            for r in events
            if type(r.event) is Message.Queued and r.event.campaign_id is None
        }
        await messages.load(
            sql,
            {_message_id(r) for r in events if type(r.event) is not Campaign.Created} - outside,
        )
        campaign_ids = {row["campaign_id"] for row in messages.present()} | {
            r.event.campaign_id
            for r in events
            if type(r.event) in _NAME_A_CAMPAIGN and r.event.campaign_id is not None
        }
        if not campaign_ids:
            return
        metrics = TableRows("campaign_metrics", "campaign_id", "bigint", _METRIC_COLUMNS)
        await metrics.load(sql, campaign_ids)
        for recorded in events:
            _fold_metrics(messages, metrics, recorded)
        await messages.flush(sql)
        await metrics.flush(sql)


def _fold_metrics(messages: TableRows, metrics: TableRows, recorded: RecordedEvent) -> None:
    event = recorded.event
    if isinstance(event, Campaign.Created):
        if metrics.get(event.campaign_id) is None:
            metrics.put(
                event.campaign_id,
                {"tenant_id": event.tenant, **dict.fromkeys(_METRICS, 0), "updated_at": None},
            )
        return
    message_id = _message_id(recorded)
    if isinstance(event, Message.Queued):
        if event.campaign_id is None or messages.get(message_id) is not None:
            return
        messages.put(
            message_id,
            {
                "campaign_id": event.campaign_id,
                "bucket": "pending",
                "delivered": False,
                "opened": False,
                "clicked": False,
            },
        )
        _count(metrics, event.campaign_id, "queued", 1, event)
        return
    message = messages.get(message_id)
    if message is None:  # not a campaign message
        return
    campaign_id = message["campaign_id"]
    if type(event) in _BUCKET_OF:
        bucket = _BUCKET_OF[type(event)]
        if bucket != message["bucket"]:
            if message["bucket"] in _BUCKETS:
                _count(metrics, campaign_id, message["bucket"], -1, event)
            if bucket in _BUCKETS:
                _count(metrics, campaign_id, bucket, 1, event)
            message["bucket"] = bucket
    elif type(event) in _FLAG_OF:
        flag = _FLAG_OF[type(event)]
        if not message[flag]:
            message[flag] = True
            _count(metrics, campaign_id, flag, 1, event)
    elif isinstance(event, Message.Purchased):
        _count(metrics, campaign_id, "revenue_cents", event.amount_cents, event)


def _count(metrics: TableRows, campaign_id: int, column: str, by: int, event: Any) -> None:
    row = metrics.get(campaign_id)
    if row is not None:
        row[column] += by
        row["updated_at"] = event.timestamp


def _campaign_id(stream_id: str) -> int:
    return int(stream_id.removeprefix("campaign-"))


def _message_id(recorded: RecordedEvent) -> tuple[str, str]:
    """The key of the message's row: its id, and its tenant."""
    return message_id_of(recorded.stream_id), recorded.metadata.tenant
