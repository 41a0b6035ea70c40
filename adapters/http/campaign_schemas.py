"""Bodies of the bulk message and campaign endpoints (camelCase on the wire)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, ClassVar, Literal

import msgspec
from litestar.openapi.spec import OpenAPIType

from adapters.http.messaging_schemas import MediaUrls, PriceCents, PriceOrAuto, Priority
from adapters.http.openapi import NOT_BLANK, rule, schema
from adapters.http.schemas import NO_NUL, Body, Int64, Tags
from application.campaign_queries import (
    AbTestReport,
    CampaignMetrics,
    CampaignView,
    VariantReport,
    ab_report,
)
from application.campaigns import CreateCampaign, Segment, VariantTemplate
from domain import campaign as rules
from domain import variants as ab
from domain.errors import InvalidValue
from domain.variants import AbTest

# The domain's rules on a campaign (domain/campaign.py), as the OpenAPI schema states them.
_NO_OPEN_BRACES = (
    r"^(?:[^{\u0000]|\{[^{\u0000]|\{\{\s*(?:name|first_name|handle)\s*(?:\|[^{}\u0000]*)?\}\})*\{?$"
)
Template = Annotated[
    str,
    rule(
        "Not blank, no NUL characters; placeholders {{name}}, {{first_name}}, {{handle}},"
        " each with an optional fallback ({{name|babe}}); no other '{{'",
        max_length=5_000,
        all_of=[
            schema(pattern=rf"^[^\u0000]*{NOT_BLANK}[^\u0000]*$"),
            schema(pattern=_NO_OPEN_BRACES),
        ],
    ),
]
CampaignName = Annotated[
    str,
    rule(
        "Trimmed, 1-200 characters, no NUL",
        max_length=rules.MAX_NAME,
        all_of=[schema(pattern=NO_NUL), schema(pattern=NOT_BLANK)],
    ),
]
RecipientIds = Annotated[
    list[int],
    rule(
        f"1 to {rules.MAX_EXPLICIT_RECIPIENTS:,} fan ids; those that are not this account's"
        " fans are reported in failures (422 if none is)",
        min_items=1,
        max_items=rules.MAX_EXPLICIT_RECIPIENTS,
        items=schema(type=OpenAPIType.INTEGER, minimum=1, maximum=2**63 - 1),
    ),
]
Moment = Annotated[datetime, rule("With a time zone")]


# Explicit fan ids or a segment, one of them (null is the same as absent).
AUDIENCE_RULES: dict[str, Any] = {
    "any_of": [
        {
            "required": ["recipientIds"],
            "properties": {"recipientIds": {"type": "array"}, "segment": {"type": "null"}},
        },
        {
            "required": ["segment"],
            "properties": {"segment": {"type": "object"}, "recipientIds": {"type": "null"}},
        },
    ]
}


# The message's text: ``content``, or ``variants`` (an A/B test), one of them.
CONTENT_RULES: list[dict[str, Any]] = [
    {"required": ["content"], "properties": {"variants": {"type": "null"}}},
    {"required": ["variants"], "properties": {"content": {"type": "null"}}},
]


class VariantBody(Body):
    """One version of the message; each fan gets one, chosen from the test and the fan."""

    content: Template
    name: (
        Annotated[str, rule("1-50 characters; the variant's letter (A, B, ...) if absent")] | None
    ) = None
    media_urls: MediaUrls = []
    price_cents: PriceCents = 0
    weight: Annotated[
        int,
        rule(
            "The variant's share of the fans is its weight over the sum",
            minimum=1,
            maximum=ab.MAX_WEIGHT,
        ),
    ] = 1

    def template(self) -> VariantTemplate:
        return VariantTemplate(
            name=self.name or "",
            content=self.content,
            media_urls=tuple(self.media_urls),
            price_cents=self.price_cents,
            weight=self.weight,
        )


Variants = Annotated[
    list[VariantBody],
    rule(
        f"{ab.MIN_VARIANTS} to {ab.MAX_VARIANTS} variants, names unique",
        min_items=ab.MIN_VARIANTS,
        max_items=ab.MAX_VARIANTS,
    ),
]


class AbTestBody(Body):
    """How the test is judged; with ``autoWinner``, ``holdout`` percent of the audience is
    sent the test first and the rest gets the winner once the stop rule is met."""

    goal: Literal["purchase", "reply", "open"] = "purchase"
    auto_winner: bool = False
    holdout: (
        Annotated[int, rule("Percent of the audience sent the test", minimum=1, maximum=99)] | None
    ) = None
    min_per_variant: Annotated[
        int,
        rule(
            "Messages sent of each variant before a winner",
            minimum=1,
            maximum=ab.MAX_MIN_PER_VARIANT,
        ),
    ] = ab.DEFAULT_MIN_PER_VARIANT
    threshold: Annotated[
        float,
        rule("Probability of being best that makes a winner", minimum=0.5, exclusive_maximum=1),
    ] = ab.DEFAULT_THRESHOLD

    def rule(self) -> AbTest:
        return AbTest(
            goal=self.goal,
            auto_winner=self.auto_winner,
            holdout_percent=self.holdout,
            min_per_variant=self.min_per_variant,
            threshold=self.threshold,
        )


class SegmentBody(Body):
    """Fans matching all that is given (tags: any of them); at least one must be given."""

    openapi_rules: ClassVar[dict[str, Any]] = {
        "any_of": [
            {"required": ["tags"], "properties": {"tags": {"minItems": 1}}},
            {"required": ["minValueCents"], "properties": {"minValueCents": {"type": "integer"}}},
            {"required": ["activeSince"], "properties": {"activeSince": {"type": "string"}}},
            {"required": ["atRisk"], "properties": {"atRisk": {"const": True}}},
        ]
    }

    tags: Tags = []
    min_value_cents: Annotated[Int64, rule("Cents", minimum=0, maximum=rules.MAX_CENTS)] | None = (
        None
    )
    active_since: Moment | None = None
    # Only fans the account's churn model scores at risk (GET /api/analytics/churn, risk
    # >= 0.5 under its latest model); no model trained yet: no fan is.
    at_risk: bool = False


class BulkMessageBody(Body):
    """The reference's POST /api/messages/bulk, plus a segment as an alternative audience:
    ``recipientIds`` or ``segment``, one of them; and an A/B test: ``variants`` instead of
    ``content``, judged as ``abTest`` says."""

    openapi_rules: ClassVar[dict[str, Any]] = {
        "all_of": [{"anyOf": AUDIENCE_RULES["any_of"]}, {"anyOf": CONTENT_RULES}]
    }

    content: Template | None = None
    variants: Variants | None = None
    ab_test: AbTestBody | None = None
    recipient_ids: RecipientIds | None = None
    segment: SegmentBody | None = None
    media_urls: MediaUrls = []
    campaign_name: CampaignName | None = None
    price_cents: PriceOrAuto = 0
    priority: Priority = 5
    scheduled_at: Moment | None = None

    @property
    def sells(self) -> bool:
        """Whether any message it sends is priced (a PPV); "auto" always is."""
        return isinstance(self.price_cents, str) or any(
            price > 0 for price in (self.price_cents, *(v.price_cents for v in self.variants or ()))
        )

    def command(self) -> CreateCampaign:
        if (self.content is None) == (self.variants is None):
            raise InvalidValue("content", "give content or variants, one of them")
        return CreateCampaign(
            name=self.campaign_name or "Bulk message",
            content=self.content or "",
            variants=tuple(v.template() for v in self.variants or ()),
            ab_test=self.ab_test.rule() if self.ab_test else None,
            media_urls=tuple(self.media_urls),
            price_cents=0 if isinstance(self.price_cents, str) else self.price_cents,
            auto_price=isinstance(self.price_cents, str),
            priority=self.priority,
            recipient_ids=tuple(self.recipient_ids) if self.recipient_ids is not None else None,
            segment=Segment(
                tags=tuple(self.segment.tags),
                min_value_cents=self.segment.min_value_cents,
                active_since=self.segment.active_since,
                at_risk=self.segment.at_risk,
            )
            if self.segment
            else None,
            scheduled_at=self.scheduled_at,
        )


class TemplateBody(Body):
    """``content`` or ``variants`` (an A/B test), one of them."""

    openapi_rules: ClassVar[dict[str, Any]] = {"any_of": CONTENT_RULES}

    content: Template | None = None
    variants: Variants | None = None
    media_urls: MediaUrls = []
    price_cents: PriceOrAuto = 0


class AudienceBody(Body):
    """``recipientIds`` or ``segment``, one of them."""

    openapi_rules: ClassVar[dict[str, Any]] = AUDIENCE_RULES

    recipient_ids: RecipientIds | None = None
    segment: SegmentBody | None = None


class CreateCampaignBody(Body):
    """The reference's CampaignsRepository.createCampaign: a draft (or launched at once with
    ``status: "active"``)."""

    name: CampaignName
    template: TemplateBody
    target_audience: AudienceBody
    type: Literal["bulk_message"] = "bulk_message"
    status: Literal["draft", "active"] = "draft"
    priority: Priority = 5
    scheduled_at: Moment | None = None
    ab_test: AbTestBody | None = None

    def bulk(self) -> BulkMessageBody:
        return BulkMessageBody(
            content=self.template.content,
            variants=self.template.variants,
            ab_test=self.ab_test,
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


class VariantResultOut(msgspec.Struct, kw_only=True, rename="camel"):
    """One variant's test results: its messages of the test portion (every message, without
    an auto-winner); ``conversion``: the goal's successes per message sent."""

    variant: str
    weight: int
    sent: int
    opened: int
    replied: int
    purchased: int
    revenue_cents: int
    conversion: float
    probability_best: float
    # Messages sent to the rest of the audience as the winner, after the test.
    sent_to_rest: int
    revenue_cents_from_rest: int

    @classmethod
    def from_report(cls, r: VariantReport) -> VariantResultOut:
        test, rest = r.view.test, r.view.rest
        return cls(
            variant=r.view.name,
            weight=r.view.weight,
            sent=test.sent,
            opened=test.opened,
            replied=test.replied,
            purchased=test.purchased,
            revenue_cents=test.revenue_cents,
            conversion=round(r.conversion, 6),
            probability_best=round(r.probability_best, 6),
            sent_to_rest=rest.sent,
            revenue_cents_from_rest=rest.revenue_cents,
        )


