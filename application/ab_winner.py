"""The auto-winner of a campaign's A/B test: once the test portion is queued, the campaign
worker asks, round after round, whether the stop rule is met; the first time it is, the
winner is recorded (``Campaign.WinnerChosen``) and the fan-out sends it to the rest.

The results come from the campaign_variants view: they are outcomes reported by the platform
long after the campaign's own events, so no stream holds them. What is decided on the event
store is everything that makes the decision once: the campaign must still be waiting for its
winner at the version read, so two workers (or a retry) record at most one winner.
"""

from __future__ import annotations

from application.ab_results import standing
from application.campaign_queries import AbTestView
from application.campaigns import Audience, load_campaign
from application.context import CommandContext
from application.ports import EventStore
from application.streams import handle
from domain.campaign import Campaign, campaign_stream_id


async def choose_winner_if_due(
    campaign_id: int,
    test: AbTestView,
    ctx: CommandContext,
    *,
    store: EventStore,
    audience: Audience,
) -> int | None:
    """The winner's index if this call recorded one; None if the rule is not met (yet), or
    the campaign is not waiting for a winner (any more). ``test``: the campaign's test and
    results as the views have them, asked every round: the campaign's stream is read only
    once the rule is met by them."""
    counts = [v.test for v in test.variants]
    if standing(counts, test.rule).winner is None:
        return None

    async def decide(campaign: Campaign) -> int | None:
        if campaign.status != "active" or not campaign.awaiting_winner:
            return None
        assert campaign.ab_test is not None  # a campaign with variants has its rule
        if len(counts) != len(campaign.variants):
            return None
        result = standing(counts, campaign.ab_test)
        if result.winner is None:
            return None
        campaign.choose_winner(result.winner, result.probability_best[result.winner])
        return result.winner

    handled = await handle(
        store,
        campaign_stream_id(campaign_id),
        decide,
        ctx,
        stream_type="campaign",
        load_stream=lambda: load_campaign(store, campaign_id, tenant=None),
        hold=lambda: audience.turn(campaign_id),
    )
    return handled.decision
