"""The sender's decisions against real Postgres and the Postgres queue, with a scripted
gateway and limiter (the real ones are tested on their own and end to end)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import msgspec
import pytest
from structlog.testing import capture_logs

from adapters import bootstrap
from application.context import CommandContext
from application.fans import CreateFan, EraseFan, create_fan, erase_fan
from application.message_streams import load_message
from application.messages import QueueMessage, queue_message
from application.sending import LimiterUnavailable, PlatformMessage, PlatformSendResult, TokenAnswer
from domain.message import Message, message_stream_id
from tests.support.settings import settings_for
from worker.relay import Relay
from worker.sender import Record, Sender, record_from_receive, settle

CTX = CommandContext(tenant="creator-7", actor="test", correlation_id="c-7")
GRANTED_AT = datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=UTC)  # the scripted limiter's clock


@dataclass
class ScriptedGateway:
    results: list[PlatformSendResult] = field(default_factory=list)
    calls: list[PlatformMessage] = field(default_factory=list)

    async def send_message(self, message: PlatformMessage) -> PlatformSendResult:
        self.calls.append(message)
        if self.results:
            return self.results.pop(0)
        return PlatformSendResult(outcome="sent", platform_message_id=f"of-{len(self.calls)}")


@dataclass
class ScriptedLimiter:
    waits: list[float] = field(default_factory=list)
    away: str | None = None  # the limiter's Redis is away, for this reason
    checks: int = 0
    asked_twice: asyncio.Event = field(default_factory=asyncio.Event)

    async def try_acquire(self, account: str) -> TokenAnswer:
        if self.away:
            raise LimiterUnavailable(self.away)
        return TokenAnswer(wait=self.waits.pop(0) if self.waits else 0.0, at=GRANTED_AT)

    async def check(self) -> None:
        self.checks += 1
        if self.checks >= 2:
            self.asked_twice.set()
        if self.away:
            raise LimiterUnavailable(self.away)


@pytest.fixture
async def fresh(fresh_database_url: str) -> AsyncIterator[bootstrap.Container]:
    container = await bootstrap.build(settings_for(fresh_database_url))
    try:
        yield container
    finally:
        await container.close()


def sender_for(
    container: bootstrap.Container, gateway: ScriptedGateway, limiter: ScriptedLimiter
) -> Sender:
    return Sender(
        container.events,
        container.personal,
        container.pool,
        gateway,
        limiter,
        max_receive_count=3,
    )


async def queued_record(container: bootstrap.Container, **message: object) -> Record:
    fan = await create_fan(CreateFan(name="Fan"), CTX, store=container.events, ids=container.ids)
    fields: dict[str, object] = {"content": "Hello there", "priority": 9} | message
    await queue_message(
        QueueMessage(recipient_id=fan.fan.fan_id, **fields),  # type: ignore[arg-type]
        CTX,
        store=container.events,
        ids=container.ids,
    )
    await Relay(container.outbox, container.queue, container.events).run_once()
    [received] = await container.queue.receive("high", visibility_timeout=30)
    return record_from_receive("high", received)


async def status_of(container: bootstrap.Container, record: Record) -> list[str]:
    message_id = msgspec.json.decode(record.body)["messageId"]
    return [
        r.event_type for r in await container.events.load(message_stream_id(CTX.tenant, message_id))
    ]


async def message_of(container: bootstrap.Container, record: Record) -> Message:
    message_id = msgspec.json.decode(record.body)["messageId"]
    message, _ = await load_message(container.events, message_id, tenant=CTX.tenant)
    assert isinstance(message, Message)
    return message


async def test_a_record_is_sent_once_with_its_content_and_its_id_as_idempotency_key(
    fresh: bootstrap.Container,
) -> None:
    gateway = ScriptedGateway()
    sender = sender_for(fresh, gateway, ScriptedLimiter())
    record = await queued_record(fresh, price_cents=500, media_urls=("https://cdn.example/a.jpg",))
    outcomes = await sender.handle([record])
    assert outcomes[record.record_id].done
    [call] = gateway.calls
    assert (call.text, call.price_cents, call.media_urls) == (
        "Hello there",
        500,
        ("https://cdn.example/a.jpg",),
    )
    assert call.idempotency_key in record.body
    assert (await status_of(fresh, record))[-1] == "MessageSent"
    await settle(fresh.queue, [record], outcomes)
    assert (await fresh.queue.stats("high")).in_flight == 0

    # Delivered again (a redelivery, a relay's re-send): dropped, the platform not called.
    again = await sender.handle([record])
    assert again[record.record_id].done
    assert len(gateway.calls) == 1


async def test_a_permanent_refusal_fails_the_message_and_removes_the_record(
    fresh: bootstrap.Container,
) -> None:
    gateway = ScriptedGateway([PlatformSendResult(outcome="permanent", reason="404 fan not found")])
    record = await queued_record(fresh)
    outcomes = await sender_for(fresh, gateway, ScriptedLimiter()).handle([record])
    assert outcomes[record.record_id].done
    assert (await status_of(fresh, record))[-1] == "MessageFailed"


async def test_a_retryable_error_redelivers_later_and_the_last_receive_fails_it(
    fresh: bootstrap.Container,
) -> None:
    gateway = ScriptedGateway([PlatformSendResult(outcome="retryable", reason="503")] * 2)
    sender = sender_for(fresh, gateway, ScriptedLimiter())
    record = await queued_record(fresh)
    first = (await sender.handle([record]))[record.record_id]
    assert (first.done, first.redeliver_after) == (False, 1.0)
    assert (await status_of(fresh, record))[-1] == "MessageAttemptFailed"  # to be tried again

    last = Record(
        record_id=record.record_id,
        queue=record.queue,
        body=record.body,
        receive_count=3,
        receipt=record.receipt,
    )
    outcome = (await sender.handle([last]))[last.record_id]
    assert outcome.done is False, "left for the queue to dead-letter"
    assert outcome.redeliver_after == 4.0
    assert (await status_of(fresh, record))[-1] == "MessageFailed"


async def test_no_token_within_the_wait_defers_the_record_without_calling_the_platform(
    fresh: bootstrap.Container,
) -> None:
    gateway = ScriptedGateway()
    record = await queued_record(fresh)
    outcome = (await sender_for(fresh, gateway, ScriptedLimiter([30.0])).handle([record]))[
        record.record_id
    ]
    assert (outcome.done, outcome.redeliver_after, outcome.deferred) == (False, 30.0, True)
    assert gateway.calls == []


async def test_waiting_for_a_token_never_brings_a_record_nearer_its_dead_letter_queue(
    fresh: bootstrap.Container,
) -> None:
    # The 1,000-recipient campaign at 5/s: records waiting for a token reached
    # receive 5 of 5. Here: many more waits than the queue's receives, and no receive counted.
    gateway = ScriptedGateway()
    sender = sender_for(fresh, gateway, ScriptedLimiter([30.0] * 10))
    record = await queued_record(fresh)
    for _ in range(10):
        assert record.receive_count == 1
        await settle(fresh.queue, [record], await sender.handle([record]))
        await fresh.pool.execute("UPDATE queue_messages SET visible_at = now()")
        [received] = await fresh.queue.receive("high", visibility_timeout=30)
        record = record_from_receive("high", received)
    assert (await fresh.queue.stats("high")).dead_letters == 0
    assert gateway.calls == []
    outcomes = await sender.handle([record])
    assert outcomes[record.record_id].done
    assert (await status_of(fresh, record))[-1] == "MessageSent"
    assert (await message_of(fresh, record)).attempts == 1, "waiting is never an attempt"


async def test_without_its_limiter_the_sender_defers_what_it_holds_and_pauses(
    fresh: bootstrap.Container,
) -> None:
    gateway = ScriptedGateway()
    limiter = ScriptedLimiter(away="ConnectionError: Redis is gone")
    sender = sender_for(fresh, gateway, limiter)
    record = await queued_record(fresh)

    outcomes = await sender.handle([record])

    outcome = outcomes[record.record_id]
    assert (outcome.done, outcome.deferred) == (False, True)
    assert gateway.calls == []
    assert sender.limiter_away == "ConnectionError: Redis is gone"
    assert (await status_of(fresh, record))[-1] == "MessageDispatched"
    await settle(fresh.queue, [record], outcomes)
    await fresh.pool.execute("UPDATE queue_messages SET visible_at = now()")
    [again] = await fresh.queue.receive("high", visibility_timeout=30)
    assert again.receive_count == 1, "the receive without a limiter did not count"

    # Paused: it asks the limiter until it answers, then goes on.
    stop = asyncio.Event()
    waiting = asyncio.create_task(sender.wait_for_limiter(stop))
    await asyncio.wait_for(limiter.asked_twice.wait(), 10)
    assert not waiting.done()
    limiter.away = None
    async with asyncio.timeout(10):
        await waiting
    assert sender.limiter_away is None


async def test_a_short_wait_for_a_token_is_waited_out(fresh: bootstrap.Container) -> None:
    gateway = ScriptedGateway()
    record = await queued_record(fresh)
    async with asyncio.timeout(5):
        outcome = (await sender_for(fresh, gateway, ScriptedLimiter([0.2, 0.1])).handle([record]))[
            record.record_id
        ]
    assert outcome.done
    assert len(gateway.calls) == 1


async def test_every_outcome_line_of_a_record_that_took_a_token_names_the_limiters_time_of_it(
    fresh: bootstrap.Container,
) -> None:
    throttled = PlatformSendResult(outcome="rate_limited", retry_after=1.0)
    refused = PlatformSendResult(outcome="permanent", reason="403 blocked")
    gateway = ScriptedGateway([throttled, refused])
    sender = sender_for(fresh, gateway, ScriptedLimiter())
    records = [await queued_record(fresh) for _ in range(2)]
    with capture_logs() as logged:
        await sender.handle(records[:1])
        await sender.handle(records)  # the 429'd one again, now sent; the other refused
    outcome_lines = {"platform rate limited", "message sent", "message failed"}
    lines = [line for line in logged if line["event"] in outcome_lines]
    assert sorted(line["event"] for line in lines) == sorted(outcome_lines)
    assert {line["token_at"] for line in lines} == {"2026-01-02T03:04:05.678901+00:00"}


async def test_a_message_to_an_erased_fan_is_failed_not_sent(fresh: bootstrap.Container) -> None:
    gateway = ScriptedGateway()
    record = await queued_record(fresh)
    fan_id = msgspec.json.decode(record.body)["recipientId"]
    await erase_fan(EraseFan(fan_id=fan_id), CTX, store=fresh.events)
    outcome = (await sender_for(fresh, gateway, ScriptedLimiter()).handle([record]))[
        record.record_id
    ]
    assert outcome.done
    assert gateway.calls == []
    assert (await status_of(fresh, record))[-1] == "MessageFailed"


async def test_an_ambiguous_timeout_on_the_last_receive_asks_again_before_failing(
    fresh: bootstrap.Container,
) -> None:
    timeout = PlatformSendResult(outcome="retryable", reason="timeout", ambiguous=True)
    gateway = ScriptedGateway([timeout])  # then "sent": the first try had gone out
    record = await queued_record(fresh)
    last = msgspec.structs.replace(record, receive_count=3)
    outcome = (await sender_for(fresh, gateway, ScriptedLimiter()).handle([last]))[last.record_id]
    assert outcome.done
    assert [c.idempotency_key for c in gateway.calls] == [gateway.calls[0].idempotency_key] * 2
    assert (await status_of(fresh, record))[-1] == "MessageSent"


async def test_a_dead_letter_without_an_outcome_is_recorded_failed_and_can_be_retried(
    fresh: bootstrap.Container,
) -> None:
    from application.messages import MessageCommand, retry_message

    record = await queued_record(fresh)
    # Its senders all died before recording anything: received until the queue gives up.
    await fresh.queue.change_visibility("high", record.receipt, 0)
    for _ in range(fresh.settings.max_receive_count):
        for received in await fresh.queue.receive("high", visibility_timeout=30):
            await fresh.queue.change_visibility("high", received.receipt, 0)
    assert await fresh.queue.receive("high") == []
    assert (await fresh.queue.stats("high")).dead_letters == 1
    assert (await status_of(fresh, record))[-1] == "MessageDispatched"

    sender = sender_for(fresh, ScriptedGateway(), ScriptedLimiter())
    assert await sender.settle_dead_letters(fresh.queue) == 1
    assert await sender.settle_dead_letters(fresh.queue) == 0, "held out of the way"
    assert (await status_of(fresh, record))[-1] == "MessageFailed"
    message_id = msgspec.json.decode(record.body)["messageId"]
    await retry_message(MessageCommand(message_id=message_id), CTX, store=fresh.events)
    assert (await status_of(fresh, record))[-1] == "MessageRequeued"


@dataclass
class VisibilityLog:
    """The queue, with every visibility change the sender asks for written down: the retry
    schedule is read from what was asked, never waited for."""

    queue: Any
    asked: list[float] = field(default_factory=list)

    async def change_visibility(self, queue: str, receipt: str, timeout: float) -> None:
        self.asked.append(timeout)
        await self.queue.change_visibility(queue, receipt, timeout)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.queue, name)


async def test_the_sender_retries_after_1_2_and_4_seconds_then_the_message_is_failed(
    fresh: bootstrap.Container,
) -> None:
    # The guide: try 1 at once, try 2 after 1 s, try 3 after 2 s, try 4 after 4 s, then failed.
    assert (fresh.settings.retry_delays, fresh.settings.max_receive_count) == ((1.0, 2.0, 4.0), 4)
    gateway = ScriptedGateway([PlatformSendResult(outcome="retryable", reason="503")] * 10)
    sender = Sender(
        fresh.events,
        fresh.personal,
        fresh.pool,
        gateway,
        ScriptedLimiter(),
        max_receive_count=fresh.settings.max_receive_count,
        retry_delays=fresh.settings.retry_delays,
    )
    queue = VisibilityLog(fresh.queue)
    record = await queued_record(fresh)
    for receive in range(1, 5):
        assert record.receive_count == receive
        await settle(queue, [record], await sender.handle([record]))  # type: ignore[arg-type]
        assert (await status_of(fresh, record))[-1] == (
            "MessageFailed" if receive == 4 else "MessageAttemptFailed"
        )
        await fresh.pool.execute("UPDATE queue_messages SET visible_at = now()")
        received = await fresh.queue.receive("high", visibility_timeout=30)
        if receive < 4:
            record = record_from_receive("high", received[0])
        else:
            assert received == [], "dead-lettered after its fourth try"
    assert queue.asked[:3] == [1, 2, 4]
    assert len(gateway.calls) == 4
    # Each try is recorded, and counted once: the message shows 4 attempts.
    assert (await status_of(fresh, record))[2:] == [
        "MessageAttemptFailed",
        "MessageAttemptFailed",
        "MessageAttemptFailed",
        "MessageFailed",
    ]
    assert (await message_of(fresh, record)).attempts == 4
    assert (await fresh.queue.stats("high")).dead_letters == 1


def test_the_retry_schedule_is_configurable_and_sets_the_tries() -> None:
    from adapters.config import Settings

    settings = Settings.from_env({"DATABASE_URL": "x", "SENDER_RETRY_DELAYS": "1, 3"})
    assert (settings.retry_delays, settings.max_receive_count) == ((1.0, 3.0), 3)
    pinned = Settings.from_env({"DATABASE_URL": "x", "SQS_MAX_RECEIVE_COUNT": "6"})
    assert (pinned.retry_delays, pinned.max_receive_count) == ((1.0, 2.0, 4.0), 6)
    with pytest.raises(SystemExit):
        Settings.from_env({"DATABASE_URL": "x", "SENDER_RETRY_DELAYS": "soon"})