class AbTestOut(msgspec.Struct, kw_only=True, rename="camel"):
    """An A/B test's standing. ``probabilityBest``: the posterior probability (Beta(1,1)
    prior, Beta-Binomial) that the variant has the highest rate on ``goal``. ``winner``: the
    variant chosen (auto-winner), or the one the stop rule names now; null until it is met."""

    goal: str
    auto_winner: bool
    holdout: int | None
    min_per_variant: int
    threshold: float
    variants: list[VariantResultOut]
    winner: str | None
    decided_at: datetime | None
    awaiting_winner: bool

    @classmethod
    def from_report(cls, r: AbTestReport) -> AbTestOut:
        return cls(
            goal=r.rule.goal,
            auto_winner=r.rule.auto_winner,
            holdout=r.rule.holdout_percent,
            min_per_variant=r.rule.min_per_variant,
            threshold=r.rule.threshold,
            variants=[VariantResultOut.from_report(v) for v in r.variants],
            winner=r.winner,
            decided_at=r.decided_at,
            awaiting_winner=r.awaiting_winner,
        )

    @classmethod
    def of(cls, view: CampaignView) -> AbTestOut | None:
        return None if view.ab_test is None else cls.from_report(ab_report(view.ab_test))


class CampaignOut(msgspec.Struct, kw_only=True, rename="camel", omit_defaults=True):
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
    # Only for a campaign that is an A/B test.
    ab_test: AbTestOut | None = None

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
            template=_template(view),
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
            ab_test=AbTestOut.of(view),
        )


def _template(view: CampaignView) -> dict[str, Any]:
    template: dict[str, Any] = {
        "content": view.content,
        "mediaUrls": [a["url"] for a in view.attachments],
        "priceCents": "auto" if view.auto_price else view.price_cents,
    }
    if view.ab_test is not None:
        template["variants"] = [
            {
                "name": v.name,
                "content": v.content,
                "priceCents": v.price_cents,
                "mediaUrls": v.media_urls,
                "weight": v.weight,
            }
            for v in view.ab_test.variants
        ]
    return template


class CampaignListOut(msgspec.Struct, kw_only=True, rename="camel"):
    campaigns: list[CampaignOut]
    next_cursor: str | None


class CampaignChangedOut(msgspec.Struct, kw_only=True, rename="camel"):
    id: int
    status: str
    position: int
