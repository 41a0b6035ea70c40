"""Bodies of /api/crm/sequences (camelCase on the wire). Structure and types are checked
here (400); the domain's rules (durations, time zones, templates, prices) answer 422."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

import msgspec
from msgspec import UNSET, UnsetType

from adapters.http.campaign_schemas import CampaignName, Template, Variants
from adapters.http.messaging_schemas import MediaUrls, PriceOrAuto
from adapters.http.openapi import rule
from adapters.http.schemas import Body, Tags
from application.ab_results import standing
from application.sequence_queries import SequenceView, StepMetrics
from application.sequences import ChangeSequence, CreateSequence
from domain import sequence_rules as rules
from domain.sequence import Sequence
from domain.variants import AbTest, Variant

TriggerType = Literal[
    "fanCreated",
    "fanImported",
    "subscribed",
    "tagAdded",
    "purchase",
    "inactive",
    "noReply",
    "atRisk",
]
Wait = Annotated[
    str,
    rule(
        "An ISO 8601 duration of weeks, days, hours, minutes, seconds (PT0S, P1D, PT2H30M)",
        max_length=40,
    ),
]
TimeOfDay = Annotated[str, rule("A local time of day, HH:MM", pattern=r"^\d\d:\d\d$")]
Zone = Annotated[str, rule("An IANA time zone (Europe/London)", max_length=64)]


class TriggerBody(Body):
    type: TriggerType
    tag: str | None = None
    days: int | None = None
    hours: int | None = None

    def value(self) -> rules.Trigger:
        return rules.Trigger(type=self.type, tag=self.tag, days=self.days, hours=self.hours)


class StepBody(Body):
    # Required unless ``variants`` are given: then each variant has its own.
    content: Template = ""
    wait: Wait = "PT0S"
    # With ``at``: after the wait, the next time the clock shows it in the sequence's zone.
    at: TimeOfDay | None = None
    price_cents: PriceOrAuto = 0
    media_urls: MediaUrls = []
    # An A/B test of the step: each fan gets one variant, chosen from the step and the fan.
    variants: Variants = []
    goal: Literal["purchase", "reply"] = "purchase"

    @property
    def sells(self) -> bool:
        """Whether its messages are priced (a PPV); "auto" always is."""
        return isinstance(self.price_cents, str) or self.price_cents > 0

    def value(self) -> rules.Step:
        return rules.Step(
            wait=self.wait,
            at=self.at,
            content=self.content,
            price_cents=0 if isinstance(self.price_cents, str) else self.price_cents,
            auto_price=isinstance(self.price_cents, str),
            attachments=rules.media(self.media_urls),
            variants=tuple(
                Variant(
                    name=v.name or "",
                    content=v.content,
                    price_cents=v.price_cents,
                    attachments=rules.media(v.media_urls),
                    weight=v.weight,
                )
                for v in self.variants
            ),
            goal=self.goal,
        )


class ExitBody(Body):
    replied: bool = True
    purchased: bool = False
    tag_added: Tags = []
    tag_removed: Tags = []

    def value(self) -> rules.ExitRules:
        return rules.ExitRules(
            replied=self.replied,
            purchased=self.purchased,
            tag_added=tuple(self.tag_added),
            tag_removed=tuple(self.tag_removed),
        )


Steps = Annotated[list[StepBody], rule(f"1 to {rules.MAX_STEPS} steps", max_items=rules.MAX_STEPS)]
Reentry = Literal["never", "afterExit", "always"]


class CreateSequenceBody(Body):
    name: CampaignName
    trigger: TriggerBody
    steps: Steps
    exit: ExitBody | None = None
    reentry: Reentry = "never"
    time_zone: Zone = "UTC"
    status: Literal["active", "paused"] = "active"

    def command(self) -> CreateSequence:
        return CreateSequence(
            name=self.name,
            trigger=self.trigger.value(),
            steps=tuple(step.value() for step in self.steps),
            exit_rules=(self.exit or ExitBody()).value(),
            reentry=self.reentry,
            time_zone=self.time_zone,
            status=self.status,
        )


class UpdateSequenceBody(Body):
    """What is absent stays as it is."""

    name: CampaignName | UnsetType = UNSET
    steps: Steps | UnsetType = UNSET
    exit: ExitBody | UnsetType = UNSET
    reentry: Reentry | UnsetType = UNSET
    time_zone: Zone | UnsetType = UNSET

    def command(self, sequence_id: int) -> ChangeSequence:
        return ChangeSequence(
            sequence_id=sequence_id,
            name=None if self.name is UNSET else self.name,
            steps=None if self.steps is UNSET else tuple(s.value() for s in self.steps),
            exit_rules=None if self.exit is UNSET else self.exit.value(),
            reentry=None if self.reentry is UNSET else self.reentry,
            time_zone=None if self.time_zone is UNSET else self.time_zone,
        )


class StepVariantOut(msgspec.Struct, kw_only=True, rename="camel"):
    variant: str
    weight: int
    sent: int
    replied: int
    purchased: int
    revenue_cents: int
    conversion: float  # the goal's successes per message sent
    probability_best: float


class StepTestOut(msgspec.Struct, kw_only=True, rename="camel"):
    """A step's A/B test, judged as a campaign's (application/ab_results.py): each variant's
    posterior probability of the best rate on ``goal``; ``winner`` once each variant was sent
    ``minPerVariant`` times and one's probability reaches ``threshold``."""

    goal: str
    min_per_variant: int
    threshold: float
    variants: list[StepVariantOut]
    winner: str | None


