"""The campaign worker (`crm worker campaigns`): the process manager of bulk campaigns.

In each round, for every campaign with work (from the campaigns read model), it:

- queues the next chunk of an active campaign's audience (application.campaign_fan_out), one
  chunk per campaign per round so that a large campaign does not starve a small one;
- releases the messages the sender held while the campaign was paused, once it is active
  again, and cancels those of a cancelled campaign;
- records an active campaign completed once every queued message has an outcome;
- records the winner of an auto-winner A/B test once its stop rule is met by the results
  (application.ab_winner), after which the fan-out sends the winner to the rest.

A campaign never stalls silently: a fan-out step that fails all its attempts is reported in a
warning (campaign id and the last reason), counted in ``onlyfans.bulk.stalled`` and recorded
for `crm campaigns status` until a chunk is queued again. Fans skipped for a reason (a message
id already used for another message) are logged one by one and counted.

Everything it decides is re-read from the event store before it is appended with an expected
version, so several workers may run at once and a killed one loses nothing: its transaction
rolls back and the next round redoes the chunk.
"""

from __future__ import annotations

import asyncio
import contextlib

import structlog

from adapters import metrics
from adapters.bootstrap import Container
from adapters.postgres.campaign_read_model import CampaignWork
from adapters.postgres.campaign_stalls import clear_stall, record_stall
from application.ab_winner import choose_winner_if_due
from application.campaign_fan_out import (
    ChunkResult,
    FanOutStalled,
    cancel_message,
    fan_out_step,
    release_message,
)
from application.campaigns import change_status
from application.context import CommandContext
from application.errors import ConcurrencyError
from domain.campaign import Campaign
from domain.errors import DomainError

log = structlog.get_logger(__name__)


class CampaignWorker:
    def __init__(self, container: Container, *, poll_interval: float = 0.5) -> None:
        self.container = container
        self.chunk_size = container.settings.campaign_chunk_size
        self.poll_interval = poll_interval
        # Each campaign as this worker saved it with its last chunk: the next chunk starts from
        # it instead of replaying the stream (fan_out_chunk's version check catches staleness).
        self._saved: dict[int, Campaign] = {}
        # Campaigns this worker has seen move on since it started or last saw them stall: a
        # chunk of any other clears its stall record first.
        self._progressed: set[int] = set()

    async def run_once(self) -> int:
        """One round over the open campaigns; returns how much it did (0: nothing to do)."""
        done = 0
        open_campaigns = await self.container.campaigns.open_campaigns()
        fanning_out = {w.campaign_id for w in open_campaigns if not w.fanned_out}
        for campaign_id in self._saved.keys() - fanning_out:  # cancelled, or done elsewhere
            del self._saved[campaign_id]
        self._progressed &= fanning_out
        for work in open_campaigns:
            try:
                done += await self._advance(work)
            except (ConcurrencyError, DomainError) as error:
                # Another worker or a person got there first; the next round sees the result.
                log.info("campaign step skipped", campaign_id=work.campaign_id, reason=str(error))
        return done

    async def _advance(self, work: CampaignWork) -> int:
        c = self.container
        ctx = CommandContext(
            tenant=work.tenant,
            actor="campaign-worker",
            correlation_id=f"campaign-{work.campaign_id}",
        )
        if work.status == "active" and work.awaiting_winner:
            return await self._judge(work, ctx)
        if work.status == "active" and not work.fanned_out:
            step = await fan_out_step(
                work.campaign_id,
                store=c.events,
                audience=c.campaigns,
                ids=c.ids,
                chunk_size=self.chunk_size,
                loaded=self._saved.pop(work.campaign_id, None),
                pricing=c.pricing,
            )
            if isinstance(step, FanOutStalled):
                await self._stalled(work, step)
            elif isinstance(step, ChunkResult):
                return await self._queued(work, step)
            return 0
        if work.held and work.status in ("active", "cancelled"):
            return await self._settle_held(work, ctx)
        if work.status == "active" and work.fanned_out and work.settled:
            await change_status(
                work.campaign_id, "completed", ctx, store=c.events, audience=c.campaigns
            )
            log.info("campaign completed", campaign_id=work.campaign_id)
            return 1
        return 0

    async def _judge(self, work: CampaignWork, ctx: CommandContext) -> int:
        """An auto-winner test waits for its winner: recorded once the stop rule is met."""
        c = self.container
        test = await c.campaigns.ab_test(work.campaign_id)
        if test is None:
            return 0
        winner = await choose_winner_if_due(
            work.campaign_id, test, ctx, store=c.events, audience=c.campaigns
        )
        if winner is None:
            return 0
        metrics.ab_winner_chosen(work.tenant, test.rule.goal)
        log.info(
            "a/b test winner chosen",
            campaign_id=work.campaign_id,
            variant=test.variants[winner].name,
        )
        return 1

    async def _queued(self, work: CampaignWork, chunk: ChunkResult) -> int:
        if not chunk.finished:
            self._saved[work.campaign_id] = chunk.campaign
        if work.campaign_id not in self._progressed:
            # Whoever recorded it stalled (this worker, another, or one before a restart):
            # the campaign moves again.
            await clear_stall(self.container.pool, work.campaign_id)
            self._progressed.add(work.campaign_id)
        for fan_id, reason in chunk.skipped_fans:
            log.warning(
                "campaign recipient skipped",
                campaign_id=work.campaign_id,
                fan_id=fan_id,
                reason=reason,
            )
        if chunk.skipped_fans:
            metrics.campaign_fans_skipped(len(chunk.skipped_fans))
        # Campaign messages always take the normal queue (domain.message.queue_for).
        metrics.message_queued(work.tenant, "normal", chunk.created)
        log.info(
            "campaign chunk queued",
            campaign_id=work.campaign_id,
            queued=chunk.queued,
            skipped=chunk.skipped,
            finished=chunk.finished,
        )
        return chunk.queued + chunk.skipped + 1

    async def _stalled(self, work: CampaignWork, stalled: FanOutStalled) -> None:
        rounds = await record_stall(
            self.container.pool, work.campaign_id, work.tenant, stalled.reason
        )
        self._progressed.discard(work.campaign_id)
        metrics.campaign_stalled()
        log.warning(
            "campaign stalled",
            campaign_id=work.campaign_id,
            reason=stalled.reason,
            attempts=stalled.attempts,
            rounds=rounds,
        )

    async def _settle_held(self, work: CampaignWork, ctx: CommandContext) -> int:
        c = self.container
        held = await c.campaigns.held_messages(work.campaign_id, self.chunk_size)
        for message_id in held:
            if work.status == "active":
                await release_message(
                    message_id,
                    ctx,
                    store=c.events,
                    high_priority_from=c.settings.high_priority_from,
                )
            else:
                await cancel_message(message_id, "campaign cancelled", ctx, store=c.events)
        log.info(
            "held messages settled",
            campaign_id=work.campaign_id,
            count=len(held),
            action="released" if work.status == "active" else "cancelled",
        )
        return len(held)

    async def run(self, stop: asyncio.Event) -> None:
        backoff = self.poll_interval
        while not stop.is_set():
            try:
                did = await self.run_once()
                backoff = self.poll_interval
                if did:
                    continue
            except asyncio.CancelledError:
                raise
            except Exception:  # an outage or a bug: keep going, visibly, with backoff
                log.exception("campaign round failed")
                backoff = min(backoff * 2, 30.0)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=backoff)


async def run_campaign_worker(container: Container, stop: asyncio.Event) -> None:
    log.info("campaign worker started")
    await CampaignWorker(container).run(stop)
