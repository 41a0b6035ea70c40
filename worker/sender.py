"""The sender (the reference's Lambda huntaze-rate-limiter): queue records in, messages on
OnlyFans out, at the pace the platform allows, never twice.

One function, ``Sender.handle``, takes a batch of records and returns the ones to leave on the
queue (SQS's partial batch response). It serves the AWS Lambda handler (``lambda_handler``,
SQS event source with ReportBatchItemFailures) and the long-running poller (``run_sender``,
`crm worker sender`) alike. For each record:

1. drop it if its message was already sent (a redelivery, a relay's re-send);
2. take a rate-limit token for the creator account, waiting briefly if none is free (the
   limiter's time of the grant goes on the record's outcome line as ``token_at``); a
   campaign message is looked at before and again after it: one whose campaign was paused
   or cancelled (as the event store has it, at most ``campaign_status_ttl`` ago) is held or
   cancelled instead of sent;
3. call the gateway with the message id as Idempotency-Key;
4. record the outcome: sent; failed for a permanent error; for a retryable one, record the
   failed try and leave the record to redeliver after the next retry delay (the guide's 1 s,
   2 s, 4 s: ``SENDER_RETRY_DELAYS``), and on its last receive record it failed and let the
   queue dead-letter it. Each of these is one of the message's ``attempts``.

Only a real try at the platform counts towards that last receive. A record that found no
token free within ``MAX_TOKEN_WAIT``, or no limiter at all (its Redis away), was not tried: it
goes back with ``MessageQueue.defer``, which takes its receive back. While the limiter is away
the poller takes nothing from the queue (it cannot tell how fast an account may send, and a
limit per process would multiply by the number of processes): it asks the limiter again, a
little less often each time, and resumes when it answers.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import math
import os
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import msgspec
import structlog

from adapters import bootstrap, metrics, tracing
from adapters.bootstrap import Container
from adapters.config import DEFAULT_RETRY_DELAYS, Settings
from adapters.observability import configure_logging
from adapters.onlyfans.client import OnlyFansClient
from adapters.postgres.personal_data import PersonalDataCodec
from adapters.postgres.subject_keys import SubjectErased
from adapters.redis import rate_limiter_from
from application.campaign_fan_out import campaign_stopped, cancel_message, hold_message
from application.context import CommandContext
from application.message_streams import load_message
from application.messages import record_attempt_failed, record_failed, record_sent_on
from application.ports import EventStore
from application.queue import MAX_DEFER, QUEUES, MessageQueue, QueueName, ReceivedMessage
from application.sending import (
    LimiterUnavailable,
    OnlyFansGateway,
    PlatformMessage,
    RateLimiter,
    TokenAnswer,
)
from domain.fan import fan_stream_id
from domain.message import Message

log = structlog.get_logger(__name__)

# A token that frees up within this wait is waited for, holding the record; a longer wait
# hands the record back to the queue for that long.
MAX_TOKEN_WAIT = 5.0
# How often the poller looks at the dead-letter queues, and how long it then hides a dead
# letter it has looked at.
_DEAD_LETTER_SWEEP = 10.0
_DEAD_LETTER_HOLD = 3600.0
# With the limiter away: how long a record in hand goes back for, and the longest pause
# between two questions to the limiter.
LIMITER_AWAY_DEFER = 5.0
_LIMITER_PROBE_MAX = 5.0


class Record(msgspec.Struct, frozen=True, kw_only=True):
    """A queue record, whether from a Lambda event or from a receive."""

    record_id: str  # what a partial batch response names
    queue: str
    body: str
    receive_count: int
    receipt: str
    # The message attributes: `traceparent` continues the trace of the message's command.
    attributes: dict[str, str] = {}


CampaignStatus = Callable[[int], Awaitable[str | None]]


class CachedCampaignStatus:
    """A campaign's status, asked at most once per ``ttl`` seconds by this process: the sender
    asks for every campaign message, twice.

    An answer is dated from the moment its question was sent (not answered), so none is used
    more than ``ttl`` after a moment it may reflect: a pause committed before that moment is
    seen by every look after it plus ``ttl``. Looks at a campaign whose answer is being asked
    wait for that one question rather than each send their own."""

    def __init__(self, read: CampaignStatus, ttl: float) -> None:
        self._read = read
        self._ttl = ttl
        self._known: dict[int, tuple[float, str | None]] = {}
        self._asking: dict[int, asyncio.Task[str | None]] = {}

    async def __call__(self, campaign_id: int) -> str | None:
        now = time.monotonic()
        known = self._known.get(campaign_id)
        if known is not None and now - known[0] < self._ttl:
            return known[1]
        asking = self._asking.get(campaign_id)
        if asking is None:
            asking = asyncio.ensure_future(self._ask(campaign_id, now))
            self._asking[campaign_id] = asking
        # Shielded: one looker cancelled (its batch's timeout) leaves the question to the rest.
        return await asyncio.shield(asking)

    async def _ask(self, campaign_id: int, asked_at: float) -> str | None:
        try:
            status = await self._read(campaign_id)
        finally:
            self._asking.pop(campaign_id, None)
        if len(self._known) > 10_000:
            self._known.clear()
        self._known[campaign_id] = (asked_at, status)
        return status


# Nothing more to send: sent or read already (a redelivery, a relay's re-send); held (its
# campaign is paused, and the campaign worker will release it with a record of its own); or
# cancelled, never to be sent.
_SETTLED = frozenset({"sent", "read", "held", "cancelled"})


class Outcome(msgspec.Struct, frozen=True):
    done: bool  # True: delete it from the queue; False: leave it for redelivery
    redeliver_after: float | None = None
    # Not tried (no token, no limiter): back on the queue after redeliver_after, its receive
    # taken back, so that waiting never counts towards the dead-letter queue.
    deferred: bool = False


class Sender:
    def __init__(
        self,
        store: EventStore,
        personal: PersonalDataCodec,
        conn_source: Any,
        gateway: OnlyFansGateway,
        limiter: RateLimiter,
        *,
        max_receive_count: int,
        retry_delays: Sequence[float] = DEFAULT_RETRY_DELAYS,
        campaign_status: CampaignStatus | None = None,
        campaign_status_ttl: float = 0.25,
    ) -> None:
        self.store = store
        self.personal = personal
        self.conn_source = conn_source  # a pool: where data keys are read from
        self.gateway = gateway
        self.limiter = limiter
        self.max_receive_count = max_receive_count
        if not retry_delays:
            raise ValueError("at least one retry delay")
        self.retry_delays = tuple(retry_delays)
        # Asked of the event store (see campaign_stopped), not of the campaigns view.
        self.campaign_status = campaign_status or CachedCampaignStatus(
            functools.partial(campaign_stopped, store), campaign_status_ttl
        )
        # Why the limiter did not answer, while it does not; None while it does.
        self.limiter_away: str | None = None

    async def handle(self, records: Sequence[Record]) -> dict[str, Outcome]:
        """Process a batch concurrently; one outcome per record id."""
        outcomes = await asyncio.gather(*(self._one(record) for record in records))
        return {
            record.record_id: outcome for record, outcome in zip(records, outcomes, strict=True)
        }

    async def _one(self, record: Record) -> Outcome:
        started = time.perf_counter()
        with tracing.consuming(
            f"send {record.queue}",
            record.attributes,
            **{"messaging.message.id": record.record_id, "receive_count": record.receive_count},
        ) as span:
            try:
                outcome = await self._process(record)
            except Exception as error:
                # A bug or an outage of our own (database): the record comes back later.
                log.exception("sender record failed", record_id=record.record_id)
                tracing.failed(span, f"{type(error).__name__}: {error}")
                return Outcome(False, self._backoff(record))
            finally:
                metrics.processing_time((time.perf_counter() - started) * 1000)
            span.set_attribute("done", outcome.done)
            return outcome

    async def _process(self, record: Record) -> Outcome:
        body = msgspec.json.decode(record.body)
        message_id = str(body["messageId"])
        ctx = CommandContext(
            tenant=str(body["tenant"]),
            actor="sender",
            correlation_id=str(body.get("correlationId") or message_id),
        )
        about = {
            "message_id": message_id,
            "tenant": ctx.tenant,
            "recipient_id": body.get("recipientId"),
        }
        message = await self._message(message_id, ctx.tenant)
        if message.status in _SETTLED:
            log.info("duplicate dropped", **about)
            return Outcome(True)
        if record.receive_count > self.max_receive_count:
            # A deferred copy (SQS) delivered past its last counted receive, as only Lambda
            # gets them (a receive dead-letters them): that receive had the last try.
            if message.status != "failed":
                reason = f"gave up after {self.max_receive_count} tries"
                await self._fail(message_id, reason, ctx, about)
            return Outcome(False, self._backoff(record))
        campaign_id = None if body.get("campaignId") is None else int(body["campaignId"])
        # A first look before the token, so that a stopped campaign's backlog spends none.
        if campaign_id is not None and await self._campaign_stopped(
            message_id, campaign_id, ctx, about
        ):
            return Outcome(True)
        try:
            personal = await self.personal.open_body(
                self.conn_source, body, fan_stream_id(int(body["recipientId"]))
            )
        except SubjectErased:
            await self._fail(message_id, "recipient was erased", ctx, about)
            return Outcome(True)

        try:
            token = await self._token(ctx.tenant)
        except LimiterUnavailable as error:
            self._limiter_is_away(str(error))
            return Outcome(False, LIMITER_AWAY_DEFER, deferred=True)
        if not token.granted:
            return Outcome(False, token.wait, deferred=True)
        if token.at is not None:
            # The limiter's time of the grant, on every outcome line from here on: the one
            # record of when this send was allowed that every process's logs agree on (the
            # platform's arrival times add the network's jitter to it).
            about = {**about, "token_at": token.at.isoformat(timespec="microseconds")}
        # The last look, right before the platform: the wait for the token may have lasted
        # seconds, and the campaign may have been paused or cancelled meanwhile.
        if campaign_id is not None and await self._campaign_stopped(
            message_id, campaign_id, ctx, about
        ):
            return Outcome(True)

        platform_message = PlatformMessage(
            account=ctx.tenant,
            recipient=str(body["recipientId"]),
            text=personal.get("content") or "",
            price_cents=int(body.get("priceCents") or 0),
            media_urls=tuple(m["url"] for m in personal.get("media") or ()),
            idempotency_key=message_id,
        )
        result = await self.gateway.send_message(platform_message)
        last_receive = record.receive_count >= self.max_receive_count
        if last_receive and result.outcome == "retryable" and result.ambiguous:
            # Before calling it failed: the message may have gone out. Asking again with the
            # same key answers the first delivery's result, or sends it now, never twice.
            result = await self.gateway.send_message(platform_message)
        if result.outcome == "sent":
            await record_sent_on(message, result.platform_message_id, ctx, store=self.store)
            metrics.message_processed(ctx.tenant, "sent")
            log.info("message sent", **about, platform_message_id=result.platform_message_id)
            return Outcome(True)
        if result.outcome == "permanent":
            reason = result.reason or "refused by the platform"
            await self._fail(message_id, reason, ctx, about, attempted=True)
            return Outcome(True)
        if result.outcome == "rate_limited":
            # The limiter should prevent this; the platform's word wins. A try all the same.
            log.warning("platform rate limited", **about, retry_after=result.retry_after)
            await record_attempt_failed(
                message_id, "rate limited by the platform", ctx, store=self.store
            )
            return Outcome(False, result.retry_after or self.retry_delays[0])
        # Retryable: redeliver later; on the last receive the queue dead-letters it next.
        if last_receive:
            await self._fail(message_id, f"gave up: {result.reason}", ctx, about, attempted=True)
        else:
            reason = result.reason or "retryable error"
            await record_attempt_failed(message_id, reason, ctx, store=self.store)
        log.warning(
            "send failed, will retry",
            **about,
            reason=result.reason,
            receive_count=record.receive_count,
        )
        return Outcome(False, self._backoff(record))

    async def _settled(self, message_id: str, tenant: str, *, include_failed: bool) -> bool:
        status = (await self._message(message_id, tenant)).status
        return status in _SETTLED or (include_failed and status == "failed")

    async def _message(self, message_id: str, tenant: str) -> Message:
        message, _ = await load_message(self.store, message_id, tenant=tenant)
        assert isinstance(message, Message)
        return message

    async def _campaign_stopped(
        self, message_id: str, campaign_id: int, ctx: CommandContext, about: dict[str, Any]
    ) -> bool:
        """A paused campaign's message is held (the campaign worker releases it on resume), a
        cancelled one's is cancelled: either way it leaves the queue unsent."""
        status = await self.campaign_status(campaign_id)
        if status == "paused":
            await hold_message(message_id, "campaign paused", ctx, store=self.store)
            log.info("message held", **about, campaign_id=campaign_id)
            return True
        if status == "cancelled":
            await cancel_message(message_id, "campaign cancelled", ctx, store=self.store)
            log.info("message cancelled", **about, campaign_id=campaign_id)
            return True
        return False

    async def _token(self, account: str) -> TokenAnswer:
        """The grant once a token is taken; else the refusal whose wait is too long to hold
        the record for (it goes back on the queue for that long)."""
        deadline = time.monotonic() + MAX_TOKEN_WAIT
        while True:
            answer = await self.limiter.try_acquire(account)
            if answer.granted or time.monotonic() + answer.wait > deadline:
                return answer
            await asyncio.sleep(answer.wait)

    def _limiter_is_away(self, reason: str) -> None:
        if self.limiter_away is None:
            log.error("rate limiter away: sending paused", error=reason)
        self.limiter_away = reason

    async def wait_for_limiter(self, stop: asyncio.Event) -> None:
        """Return at once if the limiter answered last time; else ask it again, a little less
        often each time, until it answers (or ``stop``)."""
        pause = 0.25
        while self.limiter_away is not None and not stop.is_set():
            try:
                await self.limiter.check()
            except LimiterUnavailable as error:
                self.limiter_away = str(error)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), pause)
                pause = min(pause * 2, _LIMITER_PROBE_MAX)
                continue
            if self.limiter_away is not None:
                log.info("rate limiter back: sending resumes")
            self.limiter_away = None

    async def _fail(
        self,
        message_id: str,
        reason: str,
        ctx: CommandContext,
        about: dict[str, Any],
        *,
        attempted: bool = False,
    ) -> None:
        await record_failed(message_id, reason, ctx, store=self.store, attempted=attempted)
        metrics.message_failed(ctx.tenant, "sender")
        metrics.message_processed(ctx.tenant, "failed")
        log.error("message failed", **about, error=reason)

    async def settle_dead_letters(self, queue: MessageQueue) -> int:
        """Dead letters whose message shows no outcome (its last sender died before recording
        one) are recorded failed, so a person sees them and can retry; they stay in the DLQ
        for inspection, out of the way for an hour. Returns how many it recorded."""
        recorded = 0
        for name in QUEUES:
            for dead in await queue.dead_letters(name):
                body = msgspec.json.decode(dead.body)
                message_id = str(body["messageId"])
                tenant = str(body["tenant"])
                if not await self._settled(message_id, tenant, include_failed=True):
                    ctx = CommandContext(tenant=tenant, actor="sender", correlation_id=message_id)
                    about = {
                        "message_id": message_id,
                        "tenant": ctx.tenant,
                        "recipient_id": body.get("recipientId"),
                    }
                    reason = f"dead-lettered after {dead.receive_count} receives"
                    await self._fail(message_id, reason, ctx, about)
                    recorded += 1
                await queue.change_visibility(name, dead.receipt, _DEAD_LETTER_HOLD)
        return recorded

    def _backoff(self, record: Record) -> float:
        """How long the record stays hidden after its n-th receive failed: the n-th retry
        delay (the guide's 1 s, 2 s, 4 s); a queue allowing more receives than there are
        delays repeats the last one."""
        index = min(max(record.receive_count, 1), len(self.retry_delays)) - 1
        return self.retry_delays[index]