class StepMetricsOut(msgspec.Struct, kw_only=True, rename="camel", omit_defaults=True):
    step: int
    entered: int
    sent: int
    replied: int
    purchased: int
    revenue_cents: int
    exited: dict[str, int]  # per reason: replied, purchased, tagAdded, deleted, ...
    ab_test: StepTestOut | None = None

    @classmethod
    def of(cls, m: StepMetrics, step: dict[str, Any]) -> StepMetricsOut:
        return cls(
            step=m.step,
            entered=m.entered,
            sent=m.sent,
            replied=m.replied,
            purchased=m.purchased,
            revenue_cents=m.revenue_cents,
            exited=m.exited,
            ab_test=_step_test(m, step),
        )


def _step_test(m: StepMetrics, step: dict[str, Any]) -> StepTestOut | None:
    variants = step.get("variants") or []
    if not variants or len(m.variants) != len(variants):
        return None
    rule = AbTest(goal=step.get("goal") or "purchase")
    result = standing(m.variants, rule)
    return StepTestOut(
        goal=rule.goal,
        min_per_variant=rule.min_per_variant,
        threshold=rule.threshold,
        variants=[
            StepVariantOut(
                variant=v["name"],
                weight=v["weight"],
                sent=c.sent,
                replied=c.replied,
                purchased=c.purchased,
                revenue_cents=c.revenue_cents,
                conversion=round(conversion, 6),
                probability_best=round(best, 6),
            )
            for v, c, conversion, best in zip(
                variants, m.variants, result.conversion, result.probability_best, strict=True
            )
        ],
        winner=None if result.winner is None else variants[result.winner]["name"],
    )


class SequenceOut(msgspec.Struct, kw_only=True, rename="camel", omit_defaults=True):
    id: int
    name: str
    status: str
    trigger: dict[str, Any]
    steps: list[dict[str, Any]]
    exit: dict[str, Any]
    reentry: str
    time_zone: str
    version: int
    created_at: datetime | None = None
    updated_at: datetime | None = None
    entered: int | None = None
    active: int | None = None
    completed: int | None = None
    metrics: list[StepMetricsOut] | None = None

    @classmethod
    def from_view(cls, view: SequenceView, *, with_metrics: bool = False) -> SequenceOut:
        return cls(
            id=view.sequence_id,
            name=view.name,
            status=view.status,
            trigger=_wire(view.trigger),
            steps=[_step(step) for step in view.steps],
            exit=_wire(view.exit_rules),
            reentry=view.reentry,
            time_zone=view.time_zone,
            version=view.version,
            created_at=view.created_at,
            updated_at=view.updated_at,
            entered=view.entered,
            active=view.active,
            completed=view.completed,
            metrics=[
                StepMetricsOut.of(m, step) for m, step in zip(view.metrics, view.steps, strict=True)
            ]
            if with_metrics
            else None,
        )

    @classmethod
    def from_aggregate(cls, sequence: Sequence) -> SequenceOut:
        built = msgspec.to_builtins
        return cls(
            id=sequence.sequence_id,
            name=sequence.name,
            status=sequence.status,
            trigger=_wire(built(sequence.trigger)),
            steps=[_step(built(step)) for step in sequence.steps],
            exit=_wire(built(sequence.exit_rules)),
            reentry=sequence.reentry,
            time_zone=sequence.time_zone,
            version=sequence.version,
        )


class SequenceChangedOut(msgspec.Struct, kw_only=True, rename="camel"):
    """A command's answer: the sequence as it left it, and the log position to read it at."""

    sequence: SequenceOut
    position: int


class SequenceEnvelope(msgspec.Struct, kw_only=True, rename="camel"):
    sequence: SequenceOut


class SequenceListOut(msgspec.Struct, kw_only=True, rename="camel"):
    sequences: list[SequenceOut]
    next_cursor: str | None


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.title() for part in rest)


def _wire(fields: dict[str, Any]) -> dict[str, Any]:
    """A stored value's fields as the API names them, absent ones left out."""
    return {_camel(key): value for key, value in fields.items() if value is not None}


def _step(fields: dict[str, Any]) -> dict[str, Any]:
    variants = fields.get("variants") or []
    kept = {k: v for k, v in fields.items() if k not in ("attachments", "variants", "goal")}
    if kept.pop("auto_price", False):
        kept["price_cents"] = "auto"  # as it was asked for
    step = _wire(kept) | {"mediaUrls": [url for _, url in fields.get("attachments") or ()]}
    if not variants:  # a step without a test reads as it did before tests existed
        return step
    return step | {"variants": [_step(variant) for variant in variants], "goal": fields["goal"]}
