"""The sender (the reference's Lambda huntaze-rate-limiter): queue records in, messages on
OnlyFans out, at the pace the platform allows, never twice.

One function, ``Sender.handle``, takes a batch of records and returns what becomes of each
(its ``Disposition``: deleted, left to redeliver, or deferred: SQS's partial batch response).
It serves the AWS Lambda handler (``lambda_handler``, SQS event source with
ReportBatchItemFailures, worker/sender_lambda.py) and the long-running poller (``run_sender``,
`crm worker sender`)
alike. What it decides for each record is the application's (application/delivery.py, carried
out by application/delivery_service.py); this module turns records into jobs, and what a
delivery did into queue calls, logs and metrics. For each record:

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
token free within ``MAX_TOKEN_WAIT`` (application/delivery_service.py), or no limiter at all
(its Redis away), was not tried: it goes back with ``MessageQueue.defer``, which takes its
receive back. While the limiter is away
the poller takes nothing from the queue (it cannot tell how fast an account may send, and a
limit per process would multiply by the number of processes): it asks the limiter again, a
little less often each time, and resumes when it answers.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import math
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import msgspec
import structlog

from adapters import metrics, tracing
from adapters.bootstrap import Container
from adapters.config import DEFAULT_RETRY_DELAYS
from adapters.onlyfans.client import OnlyFansClient
from adapters.postgres.personal_data import PersonalDataCodec
from adapters.postgres.subject_keys import SubjectErased
from adapters.redis import fansly_rate_limiter_from, rate_limiter_from
from application.campaign_fan_out import campaign_stopped
from application.delivery import Delivered, Disposition, SendJob, backoff
from application.delivery_service import CampaignStatus, DeliveryService
from application.ports import EventStore
from application.queue import MAX_DEFER, QUEUES, MessageQueue, QueueName, ReceivedMessage
from application.sending import LimiterUnavailable, OnlyFansGateway, PlatformRoute, RateLimiter
from domain.fan import fan_stream_id

log = structlog.get_logger(__name__)

# How often the poller looks at the dead-letter queues, and how long it then hides a dead
# letter it has looked at.
_DEAD_LETTER_SWEEP = 10.0
_DEAD_LETTER_HOLD = 3600.0
# With the limiter away: the longest pause between two questions to the limiter.
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


class Sender:
    """Queue records in, deliveries (application/delivery_service.py) called, dispositions,
    logs and metrics out; and the poller's watch on the limiter."""

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
        other_platforms: dict[str, PlatformRoute] | None = None,
    ) -> None:
        self.personal = personal
        self.conn_source = conn_source  # a pool: where data keys are read from
        self.delivery = DeliveryService(
            store,
            gateway,
            limiter,
            # Asked of the event store (see campaign_stopped), not of the campaigns view.
            campaign_status
            or CachedCampaignStatus(
                functools.partial(campaign_stopped, store), campaign_status_ttl
            ),
            self._open_personal,
            max_receive_count=max_receive_count,
            retry_delays=retry_delays,
            other_platforms=other_platforms,
        )
        # Why the limiter did not answer, while it does not; None while it does.
        self.limiter_away: str | None = None

    # The ports, replaceable after construction (tests and benchmarks wrap them).
    @property
    def store(self) -> EventStore:
        return self.delivery.store

    @store.setter
    def store(self, store: EventStore) -> None:
        self.delivery.store = store

    @property
    def gateway(self) -> OnlyFansGateway:
        return self.delivery.gateway

    @gateway.setter
    def gateway(self, gateway: OnlyFansGateway) -> None:
        self.delivery.gateway = gateway

    @property
    def limiter(self) -> RateLimiter:
        return self.delivery.limiter

    @limiter.setter
    def limiter(self, limiter: RateLimiter) -> None:
        self.delivery.limiter = limiter

    async def handle(self, records: Sequence[Record]) -> dict[str, Disposition]:
        """Process a batch concurrently; one disposition per record id."""
        dispositions = await asyncio.gather(*(self._one(record) for record in records))
        return {
            record.record_id: disposition
            for record, disposition in zip(records, dispositions, strict=True)
        }

    async def _one(self, record: Record) -> Disposition:
        started = time.perf_counter()
        with tracing.consuming(
            f"send {record.queue}",
            record.attributes,
            **{"messaging.message.id": record.record_id, "receive_count": record.receive_count},
        ) as span:
            try:
                job = SendJob.from_body(msgspec.json.decode(record.body), record.receive_count)
                delivered = await self.delivery.deliver(job)
            except Exception as error:
                # A bug or an outage of our own (database): the record comes back later.
                log.exception("sender record failed", record_id=record.record_id)
                tracing.failed(span, f"{type(error).__name__}: {error}")
                return Disposition(False, self._backoff(record))
            finally:
                metrics.processing_time((time.perf_counter() - started) * 1000)
            self._report(job, delivered)
            span.set_attribute("done", delivered.disposition.done)
            return delivered.disposition

    async def _open_personal(self, job: SendJob) -> dict[str, Any] | None:
        try:
            return await self.personal.open_body(
                self.conn_source, job.body, fan_stream_id(job.recipient_id)
            )
        except SubjectErased:
            return None

    def _report(self, job: SendJob, delivered: Delivered) -> None:
        """The delivery's log lines and metrics."""
        about: dict[str, Any] = {
            "message_id": job.message_id,
            "tenant": job.tenant,
            "recipient_id": job.body.get("recipientId"),
            "platform": job.platform,
        }
        if delivered.token_at is not None:
            # The limiter's time of the grant, on every outcome line from here on: the one
            # record of when this send was allowed that every process's logs agree on (the
            # platform's arrival times add the network's jitter to it).
            about["token_at"] = delivered.token_at.isoformat(timespec="microseconds")
        result = delivered.result
        match delivered.happened:
            case "duplicate":
                log.info("duplicate dropped", **about)
            case "held":
                log.info("message held", **about, campaign_id=job.campaign_id)
            case "cancelled":
                log.info("message cancelled", **about, campaign_id=job.campaign_id)
            case "limiter_away":
                self._limiter_is_away(delivered.limiter_error or "limiter away")
            case "sent":
                metrics.message_processed(job.tenant, "sent", job.platform)
                assert result is not None
                log.info("message sent", **about, platform_message_id=result.platform_message_id)
            case "rate_limited":
                assert result is not None
                log.warning("platform rate limited", **about, retry_after=result.retry_after)
        if delivered.failure is not None:
            _failed(job.tenant, delivered.failure, about, job.platform)
        if delivered.happened in ("retrying", "failed"):
            assert result is not None
            log.warning(
                "send failed, will retry",
                **about,
                reason=result.reason,
                receive_count=job.receive_count,
            )

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

    async def settle_dead_letters(self, queue: MessageQueue) -> int:
        """Dead letters whose message shows no outcome (its last sender died before recording
        one) are recorded failed, so a person sees them and can retry; they stay in the DLQ
        for inspection, out of the way for an hour. Returns how many it recorded."""
        recorded = 0
        for name in QUEUES:
            for dead in await queue.dead_letters(name):
                body = msgspec.json.decode(dead.body)
                message_id, tenant = str(body["messageId"]), str(body["tenant"])
                if await self.delivery.settle_dead_letter(message_id, tenant, dead.receive_count):
                    platform = str(body.get("platform") or "onlyfans")
                    about = {
                        "message_id": message_id,
                        "tenant": tenant,
                        "recipient_id": body.get("recipientId"),
                        "platform": platform,
                    }
                    reason = f"dead-lettered after {dead.receive_count} receives"
                    _failed(tenant, reason, about, platform)
                    recorded += 1
                await queue.change_visibility(name, dead.receipt, _DEAD_LETTER_HOLD)
        return recorded

    def _backoff(self, record: Record) -> float:
        return backoff(record.receive_count, self.delivery.retry_delays)