def received_from_record(record: Record) -> ReceivedMessage:
    return ReceivedMessage(
        message_id=record.record_id,
        receipt=record.receipt,
        body=record.body,
        attributes=record.attributes,
        receive_count=record.receive_count,
    )


def record_from_receive(queue: str, received: ReceivedMessage) -> Record:
    return Record(
        record_id=received.message_id,
        queue=queue,
        body=received.body,
        receive_count=received.receive_count,
        receipt=received.receipt,
        attributes=received.attributes,
    )


def record_from_lambda(item: dict[str, Any]) -> Record:
    """A record of an SQS event as Lambda delivers it. A deferred copy's receives before it
    (adapters/sqs.py) add to its own count, as the SQS adapter's receive adds them."""
    from adapters.sqs import PRIOR_RECEIVES

    arn = str(item.get("eventSourceARN", ""))
    attributes = {
        name: str(value["stringValue"])
        for name, value in item.get("messageAttributes", {}).items()
        if "stringValue" in value
    }
    prior = int(attributes.pop(PRIOR_RECEIVES, "0"))
    return Record(
        record_id=str(item["messageId"]),
        queue="high" if arn.endswith("-high") else "normal",
        body=str(item["body"]),
        receive_count=prior + int(item.get("attributes", {}).get("ApproximateReceiveCount", "1")),
        receipt=str(item["receiptHandle"]),
        attributes=attributes,
    )


