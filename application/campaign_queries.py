"""Queries on the campaigns read models: what they answer and in what shape."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import msgspec


class CampaignMetrics(msgspec.Struct, frozen=True, kw_only=True):
    queued: int = 0
    sent: int = 0
    delivered: int = 0
    failed: int = 0
    held: int = 0
    cancelled: int = 0
    opened: int = 0
    clicked: int = 0
    revenue_cents: int = 0


class CampaignView(msgspec.Struct, frozen=True, kw_only=True):
    campaign_id: int
    tenant: str
    name: str
    kind: str
    status: str
    content: str
    attachments: list[dict[str, Any]]
    price_cents: int
    priority: int
    recipient_count: int | None
    segment: dict[str, Any] | None
    scheduled_at: datetime | None
    total_recipients: int
    skipped: int
    fanned_out_at: datetime | None
    created_at: datetime
    launched_at: datetime | None
    finished_at: datetime | None
    updated_at: datetime
    version: int
    metrics: CampaignMetrics

    @property
    def remaining(self) -> int:
        """Messages still to send: recipients not reached by the fan-out yet, and queued
        messages without an outcome."""
        m = self.metrics
        unsettled = max(m.queued - m.sent - m.failed - m.cancelled, 0)
        if self.status == "cancelled":
            return 0
        not_queued = 0 if self.fanned_out_at else self.total_recipients - m.queued - self.skipped
        return max(not_queued, 0) + unsettled


class CampaignPage(msgspec.Struct, frozen=True):
    campaigns: list[CampaignView]
    next_cursor: str | None
