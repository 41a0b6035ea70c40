"""Deliver one queued message: the sender's use case, on its ports.

Read the message (settled already? past its last receive?), look at its campaign before the
rate-limit token and again right before the platform (the wait for the token may last seconds,
and a pause or cancel may come meanwhile), open its personal fields (gone if the recipient was
erased), take a token, call the platform, and record the outcome as the message's event. The
decisions are application/delivery.py's; the worker turns queue records into ``SendJob``s and
``Delivered`` into queue calls, logs and metrics.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from application.campaign_fan_out import cancel_message, hold_message
from application.context import CommandContext
from application.delivery import (
    Delivered,
    Disposition,
    SendJob,
    Verdict,
    after_send,
    ask_again,
    backoff,
    dead_letter_unsettled,
    for_campaign,
    on_arrival,
)
from application.message_streams import load_message
from application.messages import record_attempt_failed, record_failed, record_sent_on
from application.ports import EventStore
from application.sending import (
    LimiterUnavailable,
    OnlyFansGateway,
    PlatformGateways,
    PlatformMessage,
    PlatformRoute,
    RateLimiter,
    TokenAnswer,
)
from domain.message import Message

# A token that frees up within this wait is waited for, holding the record; a longer wait
# hands the record back to the queue for that long.
MAX_TOKEN_WAIT = 5.0
# With the limiter away: how long a record in hand goes back for.
LIMITER_AWAY_DEFER = 5.0

CampaignStatus = Callable[[int], Awaitable[str | None]]
# The personal fields (content, media) of a job's queue body; None if its recipient was erased.
OpenPersonal = Callable[[SendJob], Awaitable[dict[str, Any] | None]]


class DeliveryService:
    def __init__(
        self,
        store: EventStore,
        gateway: OnlyFansGateway,
        limiter: RateLimiter,
        campaign_status: CampaignStatus,
        open_personal: OpenPersonal,
        *,
        max_receive_count: int,
        retry_delays: Sequence[float],
        other_platforms: dict[str, PlatformRoute] | None = None,
    ) -> None:
        if not retry_delays:
            raise ValueError("at least one retry delay")
        self.store = store
        # ``gateway`` and ``limiter`` are OnlyFans' (every message before platforms were told
        # apart was OnlyFans'); the other platforms' are routes of their own.
        self.platforms = PlatformGateways(
            {"onlyfans": PlatformRoute(gateway, limiter), **(other_platforms or {})}
        )
        self.campaign_status = campaign_status
        self.open_personal = open_personal
        self.max_receive_count = max_receive_count
        self.retry_delays = tuple(retry_delays)

    @property
    def gateway(self) -> OnlyFansGateway:
        return self._onlyfans.gateway

    @gateway.setter
    def gateway(self, gateway: OnlyFansGateway) -> None:
        self.platforms.replace("onlyfans", PlatformRoute(gateway, self._onlyfans.limiter))

    @property
    def limiter(self) -> RateLimiter:
        return self._onlyfans.limiter

    @limiter.setter
    def limiter(self, limiter: RateLimiter) -> None:
        self.platforms.replace("onlyfans", PlatformRoute(self._onlyfans.gateway, limiter))

    @property
    def _onlyfans(self) -> PlatformRoute:
        route = self.platforms.route("onlyfans")
        assert route is not None
        return route

    async def deliver(self, job: SendJob) -> Delivered:
        ctx = _context(job)
        message = await self._message(job.message_id, job.tenant)
        arrival = on_arrival(message.status, job.receive_count, self.max_receive_count)
        if arrival == "drop":
            return Delivered(happened="duplicate", disposition=Disposition(True))
        later = Disposition(False, backoff(job.receive_count, self.retry_delays))
        if arrival == "give_up":
            if message.status == "failed":
                return Delivered(happened="gave_up", disposition=later)
            reason = f"gave up after {self.max_receive_count} tries"
            await record_failed(job.message_id, reason, ctx, store=self.store)
            return Delivered(happened="gave_up", disposition=later, failure=reason)
        # A first look before the token, so that a stopped campaign's backlog spends none.
        stopped = await self._stop_for_campaign(job, ctx)
        if stopped is not None:
            return stopped
        personal = await self.open_personal(job)
        if personal is None:
            reason = "recipient was erased"
            await record_failed(job.message_id, reason, ctx, store=self.store)
            return Delivered(happened="erased", disposition=Disposition(True), failure=reason)
        route = self.platforms.route(job.platform)
        if route is None:
            # Its gateway was configured when it was queued and is no more: failed, so a
            # person sees why, rather than sent through another platform's gateway.
            reason = f"no {job.platform} gateway is configured: not sent"
            await record_failed(job.message_id, reason, ctx, store=self.store)
            return Delivered(happened="unroutable", disposition=Disposition(True), failure=reason)
        try:
            token = await self._token(route.limiter, job.tenant)
        except LimiterUnavailable as error:
            away = Disposition(False, LIMITER_AWAY_DEFER, deferred=True)
            return Delivered(happened="limiter_away", disposition=away, limiter_error=str(error))
        if not token.granted:
            wait = Disposition(False, token.wait, deferred=True)
            return Delivered(happened="no_token", disposition=wait)
        # The last look, right before the platform.
        stopped = await self._stop_for_campaign(job, ctx, token)
        if stopped is not None:
            return stopped
        return await self._send(route.gateway, job, message, personal, token, ctx)

    async def _send(
        self,
        gateway: OnlyFansGateway,
        job: SendJob,
        message: Message,
        personal: dict[str, Any],
        token: TokenAnswer,
        ctx: CommandContext,
    ) -> Delivered:
        platform_message = PlatformMessage(
            account=job.tenant,
            recipient=str(job.recipient_id),
            text=personal.get("content") or "",
            price_cents=job.price_cents,
            media_urls=tuple(m["url"] for m in personal.get("media") or ()),
            idempotency_key=job.message_id,
        )
        result = await gateway.send_message(platform_message)
        if ask_again(result, last_receive=job.receive_count >= self.max_receive_count):
            result = await gateway.send_message(platform_message)
        verdict = after_send(result, job.receive_count, self.max_receive_count, self.retry_delays)
        await self._record(verdict, job, message, result.platform_message_id, ctx)
        return Delivered(
            happened=verdict.happened,
            disposition=verdict.disposition,
            failure=verdict.reason if verdict.record == "failed" else None,
            result=result,
            token_at=token.at,
        )

    async def _record(
        self,
        verdict: Verdict,
        job: SendJob,
        message: Message,
        platform_message_id: str | None,
        ctx: CommandContext,
    ) -> None:
        if verdict.record == "sent":
            await record_sent_on(message, platform_message_id, ctx, store=self.store)
        elif verdict.record == "failed":
            assert verdict.reason is not None
            await record_failed(
                job.message_id, verdict.reason, ctx, store=self.store, attempted=verdict.attempted
            )
        else:
            assert verdict.reason is not None
            await record_attempt_failed(job.message_id, verdict.reason, ctx, store=self.store)

    async def settle_dead_letter(self, message_id: str, tenant: str, receive_count: int) -> bool:
        """A dead letter's message that shows no outcome is recorded failed; True if it was."""
        message = await self._message(message_id, tenant)
        if not dead_letter_unsettled(message.status):
            return False
        ctx = CommandContext(tenant=tenant, actor="sender", correlation_id=message_id)
        reason = f"dead-lettered after {receive_count} receives"
        await record_failed(message_id, reason, ctx, store=self.store)
        return True

    async def _stop_for_campaign(
        self, job: SendJob, ctx: CommandContext, token: TokenAnswer | None = None
    ) -> Delivered | None:
        if job.campaign_id is None:
            return None
        action = for_campaign(await self.campaign_status(job.campaign_id))
        if action is None:
            return None
        at = token.at if token is not None else None
        if action == "hold":
            await hold_message(job.message_id, "campaign paused", ctx, store=self.store)
            return Delivered(happened="held", disposition=Disposition(True), token_at=at)
        await cancel_message(job.message_id, "campaign cancelled", ctx, store=self.store)
        return Delivered(happened="cancelled", disposition=Disposition(True), token_at=at)

    async def _token(self, limiter: RateLimiter, account: str) -> TokenAnswer:
        """The grant once a token is taken; else the refusal whose wait is too long to hold
        the record for (it goes back on the queue for that long)."""
        deadline = time.monotonic() + MAX_TOKEN_WAIT
        while True:
            answer = await limiter.try_acquire(account)
            if answer.granted or time.monotonic() + answer.wait > deadline:
                return answer
            await asyncio.sleep(answer.wait)

    async def _message(self, message_id: str, tenant: str) -> Message:
        message, _ = await load_message(self.store, message_id, tenant=tenant)
        assert isinstance(message, Message)
        return message


def _context(job: SendJob) -> CommandContext:
    sent_by = job.body.get("sentBy")
    return CommandContext(
        tenant=job.tenant, actor="sender", correlation_id=job.correlation_id
    ).acting_for(None if sent_by is None else str(sent_by))
