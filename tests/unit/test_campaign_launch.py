"""The bulk launch's decisions (application/campaign_launch.py) on in-memory fakes: Given fans,
When a bulk send asks for them, Then the campaign, what was queued inline and the answer."""

from __future__ import annotations

import bisect
import contextlib
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest

from application.campaign_fan_out import ChunkResult
from application.campaign_launch import BulkLaunched, estimate, launch_bulk, launch_status
from application.campaigns import AudienceChunk, CreateCampaign, NoRecipients, Recipient, Segment
from application.context import CommandContext
from application.fans import CreateFan, create_fan
from application.streams import load
from domain.campaign import Campaign
from domain.fan import Fan
from tests.support.fakes import CountingIds, InMemoryEventStore

RATE = 10.0


class LogAudience:
    """The fans, as the event store has them: the views the real audience reads never lag."""

    def __init__(self, store: InMemoryEventStore, *, broken: bool = False) -> None:
        self.store = store
        self.broken = broken

    async def _fans(self, tenant: str) -> dict[int, Fan]:
        fans = {}
        for stream_id in dict.fromkeys(r.stream_id for r in self.store.log):
            if stream_id.startswith("fan-"):
                fan, _ = await load(self.store, stream_id, tenant=tenant)
                if not fan.deleted:
                    fans[fan.fan_id] = fan
        return fans

    async def catch_up(self) -> None:
        return None

    async def absent_fans(self, tenant: str, fan_ids: list[int]) -> set[int]:
        return set(fan_ids) - set(await self._fans(tenant))

    async def segment_size(self, tenant: str, segment: Segment) -> int:
        return len(await self._fans(tenant))

    async def highest_fan_id(self, tenant: str) -> int:
        return max(await self._fans(tenant), default=0)

    async def chunk(self, campaign: Campaign, after: int, limit: int) -> AudienceChunk:
        if self.broken:
            raise RuntimeError("the fans view is away")
        fans = await self._fans(campaign.tenant)
        ids = campaign.recipient_ids or tuple(
            i for i in sorted(fans) if i <= campaign.audience_max_fan_id
        )
        start = bisect.bisect_right(ids, after)
        wanted = list(ids[start : start + limit])
        recipients = [
            Recipient(
                fan_id=fan.fan_id,
                version=fan.version,
                platform=fan.platform,
                conversation_id=fan.conversation_id,
                name=fan.name,
                handle=fan.handle,
            )
            for fan in (fans[i] for i in wanted if i in fans)
        ]
        return AudienceChunk(
            recipients=recipients,
            cursor=wanted[-1] if wanted else after,
            skipped=len(wanted) - len(recipients),
            last=start + limit >= len(ids),
        )

    @contextlib.asynccontextmanager
    async def _held(self) -> AsyncIterator[None]:
        yield

    def turn(self, campaign_id: int) -> contextlib.AbstractAsyncContextManager[None]:
        return self._held()


class Given:
    def __init__(self, ctx: CommandContext) -> None:
        self.ctx = ctx
        self.store = InMemoryEventStore()
        self.ids = CountingIds()
        self.fan_ids: list[int] = []

    async def fans(self, count: int) -> Given:
        for n in range(count):
            created = await create_fan(
                CreateFan(name=f"Fan {n}"), self.ctx, store=self.store, ids=self.ids
            )
            self.fan_ids.append(created.fan.fan_id)
        return self

    async def bulk(
        self,
        recipient_ids: tuple[int, ...] | None,
        *,
        inline: int = 100,
        ahead: int | Exception = 0,
        scheduled_at: datetime | None = None,
        broken_view: bool = False,
    ) -> BulkLaunched:
        async def queued_ahead() -> int:
            if isinstance(ahead, Exception):
                raise ahead
            return ahead

        cmd = CreateCampaign(
            name="Spring",
            content="Hi {name}",
            recipient_ids=recipient_ids,
            scheduled_at=scheduled_at,
        )
        return await launch_bulk(
            cmd,
            self.ctx,
            store=self.store,
            ids=self.ids,
            audience=LogAudience(self.store, broken=broken_view),
            queued_ahead=queued_ahead,
            inline_recipients=inline,
            rate_per_second=RATE,
        )

    def event_types(self, prefix: str) -> list[str]:
        return [r.event_type for r in self.store.log if r.stream_id.startswith(prefix)]


