"""The sender's decisions (application/delivery.py) and the delivery service carrying them out
on in-memory fakes: Given the message's events, When a queue record of it is delivered, Then
these events and this disposition."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import pytest

from application.context import CommandContext
from application.delivery import (
    Disposition,
    SendJob,
    after_send,
    ask_again,
    backoff,
    for_campaign,
    on_arrival,
)
from application.delivery_service import DeliveryService
from application.fans import CreateFan, create_fan
from application.messages import QueueMessage, queue_message, record_sent
from application.sending import (
    LimiterUnavailable,
    PlatformMessage,
    PlatformSendResult,
    TokenAnswer,
)
from tests.support.fakes import CountingIds, InMemoryEventStore

DELAYS = (1.0, 2.0, 4.0)
MAX_RECEIVES = 3
SENT = PlatformSendResult(outcome="sent", platform_message_id="of-1")
TIMEOUT = PlatformSendResult(outcome="retryable", reason="timeout", ambiguous=True)


# -- the pure decisions ---------------------------------------------------------------------


@pytest.mark.parametrize("status", ["sent", "read", "held", "cancelled"])
def test_a_settled_message_is_dropped(status: str) -> None:
    assert on_arrival(status, receive_count=1, max_receive_count=MAX_RECEIVES) == "drop"


def test_a_message_past_its_last_receive_is_given_up_and_a_failed_one_sent_again() -> None:
    assert on_arrival("dispatched", 4, MAX_RECEIVES) == "give_up"
    assert on_arrival("dispatched", 3, MAX_RECEIVES) == "send"
    assert on_arrival("failed", 1, MAX_RECEIVES) == "send"


def test_a_paused_campaigns_message_is_held_and_a_cancelled_ones_cancelled() -> None:
    assert (for_campaign("paused"), for_campaign("cancelled"), for_campaign(None)) == (
        "hold",
        "cancel",
        None,
    )


def test_only_an_ambiguous_failure_on_the_last_receive_is_asked_again() -> None:
    assert ask_again(TIMEOUT, last_receive=True)
    assert not ask_again(TIMEOUT, last_receive=False)
    plain = PlatformSendResult(outcome="retryable", reason="503")
    assert not ask_again(plain, last_receive=True)


def test_the_platforms_answers_decided() -> None:
    sent = after_send(SENT, 1, MAX_RECEIVES, DELAYS)
    assert (sent.record, sent.disposition) == ("sent", Disposition(True))
    refused = after_send(PlatformSendResult(outcome="permanent"), 1, MAX_RECEIVES, DELAYS)
    assert (refused.record, refused.reason, refused.attempted) == (
        "failed",
        "refused by the platform",
        True,
    )
    throttled = PlatformSendResult(outcome="rate_limited", retry_after=7.0)
    limited = after_send(throttled, 1, MAX_RECEIVES, DELAYS)
    assert (limited.record, limited.disposition) == ("attempt_failed", Disposition(False, 7.0))
    retry = after_send(PlatformSendResult(outcome="retryable"), 2, MAX_RECEIVES, DELAYS)
    assert (retry.record, retry.reason, retry.disposition) == (
        "attempt_failed",
        "retryable error",
        Disposition(False, 2.0),
    )
    last = after_send(PlatformSendResult(outcome="retryable", reason="503"), 3, 3, DELAYS)
    assert (last.record, last.reason, last.attempted) == ("failed", "gave up: 503", True)


def test_backoff_takes_the_nth_delay_and_repeats_the_last() -> None:
    assert [backoff(n, DELAYS) for n in (0, 1, 2, 3, 9)] == [1.0, 1.0, 2.0, 4.0, 4.0]


# -- the service on fakes -------------------------------------------------------------------


class Gateway:
    def __init__(self, answers: Sequence[PlatformSendResult] = (SENT,)) -> None:
        self.answers = list(answers)
        self.calls: list[PlatformMessage] = []

    async def send_message(self, message: PlatformMessage) -> PlatformSendResult:
        self.calls.append(message)
        return self.answers.pop(0) if self.answers else SENT


class Limiter:
    def __init__(self, *, away: bool = False, wait: float = 0.0) -> None:
        self.away = away
        self.wait = wait

    async def try_acquire(self, account: str) -> TokenAnswer:
        if self.away:
            raise LimiterUnavailable("Redis is gone")
        return TokenAnswer(wait=self.wait, at=datetime(2026, 1, 1, tzinfo=UTC))

    async def check(self) -> None:
        if self.away:
            raise LimiterUnavailable("Redis is gone")


class Campaigns:
    """The campaign's status, one answer per look (the last one repeated)."""

    def __init__(self, *answers: str | None) -> None:
        self.answers = list(answers) or [None]

    async def __call__(self, campaign_id: int) -> str | None:
        return self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]