async def settle(
    queue: MessageQueue, records: Sequence[Record], outcomes: dict[str, Outcome]
) -> None:
    """Delete what is done; push back what should wait, for as long as it should (what was
    not tried, without counting its receive)."""
    by_queue: dict[str, list[str]] = {}
    for record in records:
        outcome = outcomes[record.record_id]
        if outcome.done:
            by_queue.setdefault(record.queue, []).append(record.receipt)
        elif outcome.deferred:
            await queue.defer(
                _queue(record.queue),
                received_from_record(record),
                _defer_delay(outcome.redeliver_after),
            )
        elif outcome.redeliver_after is not None:
            await queue.change_visibility(
                _queue(record.queue), record.receipt, math.ceil(outcome.redeliver_after)
            )
    for name, receipts in by_queue.items():
        await queue.delete(_queue(name), receipts)


async def run_sender(
    sender: Sender, queue: MessageQueue, stop: asyncio.Event, *, concurrency: int = 4
) -> None:
    """The poller: ``concurrency`` loops, each taking the high-priority queue first, and a
    sweep of the dead-letter queues."""
    await asyncio.gather(
        *(_poll(sender, queue, stop) for _ in range(concurrency)),
        _sweep_dead_letters(sender, queue, stop),
    )


async def _sweep_dead_letters(sender: Sender, queue: MessageQueue, stop: asyncio.Event) -> None:
    while not stop.is_set():
        try:
            await sender.settle_dead_letters(queue)
        except Exception:
            log.exception("dead-letter sweep failed")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), _DEAD_LETTER_SWEEP)


