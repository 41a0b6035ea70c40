"""Bodies of the bulk message and campaign endpoints (camelCase on the wire)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

import msgspec

from adapters.http.schemas import Body, Int64
from application.campaign_queries import CampaignMetrics, CampaignView
from application.campaigns import CreateCampaign, Segment


class SegmentBody(Body):
    tags: list[str] = []
    min_value_cents: Int64 | None = None
    active_since: datetime | None = None


class BulkMessageBody(Body):
    """The reference's POST /api/messages/bulk, plus a segment as an alternative audience."""

    content: str
    recipient_ids: list[int] | None = None
    segment: SegmentBody | None = None
    media_urls: list[str] = []
    campaign_name: str | None = None
    price_cents: int = 0
    priority: int = 5
    scheduled_at: datetime | None = None

    def command(self) -> CreateCampaign:
        return CreateCampaign(
            name=self.campaign_name or "Bulk message",
            content=self.content,
            media_urls=tuple(self.media_urls),
            price_cents=self.price_cents,
            priority=self.priority,
            recipient_ids=tuple(self.recipient_ids) if self.recipient_ids is not None else None,
            segment=Segment(
                tags=tuple(self.segment.tags),
                min_value_cents=self.segment.min_value_cents,
                active_since=self.segment.active_since,
            )
            if self.segment
            else None,
            scheduled_at=self.scheduled_at,
        )


class TemplateBody(Body):
    content: str
    media_urls: list[str] = []
    price_cents: int = 0


class AudienceBody(Body):
    recipient_ids: list[int] | None = None
    segment: SegmentBody | None = None


class CreateCampaignBody(Body):
    """The reference's CampaignsRepository.createCampaign: a draft (or launched at once with
    ``status: "active"``)."""

    name: str
    template: TemplateBody
    target_audience: AudienceBody
    type: Literal["bulk_message"] = "bulk_message"
    status: Literal["draft", "active"] = "draft"
    priority: int = 5
    scheduled_at: datetime | None = None

    def bulk(self) -> BulkMessageBody:
        return BulkMessageBody(
            content=self.template.content,
            recipient_ids=self.target_audience.recipient_ids,
            segment=self.target_audience.segment,
            media_urls=self.template.media_urls,
            campaign_name=self.name,
            price_cents=self.template.price_cents,
            priority=self.priority,
            scheduled_at=self.scheduled_at,
        )


class StatusBody(Body):
    status: Literal["active", "paused", "cancelled", "completed"]


class RecipientFailureOut(msgspec.Struct, rename="camel"):
    recipient_id: int
    error: str


class BulkAcceptedOut(msgspec.Struct, kw_only=True, rename="camel"):
    campaign_id: int
    total_recipients: int
    queued: int
    failed: int
    estimated_completion_time: datetime | None
    status: str
    failures: list[RecipientFailureOut]
    position: int


class MetricsOut(msgspec.Struct, kw_only=True, rename="camel"):
    sent: int
    delivered: int
    failed: int
    opened: int
    clicked: int
    revenue_cents: int
    queued: int
    held: int
    cancelled: int

    @classmethod
    def from_metrics(cls, m: CampaignMetrics) -> MetricsOut:
        return cls(**msgspec.structs.asdict(m))


class ProgressOut(msgspec.Struct, kw_only=True, rename="camel"):
    total_recipients: int
    queued: int
    sent: int
    remaining: int
    skipped: int


class CampaignOut(msgspec.Struct, kw_only=True, rename="camel"):
    id: int
    name: str
    type: str
    status: str
    template: dict[str, Any]
    target_audience: dict[str, Any]
    priority: int
    scheduled_at: datetime | None
    metrics: MetricsOut
    progress: ProgressOut
    created_at: datetime
    launched_at: datetime | None
    finished_at: datetime | None
    updated_at: datetime
    version: int

    @classmethod
    def from_view(cls, view: CampaignView) -> CampaignOut:
        audience: dict[str, Any] = (
            {"recipientCount": view.recipient_count}
            if view.segment is None
            else {"segment": view.segment}
        )
        return cls(
            id=view.campaign_id,
            name=view.name,
            type=view.kind,
            status=view.status,
            template={
                "content": view.content,
                "mediaUrls": [a["url"] for a in view.attachments],
                "priceCents": view.price_cents,
            },
            target_audience=audience,
            priority=view.priority,
            scheduled_at=view.scheduled_at,
            metrics=MetricsOut.from_metrics(view.metrics),
            progress=ProgressOut(
                total_recipients=view.total_recipients,
                queued=view.metrics.queued,
                sent=view.metrics.sent,
                remaining=view.remaining,
                skipped=view.skipped,
            ),
            created_at=view.created_at,
            launched_at=view.launched_at,
            finished_at=view.finished_at,
            updated_at=view.updated_at,
            version=view.version,
        )


class CampaignListOut(msgspec.Struct, kw_only=True, rename="camel"):
    campaigns: list[CampaignOut]
    next_cursor: str | None


class CampaignChangedOut(msgspec.Struct, kw_only=True, rename="camel"):
    id: int
    status: str
    position: int
