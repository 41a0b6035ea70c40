"""Queries on the campaigns read models: what they answer and in what shape."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import msgspec

from application.ab_results import VariantCounts, standing
from domain.variants import AbTest


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


class VariantView(msgspec.Struct, frozen=True, kw_only=True):
    name: str
    weight: int
    content: str
    price_cents: int
    media_urls: list[str]
    test: VariantCounts  # the test portion's messages (every message, without auto-winner)
    rest: VariantCounts  # sent to the rest of the audience as the winner


class AbTestView(msgspec.Struct, frozen=True, kw_only=True):
    rule: AbTest
    variants: list[VariantView]
    awaiting_winner: bool
    recorded_winner: int | None  # chosen by the auto-winner, for good
    decided_at: datetime | None


class VariantReport(msgspec.Struct, frozen=True, kw_only=True):
    view: VariantView
    conversion: float
    probability_best: float


class AbTestReport(msgspec.Struct, frozen=True, kw_only=True):
    """How the test stands. ``winner``: the recorded one of an auto-winner test, else the
    variant the stop rule names now (None until it is met); ``decided_at`` only when recorded."""

    rule: AbTest
    variants: list[VariantReport]
    winner: str | None
    decided_at: datetime | None
    awaiting_winner: bool


def ab_report(test: AbTestView) -> AbTestReport:
    result = standing([v.test for v in test.variants], test.rule)
    winner = test.recorded_winner if test.recorded_winner is not None else result.winner
    return AbTestReport(
        rule=test.rule,
        variants=[
            VariantReport(view=v, conversion=c, probability_best=p)
            for v, c, p in zip(
                test.variants, result.conversion, result.probability_best, strict=True
            )
        ],
        winner=None if winner is None else test.variants[winner].name,
        decided_at=test.decided_at,
        awaiting_winner=test.awaiting_winner,
    )


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
    ab_test: AbTestView | None = None
    # Priced "auto": each message carries the price chosen for its fan (``price_cents`` 0).
    auto_price: bool = False

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
