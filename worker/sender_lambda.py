"""The sender as an AWS Lambda function: SQS event source with ReportBatchItemFailures.

``worker.sender.lambda_handler`` (the deployment's handler name) calls ``lambda_handler`` here.
The records of an event are parsed with Powertools' SQS data classes and handed, as one
batch, to the Sender (worker/sender.py), which decides what becomes of each. Then:

- a record it says is done is left out of the answer (Lambda deletes it);
- a deferred one (not tried: no rate-limit token in time, limiter away) is re-queued with its
  delay by ``MessageQueue.defer`` and left out too; if the re-queue fails it is reported;
- any other is hidden for its backoff (ChangeMessageVisibility) and reported in
  ``batchItemFailures``, so SQS delivers it again and counts the receive.

An EventBridge schedule's event (no records) sweeps the dead-letter queues instead, as the
long-running poller does every few seconds: a dead letter whose message shows no outcome (its
last sender died before recording one) is recorded failed, so that a person can retry it.

Why not Powertools' BatchProcessor: it calls a handler per record and judges each by whether
it raised, while the Sender decides a whole batch at once and has a third outcome (deferred:
re-queued, neither failed nor done); and its async processor runs the records on an event
loop of its own choosing (``asyncio.run`` outside Lambda), while the pool and clients built
at cold start live on one loop kept between invocations. The answer is the same shape
(``{"batchItemFailures": [{"itemIdentifier": ...}]}``).

Logs: structlog bridged into Powertools' Logger (adapters/lambda_logging.py). Metrics: the
reference's, as EMF lines under CLOUDWATCH_NAMESPACE, printed at the end of each invocation.
The first invocation of an execution environment builds everything (configuration from the
environment only); the next ones reuse it.
"""

from __future__ import annotations

import asyncio
import math
import os
from typing import TYPE_CHECKING, Any

import structlog
from aws_lambda_powertools.utilities.data_classes import SQSEvent
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord

from adapters import bootstrap, metrics, tracing
from adapters.config import Settings
from adapters.lambda_logging import configure_lambda_logging
from adapters.sqs import PRIOR_RECEIVES
from application.delivery import Disposition
from application.queue import MessageQueue
from worker.sender import Record, Sender, _defer_delay, _queue, build_sender, received_from_record

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

log = structlog.get_logger(__name__)

# The Lambda runtime keeps the process (and this loop, pool and clients) between invocations;
# asyncio.run would make a new loop each time, which the pool cannot outlive.
_kept: dict[str, Any] = {}


def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    handler: Callable[[dict[str, Any], Any], dict[str, Any]] | None = _kept.get("handler")
    if handler is None:
        handler = _kept["handler"] = _cold_start()
    return handler(event, context)


def _cold_start() -> Callable[[dict[str, Any], Any], dict[str, Any]]:
    logger = configure_lambda_logging(os.environ.get("LOG_LEVEL", "INFO"))
    settings = Settings.from_env(queue_backend="sqs")
    _kept["emf"] = metrics.install_emf(settings.cloudwatch_namespace)
    _kept["loop"] = asyncio.new_event_loop()
    _kept["settings"] = settings
    return logger.inject_lambda_context(_invoke, clear_state=True)


def _invoke(event: dict[str, Any], context: Any) -> dict[str, Any]:
    try:
        return _kept["loop"].run_until_complete(_handle(event))  # type: ignore[no-any-return]
    finally:
        _kept["emf"].flush()
        tracing.force_flush()


async def _handle(event: dict[str, Any]) -> dict[str, Any]:
    if "sender" not in _kept:
        container = await bootstrap.build(_kept["settings"])
        _kept["container"] = container
        _kept["sender"], _kept["close_gateway"] = await build_sender(container)
    sender: Sender = _kept["sender"]
    queue: MessageQueue = _kept["container"].queue
    if is_schedule(event):
        # The poller sweeps the dead-letter queues every few seconds; on Lambda a schedule
        # (deploy/template.yaml) invokes the same function to do it.
        return {"deadLettersRecordedFailed": await sender.settle_dead_letters(queue)}
    high = _queue_name(_kept["settings"].sqs_queue_urls.get("high"))
    records = [record_from_sqs(item, high) for item in SQSEvent(event).records]
    dispositions = await sender.handle(records)
    failures = await settle_batch(queue, records, dispositions)
    return {"batchItemFailures": [{"itemIdentifier": record_id} for record_id in failures]}


async def settle_batch(
    queue: MessageQueue, records: Sequence[Record], dispositions: dict[str, Disposition]
) -> list[str]:
    """Carry out the Sender's dispositions the Lambda way; the ids to report failed."""
    failures = []
    for record in records:
        disposition = dispositions[record.record_id]
        if disposition.done:
            continue  # Lambda deletes what the response does not name
        if disposition.deferred:
            try:
                await queue.defer(
                    _queue(record.queue),
                    received_from_record(record),
                    _defer_delay(disposition.redeliver_after),
                )
                continue  # a delayed copy is on the queue; this one may go
            except Exception:
                log.exception("defer failed", record_id=record.record_id)
        if disposition.redeliver_after is not None:
            await queue.change_visibility(
                _queue(record.queue), record.receipt, math.ceil(disposition.redeliver_after)
            )
        failures.append(record.record_id)
    return failures


def is_schedule(event: dict[str, Any]) -> bool:
    """An EventBridge schedule's invocation, not an SQS batch."""
    return event.get("source") == "aws.events" or event.get("detail-type") == "Scheduled Event"


def record_from_sqs(item: SQSRecord, high_queue: str | None = None) -> Record:
    """A record of an SQS event as Lambda delivers it. Its queue is the high-priority one when
    its ARN names ``high_queue`` (the configured URL's queue), or without one configured, a
    queue whose name ends in ``-high`` (adapters/sqs.py's names). A deferred copy's receives
    before it (adapters/sqs.py) add to its own count, as the SQS adapter's receive adds them."""
    name = item.event_source_arn.rsplit(":", 1)[-1]
    is_high = name == high_queue if high_queue else name.endswith("-high")
    attributes = {
        key: str(value.string_value)
        for key, value in item.message_attributes.items()
        if value.string_value is not None
    }
    prior = int(attributes.pop(PRIOR_RECEIVES, "0"))
    return Record(
        record_id=item.message_id,
        queue="high" if is_high else "normal",
        body=item.body,
        receive_count=prior + int(item.attributes.approximate_receive_count or "1"),
        receipt=item.receipt_handle,
        attributes=attributes,
    )


def record_from_lambda(item: dict[str, Any], high_queue: str | None = None) -> Record:
    return record_from_sqs(SQSRecord(item), high_queue)


def _queue_name(url: str | None) -> str | None:
    return url.rstrip("/").rsplit("/", 1)[-1] if url else None


async def close_kept() -> None:
    """Close what the first invocation built (tests and benchmarks end an environment)."""
    if "close_gateway" in _kept:
        await _kept["close_gateway"]()
    if "container" in _kept:
        await _kept["container"].close()
