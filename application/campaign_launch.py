"""The bulk send (POST /api/messages/bulk, or a campaign created active): create and launch the
campaign, queue a small audience at once, and answer what the caller may expect.

Decided here: whether the first chunk is queued inline (an audience of at most
``inline_recipients``) or left to the campaign worker; the launch's status (scheduled, queued,
queueing); how many recipients were asked for and how many failed; and when the last message
should be sent. The campaign is committed before any of that: nothing computed after the launch
turns it into an error (a client would retry it into a second campaign), so an inline fan-out
or an estimate that fails is left out, and said so in ``left_out``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Literal

import msgspec

from application.auto_price import PricingCounts
from application.campaign_fan_out import ChunkResult, fan_out_chunk
from application.campaigns import Audience, CreateCampaign, RecipientFailure, launch_new_campaign
from application.context import CommandContext
from application.ports import EventStore, IdAllocator
from domain.campaign import Campaign

LaunchStatus = Literal["scheduled", "queued", "queueing"]
# How many messages are on the queues now (both priorities), ahead of a new campaign's.
QueuedAhead = Callable[[], Awaitable[int]]


class BulkLaunched(msgspec.Struct, frozen=True, kw_only=True):
    campaign: Campaign
    failures: list[RecipientFailure]
    # Every id asked for, refused ones included, so that queued + failed adds up to it once
    # the audience is queued (the campaign itself counts only the fans it sends to).
    requested: int
    queued: int  # messages queued before answering
    created: int  # of those, recorded for the first time (what the queued metric adds)
    failed: int
    status: LaunchStatus
    estimated_completion: datetime | None
    position: int
    # What could not be done after the launch committed: (what, why), for the logs.
    left_out: tuple[tuple[str, str], ...] = ()


async def launch_bulk(
    cmd: CreateCampaign,
    ctx: CommandContext,
    *,
    store: EventStore,
    ids: IdAllocator,
    audience: Audience,
    queued_ahead: QueuedAhead,
    inline_recipients: int,
    rate_per_second: float,
    pricing: PricingCounts | None = None,
) -> BulkLaunched:
    """Launch; NoRecipients (nothing launched) if no recipient id is a fan of this account.
    Once launched, it raises no more: what fails after is left out."""
    launched = await launch_new_campaign(cmd, ctx, store=store, ids=ids, audience=audience)
    campaign = launched.campaign
    left_out: list[tuple[str, str]] = []
    first = None
    # A small audience is queued before answering, unless its chunk met a stale view (the
    # worker waits for it, a request won't); a large one is all the worker's.
    if campaign.total_recipients <= inline_recipients:
        try:
            first = await fan_out_chunk(
                campaign.campaign_id,
                store=store,
                audience=audience,
                ids=ids,
                chunk_size=inline_recipients,
                attempts=1,
                loaded=campaign,
                pricing=pricing,
            )
        except Exception as error:
            left_out.append(("inline fan-out", type(error).__name__))
    now = datetime.now(UTC)
    try:
        ahead: int | None = await queued_ahead()
    except Exception as error:
        ahead = None
        left_out.append(("estimate", type(error).__name__))
    return BulkLaunched(
        campaign=campaign,
        # The inline fan-out's skips with a reason (a Patreon member: no direct messages) are
        # per-recipient failures too, beside the launch's own.
        failures=[
            *launched.failures,
            *(RecipientFailure(fan_id, reason) for fan_id, reason in first.skipped_fans),
        ]
        if first
        else launched.failures,
        requested=campaign.total_recipients + len(launched.failures),
        queued=first.queued if first else 0,
        created=first.created if first else 0,
        failed=len(launched.failures) + (first.skipped if first else 0),
        status=launch_status(cmd.scheduled_at, first, now),
        estimated_completion=None
        if ahead is None
        else estimate(campaign.total_recipients, ahead, cmd.scheduled_at, rate_per_second, now),
        position=first.position if first else launched.position,
        left_out=tuple(left_out),
    )


def launch_status(
    scheduled_at: datetime | None, first: ChunkResult | None, now: datetime
) -> LaunchStatus:
    """Scheduled for later; queued whole already (inline); or queueing, in the worker (an
    auto-winner test's rest waits for its winner: still queueing)."""
    if scheduled_at is not None and scheduled_at > now:
        return "scheduled"
    return "queued" if first and first.finished and not first.awaiting_winner else "queueing"


def estimate(
    recipients: int,
    ahead: int,
    scheduled_at: datetime | None,
    rate_per_second: float,
    now: datetime,
) -> datetime:
    """When the last message should be sent: the campaign waits behind everything already on
    the queues (replies and earlier campaigns), then goes at the account's send rate."""
    start = max(scheduled_at or now, now)
    return start + timedelta(seconds=(ahead + recipients) / rate_per_second)