async def _poll(sender: Sender, queue: MessageQueue, stop: asyncio.Event) -> None:
    while not stop.is_set():
        try:
            # Nothing is taken from the queue while the limiter is away.
            await sender.wait_for_limiter(stop)
            if stop.is_set():
                return
            records = [record_from_receive("high", m) for m in await queue.receive("high")]
            if not records:
                # A short wait on the normal queue: a reply arriving meanwhile waits at most
                # this long before the next look at the high-priority queue.
                received = await queue.receive("normal", wait_seconds=0.5)
                records = [record_from_receive("normal", m) for m in received]
            if records:
                await settle(queue, records, await sender.handle(records))
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("sender poll failed")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 1.0)


def _queue(name: str) -> QueueName:
    return "high" if name == "high" else "normal"


def _defer_delay(seconds: float | None) -> float:
    return min(float(math.ceil(seconds or 0)), float(MAX_DEFER))


async def build_sender(container: Container) -> tuple[Sender, Callable[[], Awaitable[None]]]:
    """The sender on the container's adapters, with its gateway and rate limiter."""
    settings = container.settings
    gateway = OnlyFansClient(
        settings.onlyfans_api_url, settings.onlyfans_api_key, timeout=settings.onlyfans_timeout
    )
    sender = Sender(
        container.events,
        container.personal,
        container.pool,
        gateway,
        rate_limiter_from(settings, container.redis),
        max_receive_count=settings.max_receive_count,
        retry_delays=settings.retry_delays,
        campaign_status_ttl=settings.campaign_status_ttl,
    )
    return sender, gateway.aclose


