"""A paused or cancelled campaign's messages stop at the sender as soon as the pause or cancel
is committed, whatever the campaigns view shows: the sender asks the event store, and looks
again right before the platform call, after its wait for a rate-limit token.

No projector runs here unless a test catches one up: the views lag the log as far as a test
wants. The sender is the one `crm worker sender` and the Lambda handler build (build_sender),
with a scripted gateway and limiter; its status cache is off (TTL 0), its own tests being
tests/unit/test_campaign_status_cache.py."""

from __future__ import annotations

from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import msgspec
import pytest

from adapters import bootstrap
from application.campaign_fan_out import fan_out_chunk
from application.campaigns import CreateCampaign, change_status, launch_new_campaign
from application.fans import CreateFan, create_fan
from domain.message import message_stream_id
from tests.integration.test_sender import CTX, ScriptedGateway, ScriptedLimiter
from tests.support.sending import catch_up
from tests.support.settings import settings_for
from worker.campaigns import CampaignWorker
from worker.relay import Relay
from worker.sender import Record, Sender, build_sender, record_from_receive

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
async def fresh(fresh_database_url: str) -> AsyncIterator[bootstrap.Container]:
    container = await bootstrap.build(
        settings_for(fresh_database_url, campaign_status_ttl=0.0, rate_limiter_enabled=False)
    )
    try:
        yield container
    finally:
        await container.close()


@asynccontextmanager
async def deployed_sender(
    container: bootstrap.Container, gateway: ScriptedGateway, limiter: object
) -> AsyncIterator[Sender]:
    sender, close = await build_sender(container)
    sender.gateway = gateway
    sender.limiter = limiter  # type: ignore[assignment]
    try:
        yield sender
    finally:
        await close()


async def launched_campaign(container: bootstrap.Container, fans: int = 3) -> int:
    """A campaign to ``fans`` new fans, fanned out and relayed, with every view caught up:
    they show it active."""
    fan_ids = []
    for i in range(fans):
        created = await create_fan(
            CreateFan(name=f"Fan {i}", handle=f"@fan{i}"),
            CTX,
            store=container.events,
            ids=container.ids,
        )
        fan_ids.append(created.fan.fan_id)
    await catch_up(container)
    launched = await launch_new_campaign(
        CreateCampaign(name="Spring", content="Hello {{name}}", recipient_ids=tuple(fan_ids)),
        CTX,
        store=container.events,
        ids=container.ids,
        audience=container.campaigns,
    )
    campaign_id = launched.campaign.campaign_id
    chunk = await fan_out_chunk(
        campaign_id,
        store=container.events,
        audience=container.campaigns,
        ids=container.ids,
        loaded=launched.campaign,
    )
    assert chunk is not None
    assert chunk.queued == fans
    await relay_all(container)
    await catch_up(container)
    view = await container.campaigns.get_campaign(CTX.tenant, campaign_id)
    assert view is not None
    assert view.status == "active"
    return campaign_id


async def relay_all(container: bootstrap.Container) -> None:
    relay = Relay(container.outbox, container.queue, container.events)
    while await relay.run_once():
        pass


async def received(container: bootstrap.Container) -> list[Record]:
    """Everything on the queues, received (hidden for 30 s)."""
    records = []
    for name in ("high", "normal"):
        while batch := await container.queue.receive(name, visibility_timeout=30):
            records += [record_from_receive(name, m) for m in batch]
    return records


async def last_events(container: bootstrap.Container, records: list[Record]) -> Counter[str]:
    found: Counter[str] = Counter()
    for record in records:
        message_id = msgspec.json.decode(record.body)["messageId"]
        stream = await container.events.load(message_stream_id(CTX.tenant, message_id))
        found[stream[-1].event_type] += 1
    return found


async def change(container: bootstrap.Container, campaign_id: int, status: str) -> None:
    await change_status(
        campaign_id,
        status,  # type: ignore[arg-type]
        CTX,
        store=container.events,
        audience=container.campaigns,
    )


