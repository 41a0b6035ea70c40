"""Campaign commands: create a draft, launch (the reference's POST /api/messages/bulk creates
and launches at once), pause, resume, cancel, complete.

Launching checks explicit recipients against the event store (the fans read model is only the
fast path: an id it lacks is looked up in the log before it is refused, so a fan created a
moment ago is a recipient at once); a segment is counted on the fans read model, which the API
first lets catch up with the caller's own writes. It records the campaign's events and returns
at once: the messages themselves are queued by the fan-out (application.campaign_fan_out), in
chunks, by the campaign worker.

The audience rule. Explicit ids: the fans of this account among them at launch, each queued
once; ids that are not (unknown, another account's, deleted) are reported per id and left out.
Segment: the fans matching it when the fan-out reaches them, among the fans that existed at
launch (fan id at most the highest one then): a fan created later is never included, and a fan
deleted, or no longer matching, before its chunk is skipped.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from datetime import datetime
from typing import Literal, Protocol, cast

import msgspec

from application.context import CommandContext
from application.errors import NotFound
from application.ports import EventStore, IdAllocator, StreamWrite
from application.sensitive_words import KnownWords, read_words
from application.streams import handle
from domain.base import DomainEvent
from domain.campaign import Campaign, campaign_stream_id
from domain.errors import InvalidValue
from domain.message import attachment_type_of
from domain.variants import AbTest, Variant

# The statuses a person may ask for (PATCH), and "resume", which only resumes a paused one
# ("active" also launches a draft).
StatusChange = Literal["active", "paused", "cancelled", "completed", "resume"]


class Segment(msgspec.Struct, frozen=True, kw_only=True):
    tags: tuple[str, ...] = ()
    min_value_cents: int | None = None
    active_since: datetime | None = None
    # Only fans the account's churn model scores at risk (application/churn.py AT_RISK).
    at_risk: bool = False


class Recipient(msgspec.Struct, frozen=True, kw_only=True):
    """A fan the fan-out may queue a message for, as the fans read model has it."""

    fan_id: int
    version: int
    platform: str
    conversation_id: int | None
    name: str | None
    handle: str | None


class AudienceChunk(msgspec.Struct, frozen=True, kw_only=True):
    recipients: list[Recipient]
    # The last fan id this chunk covered (including fans it skipped), and whether it was the last.
    cursor: int
    skipped: int
    last: bool


class Audience(Protocol):
    """The read-side questions about fans that campaigns need."""

    async def catch_up(self) -> None:
        """Wait (bounded) until the fans and conversations views have reached the log's head."""
        ...

    async def absent_fans(self, tenant: str, fan_ids: list[int]) -> set[int]:
        """Those of ``fan_ids`` that are not live fans of the tenant (unknown, deleted or
        another tenant's) in the event store, not merely missing from a lagging view:
        usually few, where the live ones may be 100,000."""
        ...

    async def segment_size(self, tenant: str, segment: Segment) -> int:
        """How many of the tenant's fans match now."""
        ...

    async def highest_fan_id(self, tenant: str) -> int: ...

    async def chunk(self, campaign: Campaign, after: int, limit: int) -> AudienceChunk: ...

    def turn(self, campaign_id: int) -> AbstractAsyncContextManager[None]:
        """The campaign's stream to oneself while held, turns given in the order asked.

        The fan-out holds it for one chunk, a status change for its read-decide-append. The
        expected version alone keeps them correct, but a pause or cancel racing a fan-out
        that appends chunk after chunk could lose every try: taking turns it waits for at
        most one chunk. ConcurrencyError if the turn does not come in a few seconds."""
        ...


class VariantTemplate(msgspec.Struct, frozen=True, kw_only=True):
    """One variant of an A/B test, as asked (media as URLs)."""

    content: str
    name: str = ""
    media_urls: tuple[str, ...] = ()
    price_cents: int = 0
    weight: int = 1