async def run_sender_worker(container: Container, stop: asyncio.Event) -> None:
    """`crm worker sender`: the long-running poller."""
    sender, close = await build_sender(container)
    log.info("sender started", queue=container.settings.queue_backend)
    try:
        await run_sender(sender, container.queue, stop)
    finally:
        await close()


# The Lambda runtime keeps the process (and this loop, pool and clients) between invocations;
# asyncio.run would make a new loop each time, which the pool cannot outlive.
_lambda: dict[str, Any] = {}


def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """AWS Lambda entry (SQS event source with ReportBatchItemFailures)."""
    loop = _lambda.get("loop")
    if loop is None:
        loop = _lambda["loop"] = asyncio.new_event_loop()
    return loop.run_until_complete(_handle_lambda_event(event))


async def _handle_lambda_event(event: dict[str, Any]) -> dict[str, Any]:
    if "sender" not in _lambda:
        configure_logging(os.environ.get("LOG_LEVEL", "INFO"))
        container = await bootstrap.build(Settings.from_env(queue_backend="sqs"))
        _lambda["container"] = container
        _lambda["sender"], _ = await build_sender(container)
    sender: Sender = _lambda["sender"]
    container = _lambda["container"]
    records = [record_from_lambda(item) for item in event.get("Records", [])]
    outcomes = await sender.handle(records)
    failures = []
    for record in records:
        outcome = outcomes[record.record_id]
        if outcome.done:
            continue  # Lambda deletes what the response does not name
        if outcome.deferred:
            try:
                await container.queue.defer(
                    _queue(record.queue),
                    received_from_record(record),
                    _defer_delay(outcome.redeliver_after),
                )
                continue  # a delayed copy is on the queue; this one may go
            except Exception:
                log.exception("defer failed", record_id=record.record_id)
        if outcome.redeliver_after is not None:
            await container.queue.change_visibility(
                _queue(record.queue), record.receipt, math.ceil(outcome.redeliver_after)
            )
        failures.append({"itemIdentifier": record.record_id})
    tracing.force_flush()
    return {"batchItemFailures": failures}