class PausingLimiter(ScriptedLimiter):
    """The first ask for a token finds none free for a moment, during which the campaign is
    paused (committed, as the pause's 200 says); the next finds one."""

    def __init__(self, pause: object) -> None:
        super().__init__(waits=[0.01])
        self._pause = pause
        self.asked = 0

    async def try_acquire(self, account: str) -> float:
        self.asked += 1
        if self.asked == 1:
            await self._pause()  # type: ignore[operator]
        return await super().try_acquire(account)


async def test_a_message_whose_campaign_was_paused_while_it_waited_for_its_token_is_held(
    fresh: bootstrap.Container,
) -> None:
    campaign_id = await launched_campaign(fresh, fans=1)
    [record] = await received(fresh)
    gateway = ScriptedGateway()

    async def pause() -> None:
        await change(fresh, campaign_id, "paused")

    limiter = PausingLimiter(pause)
    async with deployed_sender(fresh, gateway, limiter) as sender:
        outcome = (await sender.handle([record]))[record.record_id]

    assert limiter.asked == 2, "it waited for its token"
    assert outcome.done
    assert gateway.calls == []
    assert await last_events(fresh, [record]) == Counter(MessageHeld=1)


async def test_a_paused_campaigns_queued_messages_are_held_at_once_and_resume_sends_each_once(
    fresh: bootstrap.Container,
) -> None:
    campaign_id = await launched_campaign(fresh, fans=5)
    records = await received(fresh)
    assert len(records) == 5
    await change(fresh, campaign_id, "paused")  # no projector runs: the view says active
    view = await fresh.campaigns.get_campaign(CTX.tenant, campaign_id)
    assert view is not None
    assert view.status == "active"
    gateway = ScriptedGateway()

    async with deployed_sender(fresh, gateway, ScriptedLimiter()) as sender:
        outcomes = await sender.handle(records)
        assert all(o.done for o in outcomes.values())
        assert gateway.calls == []
        assert await last_events(fresh, records) == Counter(MessageHeld=5)

        # Resume: the campaign worker releases what was held, back through the outbox.
        await change(fresh, campaign_id, "resume")
        await catch_up(fresh)
        assert await CampaignWorker(fresh).run_once() == 5
        await relay_all(fresh)
        again = await received(fresh)
        assert len(again) == 5
        outcomes = await sender.handle(again)

    assert all(o.done for o in outcomes.values())
    assert await last_events(fresh, records) == Counter(MessageSent=5)
    keys = Counter(call.idempotency_key for call in gateway.calls)
    assert sorted(keys) == sorted(msgspec.json.decode(r.body)["messageId"] for r in records)
    assert set(keys.values()) == {1}, "each delivered exactly once"


async def test_a_cancelled_campaigns_queued_messages_are_cancelled_at_once(
    fresh: bootstrap.Container,
) -> None:
    campaign_id = await launched_campaign(fresh, fans=4)
    records = await received(fresh)
    await change(fresh, campaign_id, "cancelled")  # the view still says active
    gateway = ScriptedGateway()

    async with deployed_sender(fresh, gateway, ScriptedLimiter()) as sender:
        outcomes = await sender.handle(records)

    assert all(o.done for o in outcomes.values())
    assert gateway.calls == []
    assert await last_events(fresh, records) == Counter(MessageCancelled=4)


async def test_a_message_whose_campaign_was_cancelled_while_it_waited_for_its_token_is_cancelled(
    fresh: bootstrap.Container,
) -> None:
    campaign_id = await launched_campaign(fresh, fans=1)
    [record] = await received(fresh)
    gateway = ScriptedGateway()

    async def cancel() -> None:
        await change(fresh, campaign_id, "cancelled")

    async with deployed_sender(fresh, gateway, PausingLimiter(cancel)) as sender:
        outcome = (await sender.handle([record]))[record.record_id]

    assert outcome.done
    assert gateway.calls == []
    assert await last_events(fresh, [record]) == Counter(MessageCancelled=1)
