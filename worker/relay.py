"""The outbox relay: moves committed outbox rows onto the queue, at least once.

Each pass claims due rows (FOR UPDATE SKIP LOCKED, so several relays can run), sends them with
SendMessageBatch in groups of at most the queue's ``max_batch`` per queue (SQS: 10; the Postgres
queue takes a whole claim in one INSERT), deletes the rows the queue accepted and
reschedules the rest with exponential backoff (1 s, 2 s, 4 s). After the last attempt the
message is recorded as failed (an event), so it shows as failed and a person can retry it.

A relay killed between the send and the commit leaves its rows in the outbox: they are sent
again, with the same message id, and the sender drops the duplicate.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import defaultdict
from collections.abc import Coroutine, Sequence
from typing import Any

import msgspec
import structlog
from opentelemetry import trace
from opentelemetry.trace import SpanKind
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from adapters import metrics, tracing
from adapters.bootstrap import Container
from adapters.postgres.listen import ChannelListener
from adapters.postgres.outbox import ClaimedRows, OutboxRow, PostgresOutbox
from application.context import CommandContext
from application.messages import record_all_dispatched, record_dispatched, record_failed
from application.ports import EventStore
from application.queue import MessageQueue, OutgoingMessage, QueueName, SendResult
from worker.idempotency import run_key_cleanup

log = structlog.get_logger(__name__)
_W3C = TraceContextTextMapPropagator()

RETRY_DELAYS = (1.0, 2.0, 4.0)  # after the 1st, 2nd and 3rd failed attempt; then give up
# Rows per claim, and SendMessageBatch calls in flight: a claim's fixed costs (claim,
# delete, commit, the dispatches' append) spread over more rows, and the queue's round trips
# overlap (bench/MEASUREMENTS.md, "Relay claims").
CLAIM_LIMIT = 300
SENDS_IN_FLIGHT = 6
_BUSY_WAIT = 0.05
# The relay hands the event loop back every so many rows of its per-row work (spans, bodies,
# events): a whole claim in one stretch held up everything else on the loop (the API and the
# sender under `crm dev`, the queue's consumer) for as long as it took (bench/MEASUREMENTS.md,
# "Relay turns"). Dispatches are recorded per slice for the same reason.
_ROWS_PER_TURN = 50
_DISPATCHES_PER_APPEND = 100


class Relay:
    def __init__(
        self,
        outbox: PostgresOutbox,
        queue: MessageQueue,
        store: EventStore,
        *,
        wake: asyncio.Event | None = None,
        poll_interval: float = 1.0,
    ) -> None:
        self.outbox = outbox
        self.queue = queue
        self.store = store
        self.wake = wake or asyncio.Event()
        self.poll_interval = poll_interval

    async def run_once(self) -> int:
        """Relay one claim of due rows; returns how many rows it settled."""
        async with self.outbox.claim(CLAIM_LIMIT) as claimed:
            if not claimed.rows:
                return 0
            outcomes = await self._send(claimed.rows)
            sent, gave_up = await self._settle(claimed, outcomes)
            # Recorded before the rows' deletion commits: if this fails or the relay dies,
            # the rows stay and the next pass settles them again. Never a silent loss.
            for row, reason in gave_up:
                await record_failed(
                    row.message_id, f"queue unavailable: {reason}", _owner(row), store=self.store
                )
                metrics.message_failed(_owner(row).tenant, "relay", _platform(row))
                log.error("message failed", **_about(row), attempt=row.attempts + 1, error=reason)
        # After commit the messages are on the queue whatever happens next; a lost
        # "dispatched" is made good by the sender's "sent".
        await self._record_dispatched(sent)
        return len(claimed.rows)

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                # Cleared before looking, not after: a NOTIFY that arrives while this pass
                # finds nothing must still end the wait below.
                self.wake.clear()
                if await self.run_once():
                    continue
                due = await self.outbox.seconds_until_due()
                # Rows due now but claimed nothing: another relay holds them. Wait a little
                # for its commit instead of spinning on claims.
                wait = self.poll_interval if due is None else max(due, _BUSY_WAIT)
                await _first_of(
                    self.wake.wait(), stop.wait(), timeout=min(wait, self.poll_interval)
                )
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("relay pass failed")
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), self.poll_interval)

    async def _send(self, rows: Sequence[OutboxRow]) -> dict[int, SendResult]:
        by_queue: dict[str, list[OutboxRow]] = defaultdict(list)
        for row in rows:
            by_queue[row.queue].append(row)
        outcomes: dict[int, SendResult] = {}
        # A few batches in flight at once: each is a round trip to the queue, and one at a
        # time the relay, not the queue, limits a campaign's pace.
        in_flight = asyncio.Semaphore(SENDS_IN_FLIGHT)

        size = self.queue.max_batch

        async def send(queue: str, chunk: Sequence[OutboxRow]) -> None:
            async with in_flight:
                outcomes.update(await self._send_batch(queue, chunk))

        await asyncio.gather(
            *(
                send(queue, queued[start : start + size])
                for queue, queued in by_queue.items()
                for start in range(0, len(queued), size)
            )
        )
        return outcomes

    async def _send_batch(self, queue: str, chunk: Sequence[OutboxRow]) -> dict[int, SendResult]:
        # One span per message, continuing the trace its command began; the queue message
        # carries this span's context on to the sender.
        spans = {}
        entries = []
        for n, row in enumerate(chunk, 1):
            span = spans[row.id] = _relay_span(row)
            entries.append(
                OutgoingMessage(
                    entry_id=str(row.id),
                    body=row.body,
                    attributes=_with_span(row.attributes, span),
                )
            )
            if n % _ROWS_PER_TURN == 0:
                await asyncio.sleep(0)
        try:
            results = await self.queue.send_batch(_queue_name(queue), entries)
        except Exception as error:  # the queue is down: every entry failed
            reason = f"{type(error).__name__}: {error}"
            results = [SendResult(entry_id=e.entry_id, ok=False, error=reason) for e in entries]
        outcomes = {}
        for result in results:
            outcomes[int(result.entry_id)] = result
            span = spans.pop(int(result.entry_id), None)
            if span is not None:
                if not result.ok:
                    tracing.failed(span, result.error or "not sent")
                span.end()
        for span in spans.values():  # no result for it: not sent
            tracing.failed(span, "not sent")
            span.end()
        return outcomes

    async def _settle(
        self, claimed: ClaimedRows, outcomes: dict[int, SendResult]
    ) -> tuple[list[OutboxRow], list[tuple[OutboxRow, str]]]:
        sent, gave_up, done = [], [], []
        for row in claimed.rows:
            result = outcomes.get(row.id)
            if result is not None and result.ok:
                sent.append(row)
                done.append(row.id)
                continue
            reason = (result.error if result else None) or "not sent"
            if row.attempts < len(RETRY_DELAYS):
                await claimed.retry_later(row, RETRY_DELAYS[row.attempts], reason)
                log.warning(
                    "relay send failed, will retry",
                    **_about(row),
                    attempt=row.attempts + 1,
                    error=reason,
                )
            else:
                gave_up.append((row, reason))
                done.append(row.id)
        await claimed.delete(done)
        return sent, gave_up

    async def _record_dispatched(self, rows: list[OutboxRow]) -> None:
        for start in range(0, len(rows), _DISPATCHES_PER_APPEND):
            await self._record_dispatched_slice(rows[start : start + _DISPATCHES_PER_APPEND])
            await asyncio.sleep(0)

    async def _record_dispatched_slice(self, rows: list[OutboxRow]) -> None:
        known = [row for row in rows if row.stream_version is not None]
        try:
            await record_all_dispatched(
                [(r.message_id, r.stream_version, r.queue, _owner(r)) for r in known],  # type: ignore[misc]
                store=self.store,
            )
            for row in rows:
                if row.stream_version is None:  # written before versions were kept
                    await record_dispatched(
                        row.message_id, row.queue, _owner(row), store=self.store
                    )
        except Exception:
            log.exception("could not record dispatches", count=len(rows))
            return
        for row in rows:
            log.info("message dispatched", **_about(row), queue=row.queue)


async def run_relay(container: Container, stop: asyncio.Event) -> None:
    """The relay as a long-running worker, woken by NOTIFY on the outbox."""
    listener = ChannelListener(container.settings.database_url, "outbox")
    await listener.ensure()
    relay = Relay(container.outbox, container.queue, container.events, wake=listener.notified)
    log.info("relay started", queue=container.settings.queue_backend)
    keep_listening = asyncio.create_task(_keep_listening(listener, stop))
    # The relay is the one worker every deployment runs: it also expires Idempotency-Keys.
    key_cleanup = asyncio.create_task(run_key_cleanup(container.idempotency, stop))
    try:
        await relay.run(stop)
    finally:
        keep_listening.cancel()
        key_cleanup.cancel()
        await listener.close()


async def _keep_listening(listener: ChannelListener, stop: asyncio.Event) -> None:
    """Reconnect the LISTEN connection if it drops; meanwhile the relay polls."""
    while not stop.is_set():
        await listener.ensure()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), 5.0)


def _platform(row: OutboxRow) -> str:
    """The platform the queued message is for (bodies from before it was recorded: all
    OnlyFans')."""
    return str(msgspec.json.decode(row.body).get("platform") or "onlyfans")


def _owner(row: OutboxRow) -> CommandContext:
    """The message's own tenant and correlation id, so its events read as one story; and the
    member who sent it, in whose name they are recorded."""
    body = msgspec.json.decode(row.body)
    tenant = str(body.get("tenant", ""))
    correlation = str(body.get("correlationId") or "relay")
    sent_by = body.get("sentBy")
    return CommandContext(tenant=tenant, actor="relay", correlation_id=correlation).acting_for(
        None if sent_by is None else str(sent_by)
    )


def _about(row: OutboxRow) -> dict[str, Any]:
    """What every log line about a message says: which message, whose, to whom, and the
    trace it belongs to (these lines are written outside its span)."""
    body = msgspec.json.decode(row.body)
    trace_id = tracing.trace_id_of(row.attributes)
    return {
        "message_id": row.message_id,
        "tenant": body.get("tenant"),
        "recipient_id": body.get("recipientId"),
    } | ({"trace_id": trace_id} if trace_id else {})


def _relay_span(row: OutboxRow) -> Any:
    return tracing.tracer().start_span(
        f"relay {row.queue}",
        context=tracing.extract(row.attributes),
        kind=SpanKind.PRODUCER,
        attributes={
            "messaging.destination.name": row.queue,
            "messaging.message.id": row.message_id,
        },
    )


def _with_span(attributes: dict[str, str], span: Any) -> dict[str, str]:
    # The span's context handed to the propagator, not made current: making it current and
    # back (use_span) cost as much as the injection itself, once per message.
    carrier = dict(attributes)
    _W3C.inject(carrier, context=trace.set_span_in_context(span))
    return carrier


async def _first_of(*waits: Coroutine[Any, Any, Any], timeout: float) -> None:
    tasks = [asyncio.ensure_future(wait) for wait in waits]
    try:
        await asyncio.wait(tasks, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()


def _queue_name(queue: str) -> QueueName:
    return "high" if queue == "high" else "normal"