class CreateCampaign(msgspec.Struct, frozen=True, kw_only=True):
    name: str
    # With ``variants``, unused: each variant has its own.
    content: str
    media_urls: tuple[str, ...] = ()
    price_cents: int = 0
    priority: int = 5
    recipient_ids: tuple[int, ...] | None = None
    segment: Segment | None = None
    scheduled_at: datetime | None = None
    variants: tuple[VariantTemplate, ...] = ()
    ab_test: AbTest | None = None
    # ``priceCents: "auto"``: each recipient priced by the pricing model at fan-out.
    auto_price: bool = False


class RecipientFailure(msgspec.Struct, frozen=True):
    recipient_id: int
    error: str


class Launched(msgspec.Struct, frozen=True, kw_only=True):
    campaign: Campaign
    failures: list[RecipientFailure]
    position: int


async def create_campaign(
    cmd: CreateCampaign, ctx: CommandContext, *, store: EventStore, ids: IdAllocator
) -> tuple[Campaign, int]:
    """A draft: checked now, launched later."""
    words = await _words_allowed(cmd, ctx, store)
    campaign = _new(cmd, ctx, await ids.next_id("campaign"), cmd.recipient_ids)
    return campaign, await _save_checked(store, campaign, ctx, words)


async def launch_new_campaign(
    cmd: CreateCampaign,
    ctx: CommandContext,
    *,
    store: EventStore,
    ids: IdAllocator,
    audience: Audience,
) -> Launched:
    """Create and launch in one append (POST /api/messages/bulk): no draft is left behind."""
    # The campaign holds its explicit ids sorted and unique; only if some are not live fans
    # is it made again without them (bench/MEASUREMENTS.md: checking them twice). A request the
    # domain refuses leaves a gap in the campaign ids, as any sequence may have.
    words = await _words_allowed(cmd, ctx, store)
    campaign = _new(cmd, ctx, await ids.next_id("campaign"), cmd.recipient_ids)
    recipient_ids, failures = await _live_recipients(campaign.recipient_ids, ctx, audience)
    if recipient_ids is not campaign.recipient_ids:
        campaign = _new(cmd, ctx, campaign.campaign_id, recipient_ids)
    await _launch(campaign, ctx, audience, live=len(recipient_ids) if recipient_ids else None)
    position = await _save_checked(store, campaign, ctx, words)
    return Launched(campaign=campaign, failures=failures, position=position)


async def change_status(
    campaign_id: int,
    status: StatusChange,
    ctx: CommandContext,
    *,
    store: EventStore,
    audience: Audience,
    on_launch: Callable[[Campaign], None] | None = None,
) -> tuple[Campaign, int]:
    """The reference's updateCampaignStatus: launch a draft, pause, resume, cancel, complete.
    ``on_launch`` hears of a draft this call launched, once its launch is saved."""

    if status not in ("active", "resume", "paused", "cancelled", "completed"):
        raise InvalidValue("status", "must be active, paused, cancelled or completed")

    async def decide(campaign: Campaign) -> bool:
        """Whether this launches the draft."""
        if status == "active" and campaign.status == "draft":
            await _launch(campaign, ctx, audience)
            return True
        if status in ("active", "resume"):
            campaign.resume()
        elif status == "paused":
            campaign.pause()
        elif status == "cancelled":
            campaign.cancel()
        else:
            campaign.complete()
        return False

    handled = await handle(
        store,
        campaign_stream_id(campaign_id),
        decide,
        ctx,
        stream_type="campaign",
        load_stream=lambda: load_campaign(store, campaign_id, tenant=ctx.tenant),
        hold=lambda: audience.turn(campaign_id),
    )
    if handled.decision and on_launch is not None:
        on_launch(handled.aggregate)
    return handled.aggregate, handled.position


async def load_campaign(
    store: EventStore, campaign_id: int, *, tenant: str | None
) -> tuple[Campaign, int]:
    """The campaign as its stream has it; another tenant's is reported missing. ``tenant``
    None: whoever owns it (the campaign worker acts for every tenant)."""
    recorded = await store.load(campaign_stream_id(campaign_id))
    if not recorded or (tenant is not None and recorded[0].metadata.tenant != tenant):
        raise NotFound(f"campaign {campaign_id}")
    campaign = None
    for item in recorded:
        campaign = item.event.mutate(campaign)
    assert isinstance(campaign, Campaign)
    return campaign, recorded[-1].position