@pytest.fixture
async def given(alice: CommandContext) -> Given:
    return await Given(alice).fans(3)


async def test_a_small_audience_is_queued_before_the_answer(given: Given) -> None:
    before = datetime.now(UTC)
    launched = await given.bulk(tuple(given.fan_ids), ahead=7)
    assert (launched.status, launched.requested, launched.queued, launched.failed) == (
        "queued",
        3,
        3,
        0,
    )
    assert launched.created == 3
    assert given.event_types("message-") == ["MessageQueued"] * 3
    assert launched.position == given.store.log[-1].position
    # Behind the 7 messages on the queues, then 3 at 10 a second.
    assert launched.estimated_completion is not None
    assert before + timedelta(seconds=1) <= launched.estimated_completion
    assert launched.estimated_completion <= datetime.now(UTC) + timedelta(seconds=1)
    assert launched.left_out == ()


async def test_ids_that_are_not_fans_are_reported_and_left_out(given: Given) -> None:
    launched = await given.bulk((*given.fan_ids, 999))
    assert [(f.recipient_id, f.error) for f in launched.failures] == [
        (999, "not a fan of this account (unknown or deleted)")
    ]
    assert (launched.requested, launched.queued, launched.failed) == (4, 3, 1)
    assert launched.campaign.recipient_ids == tuple(given.fan_ids)


async def test_an_audience_over_the_inline_limit_is_left_to_the_worker(given: Given) -> None:
    launched = await given.bulk(tuple(given.fan_ids), inline=2)
    assert (launched.status, launched.queued, launched.requested) == ("queueing", 0, 3)
    assert given.event_types("message-") == []
    assert given.event_types("campaign-") == ["CampaignCreated", "CampaignLaunched"]
    assert launched.position == given.store.log[-1].position


async def test_a_campaign_scheduled_later_queues_nothing_yet(given: Given) -> None:
    later = datetime.now(UTC) + timedelta(hours=1)
    launched = await given.bulk(tuple(given.fan_ids), scheduled_at=later)
    assert (launched.status, launched.queued) == ("scheduled", 0)
    assert launched.estimated_completion == later + timedelta(seconds=3 / RATE)


async def test_what_fails_after_the_launch_is_left_out_not_raised(given: Given) -> None:
    launched = await given.bulk(
        tuple(given.fan_ids), ahead=ConnectionError("queue away"), broken_view=True
    )
    assert (launched.status, launched.queued, launched.estimated_completion) == (
        "queueing",
        0,
        None,
    )
    assert launched.left_out == (
        ("inline fan-out", "RuntimeError"),
        ("estimate", "ConnectionError"),
    )
    assert given.event_types("campaign-") == ["CampaignCreated", "CampaignLaunched"]


async def test_no_fan_among_the_ids_launches_nothing(given: Given) -> None:
    count = len(given.store.log)
    with pytest.raises(NoRecipients) as refused:
        await given.bulk((998, 999))
    assert [f.recipient_id for f in refused.value.failures] == [998, 999]
    assert len(given.store.log) == count


def test_the_launch_status_and_estimate_decided() -> None:
    now = datetime(2026, 1, 1, tzinfo=UTC)
    finished = ChunkResult(
        campaign_id=1,
        queued=1,
        skipped=0,
        finished=True,
        position=1,
        campaign=None,  # type: ignore[arg-type]
    )
    assert launch_status(now + timedelta(seconds=1), finished, now) == "scheduled"
    assert launch_status(now, finished, now) == "queued"
    assert launch_status(None, None, now) == "queueing"
    assert estimate(30, 20, None, RATE, now) == now + timedelta(seconds=5)
    assert estimate(30, 20, now - timedelta(hours=1), RATE, now) == now + timedelta(seconds=5)
