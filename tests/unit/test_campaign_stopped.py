"""Whether a campaign's messages must stop is the newest of its pause, resume and cancel
events in the store, whatever came after it (chunks queued) or before it."""

from __future__ import annotations

from application.campaign_fan_out import campaign_stopped
from application.context import CommandContext
from application.messages import stream_write
from domain.campaign import Campaign
from tests.support.fakes import InMemoryEventStore

CTX = CommandContext(tenant="creator-1", actor="test", correlation_id="c-1")


async def record(store: InMemoryEventStore, campaign: Campaign) -> None:
    await store.append_all([stream_write(campaign, "campaign")], metadata=CTX.metadata())


async def test_a_campaign_is_stopped_by_its_newest_pause_or_cancel_and_going_after_resume() -> None:
    store = InMemoryEventStore()
    campaign = Campaign.create(
        campaign_id=7, tenant=CTX.tenant, name="Spring", content="Hi", recipient_ids=[1, 2]
    )
    campaign.launch(total_recipients=2, audience_max_fan_id=2)
    await record(store, campaign)
    assert await campaign_stopped(store, 7) is None

    campaign.pause()
    await record(store, campaign)
    assert await campaign_stopped(store, 7) == "paused"

    campaign.resume()
    campaign.record_chunk(cursor=1, queued=1, skipped=0)
    await record(store, campaign)
    assert await campaign_stopped(store, 7) is None

    campaign.pause()
    campaign.cancel()
    await record(store, campaign)
    assert await campaign_stopped(store, 7) == "cancelled"
    assert await campaign_stopped(store, 8) is None