def _new(
    cmd: CreateCampaign,
    ctx: CommandContext,
    campaign_id: int,
    recipient_ids: tuple[int, ...] | None,
) -> Campaign:
    segment = cmd.segment or Segment()
    return Campaign.create(
        campaign_id=campaign_id,
        tenant=ctx.tenant,
        name=cmd.name,
        content=cmd.content,
        attachments=[(attachment_type_of(url), url) for url in cmd.media_urls],
        price_cents=cmd.price_cents,
        priority=cmd.priority,
        recipient_ids=recipient_ids,
        segment_tags=segment.tags,
        segment_min_value_cents=segment.min_value_cents,
        segment_active_since=segment.active_since,
        segment_at_risk=segment.at_risk,
        scheduled_at=cmd.scheduled_at,
        variants=[
            Variant(
                name=v.name,
                content=v.content,
                price_cents=v.price_cents,
                attachments=tuple((attachment_type_of(url), url) for url in v.media_urls),
                weight=v.weight,
            )
            for v in cmd.variants
        ],
        ab_test=cmd.ab_test,
        auto_price=cmd.auto_price,
    )


async def _live_recipients(
    requested: tuple[int, ...] | None, ctx: CommandContext, audience: Audience
) -> tuple[tuple[int, ...] | None, list[RecipientFailure]]:
    """``requested``: sorted and unique, as the campaign holds them."""
    if requested is None:
        return None, []
    absent = await audience.absent_fans(ctx.tenant, list(requested))
    if not absent:
        return requested, []
    failures = [
        RecipientFailure(fan_id, "not a fan of this account (unknown or deleted)")
        for fan_id in sorted(absent)
    ]
    if len(absent) == len(requested):
        raise NoRecipients(failures)
    return tuple(fan_id for fan_id in requested if fan_id not in absent), failures


async def _launch(
    campaign: Campaign, ctx: CommandContext, audience: Audience, *, live: int | None = None
) -> None:
    """``live``: how many of the explicit recipients are live fans, if just counted."""
    campaign.check_launchable()
    highest = await audience.highest_fan_id(ctx.tenant)
    if campaign.recipient_ids is not None:
        if live is None:
            requested = list(campaign.recipient_ids)
            live = len(requested) - len(await audience.absent_fans(ctx.tenant, requested))
        total = live
    else:
        segment = Segment(
            tags=campaign.segment_tags,
            min_value_cents=campaign.segment_min_value_cents,
            active_since=campaign.segment_active_since,
            at_risk=campaign.segment_at_risk,
        )
        total = await audience.segment_size(ctx.tenant, segment)
    campaign.launch(total_recipients=total, audience_max_fan_id=highest, launched_by=ctx.member_id)


class NoRecipients(InvalidValue):
    """Not one of the explicit recipient ids is a fan of this account: nothing to launch."""

    def __init__(self, failures: list[RecipientFailure]) -> None:
        super().__init__("recipient_ids", "none of the recipients is a fan of this account")
        self.failures = failures


async def _words_allowed(cmd: CreateCampaign, ctx: CommandContext, store: EventStore) -> KnownWords:
    """The account's sensitive words, as the log has them, having checked the campaign's
    content (its template: the fans' own names are theirs) against them."""
    words = await read_words(store, ctx.tenant)
    for content in [v.content for v in cmd.variants] or [cmd.content]:
        words.refuse(content)
    return words


async def _save_checked(
    store: EventStore, campaign: Campaign, ctx: CommandContext, words: KnownWords
) -> int:
    """The new campaign's events, committed only while the words checked are the account's."""
    pending = cast(list[DomainEvent], campaign.collect_events())
    write = StreamWrite(campaign.id, "campaign", pending, pending[0].originator_version - 1)
    return (await store.append_all([write, words.hold()], metadata=ctx.metadata()))[-1]