class Given:
    """A tenant's fan and one queued message to it."""

    def __init__(self, ctx: CommandContext) -> None:
        self.ctx = ctx
        self.store = InMemoryEventStore()
        self.ids = CountingIds()
        self.job: SendJob

    async def queued(self, *, campaign_id: int | None = None) -> Given:
        fan = (
            await create_fan(CreateFan(name="Ann"), self.ctx, store=self.store, ids=self.ids)
        ).fan
        cmd = QueueMessage(recipient_id=fan.fan_id, content="Hi", campaign_id=campaign_id)
        accepted = await queue_message(cmd, self.ctx, store=self.store, ids=self.ids)
        self.job = SendJob.from_body(
            {
                "messageId": accepted.message_id,
                "tenant": self.ctx.tenant,
                "recipientId": fan.fan_id,
                "campaignId": campaign_id,
            },
            receive_count=1,
        )
        return self

    def service(
        self,
        gateway: Gateway | None = None,
        limiter: Limiter | None = None,
        campaigns: Campaigns | None = None,
        *,
        erased: bool = False,
    ) -> DeliveryService:
        async def open_personal(job: SendJob) -> dict[str, Any] | None:
            return None if erased else {"content": "Hi", "media": []}

        return DeliveryService(
            self.store,
            gateway or Gateway(),
            limiter or Limiter(),
            campaigns or Campaigns(),
            open_personal,
            max_receive_count=MAX_RECEIVES,
            retry_delays=DELAYS,
        )

    def events(self) -> list[str]:
        stream = self.store.log[-1].stream_id
        return [r.event_type for r in self.store.log if r.stream_id == stream]

    def receive(self, count: int) -> SendJob:
        return SendJob.from_body(self.job.body, receive_count=count)


@pytest.fixture
async def given(alice: CommandContext) -> Given:
    return await Given(alice).queued()


async def test_a_queued_message_is_sent_and_recorded_sent(given: Given) -> None:
    gateway = Gateway()
    delivered = await given.service(gateway).deliver(given.job)
    assert (delivered.happened, delivered.disposition) == ("sent", Disposition(True))
    assert given.events() == ["MessageQueued", "MessageSent"]
    assert [c.idempotency_key for c in gateway.calls] == [given.job.message_id]


async def test_a_message_sent_already_is_dropped_unsent(given: Given) -> None:
    await record_sent(given.job.message_id, "of-1", given.ctx, store=given.store)
    gateway = Gateway()
    delivered = await given.service(gateway).deliver(given.job)
    assert (delivered.happened, delivered.disposition) == ("duplicate", Disposition(True))
    assert gateway.calls == []
    assert given.events() == ["MessageQueued", "MessageSent"]


@pytest.mark.parametrize(
    ("status", "event"), [("paused", "MessageHeld"), ("cancelled", "MessageCancelled")]
)
async def test_a_stopped_campaigns_message_leaves_the_queue_unsent(
    alice: CommandContext, status: str, event: str
) -> None:
    given = await Given(alice).queued(campaign_id=9)
    gateway = Gateway()
    delivered = await given.service(gateway, campaigns=Campaigns(status)).deliver(given.job)
    assert delivered.disposition == Disposition(True)
    assert gateway.calls == []
    assert given.events() == ["MessageQueued", event]


async def test_a_campaign_paused_while_the_token_was_awaited_is_seen_before_the_platform(
    alice: CommandContext,
) -> None:
    given = await Given(alice).queued(campaign_id=9)
    gateway = Gateway()
    service = given.service(gateway, campaigns=Campaigns(None, "paused"))
    delivered = await service.deliver(given.job)
    assert delivered.happened == "held"
    assert delivered.token_at is not None
    assert gateway.calls == []


async def test_an_erased_recipients_message_is_recorded_failed(given: Given) -> None:
    gateway = Gateway()
    delivered = await given.service(gateway, erased=True).deliver(given.job)
    assert (delivered.happened, delivered.failure) == ("erased", "recipient was erased")
    assert delivered.disposition == Disposition(True)
    assert gateway.calls == []
    assert given.events() == ["MessageQueued", "MessageFailed"]


async def test_a_timeout_on_the_last_receive_is_asked_again_and_sent_once(given: Given) -> None:
    gateway = Gateway([TIMEOUT, SENT])
    delivered = await given.service(gateway).deliver(given.receive(MAX_RECEIVES))
    assert delivered.happened == "sent"
    assert len(gateway.calls) == 2
    assert given.events() == ["MessageQueued", "MessageSent"]


async def test_a_timeout_before_the_last_receive_is_a_failed_try_redelivered_later(
    given: Given,
) -> None:
    gateway = Gateway([TIMEOUT])
    delivered = await given.service(gateway).deliver(given.receive(2))
    assert (delivered.happened, delivered.disposition) == ("retrying", Disposition(False, 2.0))
    assert len(gateway.calls) == 1
    assert given.events() == ["MessageQueued", "MessageAttemptFailed"]


async def test_no_limiter_defers_the_record_untried(given: Given) -> None:
    gateway = Gateway()
    delivered = await given.service(gateway, Limiter(away=True)).deliver(given.job)
    assert delivered.happened == "limiter_away"
    assert delivered.disposition.deferred
    assert delivered.limiter_error == "Redis is gone"
    assert gateway.calls == []
    assert given.events() == ["MessageQueued"]


async def test_a_record_past_its_last_receive_is_recorded_failed_once(given: Given) -> None:
    service = given.service()
    first = await service.deliver(given.receive(MAX_RECEIVES + 1))
    again = await service.deliver(given.receive(MAX_RECEIVES + 2))
    assert (first.happened, first.failure) == ("gave_up", "gave up after 3 tries")
    assert (again.happened, again.failure) == ("gave_up", None)
    assert not first.disposition.done
    assert given.events() == ["MessageQueued", "MessageFailed"]


async def test_a_dead_letter_without_an_outcome_is_recorded_failed(given: Given) -> None:
    service = given.service()
    assert await service.settle_dead_letter(given.job.message_id, given.ctx.tenant, 3)
    assert not await service.settle_dead_letter(given.job.message_id, given.ctx.tenant, 3)
    assert given.events() == ["MessageQueued", "MessageFailed"]