def _failed(tenant: str, reason: str, about: dict[str, Any], platform: str) -> None:
    metrics.message_failed(tenant, "sender", platform)
    metrics.message_processed(tenant, "failed", platform)
    log.error("message failed", **about, error=reason)


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


async def settle(
    queue: MessageQueue, records: Sequence[Record], dispositions: dict[str, Disposition]
) -> None:
    """Delete what is done; push back what should wait, for as long as it should (what was
    not tried, without counting its receive)."""
    by_queue: dict[str, list[str]] = {}
    for record in records:
        disposition = dispositions[record.record_id]
        if disposition.done:
            by_queue.setdefault(record.queue, []).append(record.receipt)
        elif disposition.deferred:
            await queue.defer(
                _queue(record.queue),
                received_from_record(record),
                _defer_delay(disposition.redeliver_after),
            )
        elif disposition.redeliver_after is not None:
            await queue.change_visibility(
                _queue(record.queue), record.receipt, math.ceil(disposition.redeliver_after)
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
    others: dict[str, PlatformRoute] = {}
    closers = [gateway.aclose]
    if settings.fansly_api_url:
        # The same provider shape at another address, with its own key, limits and label.
        fansly = OnlyFansClient(
            settings.fansly_api_url,
            settings.fansly_api_key,
            timeout=settings.fansly_timeout,
            platform="fansly",
        )
        limiter = fansly_rate_limiter_from(settings, container.redis)
        others["fansly"] = PlatformRoute(fansly, limiter)
        closers.append(fansly.aclose)

    async def close() -> None:
        for closer in closers:
            await closer()

    sender = Sender(
        container.events,
        container.personal,
        container.pool,
        gateway,
        rate_limiter_from(settings, container.redis),
        max_receive_count=settings.max_receive_count,
        retry_delays=settings.retry_delays,
        campaign_status_ttl=settings.campaign_status_ttl,
        other_platforms=others,
    )
    return sender, close


async def run_sender_worker(container: Container, stop: asyncio.Event) -> None:
    """`crm worker sender`: the long-running poller."""
    sender, close = await build_sender(container)
    log.info("sender started", queue=container.settings.queue_backend)
    try:
        await run_sender(sender, container.queue, stop)
    finally:
        await close()


def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """AWS Lambda entry (SQS event source with ReportBatchItemFailures): worker/sender_lambda.py.
    Imported when first called, so that the poller never loads Powertools."""
    from worker.sender_lambda import lambda_handler as handle

    return handle(event, context)
