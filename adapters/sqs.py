"""The message queue on Amazon SQS (aiobotocore): the production adapter.

Two standard queues, ``<prefix>-high`` and ``<prefix>-normal``, each with a dead-letter queue
``<prefix>-high-dlq`` / ``<prefix>-normal-dlq`` set by a redrive policy (``create_queues``).
The client is made explicitly (``sqs_client``): nothing connects or reads the environment at
import time. Where an argument is None, botocore's own chain applies: ``AWS_ENDPOINT_URL_SQS``
or ``AWS_ENDPOINT_URL``, ``AWS_REGION`` or ``AWS_DEFAULT_REGION``, ``AWS_ACCESS_KEY_ID`` and
``AWS_SECRET_ACCESS_KEY`` (or a profile or an instance role).

SQS takes whole seconds for visibility timeouts and long polls: fractions round up. A receipt
from ``dead_letters`` carries a ``dlq:`` prefix so that ``delete`` and ``change_visibility``,
which name the queue, send it to the dead-letter queue it came from. Unlike the Postgres
adapter, a stale receipt may still delete a message here (SQS: "might not be deleted"; moto
always does). Per-message rules are checked before sending (see adapters/postgres/queue.py),
and a batch whose total would exceed SQS's per-call payload limit goes as several calls.

Deferring (a message received, not tried): SQS's ApproximateReceiveCount only grows, and its
redrive policy dead-letters on it, so a receive cannot be taken back. ``defer`` sends a fresh
copy of the message, delayed, carrying in the attribute ``fancrm-prior-receives`` the receives
that counted before, then deletes the received one. The copy's receive count, as this adapter
reports it, is its own plus that number; a copy received past the redrive policy's
maxReceiveCount this way is moved to the dead-letter queue by the receive, as SQS would have.
A crash between the send and the delete leaves two copies: harmless, since the consumer drops
a message whose id already has an outcome and the platform dedupes on that id.
"""

from __future__ import annotations

import asyncio
import json
import math
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import msgspec
from aiobotocore.config import AioConfig
from aiobotocore.session import get_session
from botocore.exceptions import ClientError

from adapters.postgres.queue import (
    MAX_MESSAGE_BYTES,
    check_batch,
    check_defer,
    check_receive,
    check_visibility,
    entry_error,
)
from application.queue import (
    MAX_BATCH,
    QUEUES,
    DeadLetter,
    OutgoingMessage,
    QueueName,
    QueueStats,
    ReceivedMessage,
    SendResult,
)

if TYPE_CHECKING:
    from adapters.config import Settings

SqsClient = Any  # aiobotocore builds the client class at run time; there is no type to name

_DLQ_RECEIPT = "dlq:"
PRIOR_RECEIVES = "fancrm-prior-receives"
# The longest retention SQS allows. A message keeps its original enqueue time when it moves to
# a standard queue's dead-letter queue, so the dead-letter queue must keep messages at least
# as long as the source queue (4 days by default) or they vanish before anyone looks.
_DLQ_RETENTION_SECONDS = 14 * 24 * 60 * 60
# Answers for a receipt that no longer names a delivery (the message was deleted, received
# again, or its receipt expired). The Postgres adapter ignores those too: the message is
# someone else's, or nobody's, now.
_STALE_RECEIPT = {"ReceiptHandleIsInvalid", "MessageNotInflight"}
# A peek receives the dead-letter queue, holding what it got for this long so that the next
# receive of the same peek brings others, then makes them all visible again.
_PEEK_HOLD = 30


def _is_stale(code: str | None, message: str | None) -> bool:
    # An expired receipt comes back as InvalidParameterValue naming the receipt handle.
    return code in _STALE_RECEIPT or (
        code == "InvalidParameterValue" and "receipt handle" in (message or "").lower()
    )


@asynccontextmanager
async def sqs_client(
    *,
    endpoint_url: str | None = None,
    region_name: str | None = None,
    aws_access_key_id: str | None = None,
    aws_secret_access_key: str | None = None,
    aws_session_token: str | None = None,
) -> AsyncIterator[SqsClient]:
    """An SQS client, open for the ``async with`` block; None arguments come from botocore's
    environment and config chain."""
    config = AioConfig(
        # "standard" retries throttling and 5xx with backoff; the read timeout leaves room for
        # the longest long poll (20 s).
        retries={"mode": "standard", "max_attempts": 3},
        read_timeout=40,
        connect_timeout=5,
    )
    async with get_session().create_client(
        "sqs",
        endpoint_url=endpoint_url,
        region_name=region_name,
        aws_access_key_id=aws_access_key_id,
        aws_secret_access_key=aws_secret_access_key,
        aws_session_token=aws_session_token,
        config=config,
    ) as client:
        yield client


def _queue_names(prefix: str) -> dict[str, str]:
    base = f"{prefix}-" if prefix else ""
    names = {}
    for queue in QUEUES:
        names[queue] = f"{base}{queue}"
        names[f"{queue}-dlq"] = f"{base}{queue}-dlq"
    return names


async def create_queues(
    client: SqsClient,
    *,
    prefix: str,
    max_receive_count: int = 5,
    visibility_timeout: int = 30,
) -> dict[str, str]:
    """Create (or update) both queues and their dead-letter queues; returns their URLs keyed
    ``high``, ``normal``, ``high-dlq``, ``normal-dlq``. Running it again is harmless, and
    with other settings it applies them."""
    names = _queue_names(prefix)
    urls: dict[str, str] = {}
    for queue in QUEUES:
        dlq = f"{queue}-dlq"
        urls[dlq] = await _ensure_queue(
            client, names[dlq], {"MessageRetentionPeriod": str(_DLQ_RETENTION_SECONDS)}
        )
        answer = await client.get_queue_attributes(QueueUrl=urls[dlq], AttributeNames=["QueueArn"])
        redrive = {
            "deadLetterTargetArn": answer["Attributes"]["QueueArn"],
            "maxReceiveCount": str(max_receive_count),
        }
        urls[queue] = await _ensure_queue(
            client,
            names[queue],
            {"VisibilityTimeout": str(visibility_timeout), "RedrivePolicy": json.dumps(redrive)},
        )
    return urls


async def _ensure_queue(client: SqsClient, name: str, attributes: dict[str, str]) -> str:
    try:
        answer = await client.create_queue(QueueName=name, Attributes=attributes)
    except ClientError as error:
        # CreateQueue is idempotent only with identical attributes; with others it refuses.
        if _code(error) not in {"QueueAlreadyExists", "QueueNameExists"}:
            raise
        answer = await client.get_queue_url(QueueName=name)
        await client.set_queue_attributes(QueueUrl=answer["QueueUrl"], Attributes=attributes)
    return str(answer["QueueUrl"])


async def queue_urls(client: SqsClient, *, prefix: str) -> dict[str, str]:
    """The URLs of queues ``create_queues`` made with this prefix, resolved by name."""
    names = _queue_names(prefix)
    answers = await asyncio.gather(*(client.get_queue_url(QueueName=n) for n in names.values()))
    return {key: str(answer["QueueUrl"]) for key, answer in zip(names, answers, strict=True)}


async def open_sqs_queue(settings: Settings) -> tuple[SqsQueue, Callable[[], Awaitable[None]]]:
    """The services' queue: a client from the settings (credentials from the environment), and
    the closer of the client. The queues are the deployment's when their URLs are configured
    (used as they are: their redrive policy must dead-letter after SQS_MAX_RECEIVE_COUNT
    receives); else they are created by prefix, or brought to the settings' redrive and
    visibility values."""
    stack = AsyncExitStack()
    try:
        client = await stack.enter_async_context(
            sqs_client(endpoint_url=settings.sqs_endpoint_url, region_name=settings.aws_region)
        )
        urls = settings.sqs_queue_urls or await create_queues(
            client,
            prefix=settings.sqs_queue_prefix,
            max_receive_count=settings.max_receive_count,
            visibility_timeout=math.ceil(settings.visibility_timeout),
        )
    except BaseException:
        await stack.aclose()
        raise
    return SqsQueue(client, urls, max_receive_count=settings.max_receive_count), stack.aclose


def _code(error: ClientError) -> str:
    return str(error.response.get("Error", {}).get("Code", ""))


class SqsBatchError(RuntimeError):
    """Some entries of a DeleteMessageBatch failed for a reason other than a stale receipt."""


class SqsQueue:
    """``MessageQueue`` on SQS. ``urls`` as ``create_queues`` or ``queue_urls`` return them;
    ``visibility_timeout`` None leaves each queue's own default in force; ``max_receive_count``
    None reads it from a queue's redrive policy when a deferred copy needs it."""

    max_batch = MAX_BATCH  # SendMessageBatch's hard limit

    def __init__(
        self,
        client: SqsClient,
        urls: Mapping[str, str],
        *,
        visibility_timeout: float | None = None,
        max_receive_count: int | None = None,
    ) -> None:
        missing = {key for q in QUEUES for key in (q, f"{q}-dlq")} - set(urls)
        if missing:
            raise ValueError(f"queue URLs missing for {sorted(missing)}")
        if visibility_timeout is not None:
            check_visibility(visibility_timeout)
        self._client = client
        self._urls = dict(urls)
        self._visibility_timeout = visibility_timeout
        self._max_receive_count = max_receive_count
        self._redrive_counts: dict[str, int] = {}

    def _url(self, queue: QueueName, *, dead_letters: bool = False) -> str:
        if queue not in QUEUES:
            raise ValueError(f"unknown queue {queue!r}")
        return self._urls[f"{queue}-dlq" if dead_letters else queue]

    async def send_batch(
        self, queue: QueueName, messages: Sequence[OutgoingMessage]
    ) -> list[SendResult]:
        check_batch(messages)
        url = self._url(queue)
        results: dict[str, SendResult] = {}
        valid = []
        for message in messages:
            error = entry_error(message)
            if error:
                results[message.entry_id] = SendResult(
                    entry_id=message.entry_id, ok=False, error=error
                )
            else:
                valid.append(message)
        for request in _requests_within_payload_limit(valid):
            try:
                answer = await self._client.send_message_batch(
                    QueueUrl=url, Entries=[_send_entry(m) for m in request]
                )
            except ClientError as error:
                # The whole call was refused (after botocore's retries): its entries failed,
                # and those of earlier calls of this batch were sent and say so.
                for message in request:
                    results[message.entry_id] = SendResult(
                        entry_id=message.entry_id, ok=False, error=f"{_code(error)}: {error}"
                    )
                continue
            for ok in answer.get("Successful", []):
                results[ok["Id"]] = SendResult(entry_id=ok["Id"], ok=True)
            for failed in answer.get("Failed", []):
                results[failed["Id"]] = SendResult(
                    entry_id=failed["Id"],
                    ok=False,
                    error=f"{failed.get('Code', 'Failed')}: {failed.get('Message', '')}",
                )
        missing = SendResult(entry_id="", ok=False, error="SQS answered nothing for this entry")
        return [
            results.get(m.entry_id, msgspec.structs.replace(missing, entry_id=m.entry_id))
            for m in messages
        ]

    async def receive(
        self,
        queue: QueueName,
        *,
        max_messages: int = MAX_BATCH,
        visibility_timeout: float | None = None,
        wait_seconds: float = 0.0,
    ) -> list[ReceivedMessage]:
        check_receive(max_messages, wait_seconds, visibility_timeout)
        received = await self._receive(
            self._url(queue),
            max_messages=max_messages,
            visibility_timeout=visibility_timeout,
            wait_seconds=wait_seconds,
            receipt_prefix="",
        )
        delivered = []
        for message, prior in received:
            if prior and message.receive_count > await self._max_receives(self._url(queue)):
                await self._dead_letter(queue, message)
            else:
                delivered.append(message)
        return delivered

    async def _max_receives(self, url: str) -> int:
        if self._max_receive_count is not None:
            return self._max_receive_count
        if url not in self._redrive_counts:
            answer = await self._client.get_queue_attributes(
                QueueUrl=url, AttributeNames=["RedrivePolicy"]
            )
            policy = answer.get("Attributes", {}).get("RedrivePolicy")
            self._redrive_counts[url] = (
                int(json.loads(policy)["maxReceiveCount"]) if policy else 2**31 - 1
            )
        return self._redrive_counts[url]

    async def _dead_letter(self, queue: QueueName, message: ReceivedMessage) -> None:
        """What SQS's redrive does to the original, done to a deferred copy that outlived its
        receives: into the dead-letter queue (its count carried along), out of this one."""
        await self._send_copy(
            self._url(queue, dead_letters=True), message, message.receive_count - 1, 0
        )
        await self.delete(queue, [message.receipt])

    async def defer(self, queue: QueueName, message: ReceivedMessage, delay: float) -> None:
        check_defer(delay)
        url, _ = self._route(queue, message.receipt)
        # The copy first: a crash before the delete leaves a duplicate, never a loss.
        await self._send_copy(url, message, message.receive_count - 1, math.ceil(delay))
        await self.delete(queue, [message.receipt])

    async def _send_copy(
        self, url: str, message: ReceivedMessage, prior_receives: int, delay: int
    ) -> None:
        attributes = {**message.attributes}
        if prior_receives > 0:
            attributes[PRIOR_RECEIVES] = str(prior_receives)
        entry = _send_entry(
            OutgoingMessage(entry_id="copy", body=message.body, attributes=attributes)
        )
        await self._client.send_message(
            QueueUrl=url,
            MessageBody=entry["MessageBody"],
            MessageAttributes=entry.get("MessageAttributes", {}),
            DelaySeconds=delay,
        )

    async def _receive(
        self,
        url: str,
        *,
        max_messages: int,
        visibility_timeout: float | None,
        wait_seconds: float,
        receipt_prefix: str,
    ) -> list[tuple[ReceivedMessage, int]]:
        """The messages, each with the receives its earlier copies counted (0 for one never
        deferred)."""
        request: dict[str, Any] = {
            "QueueUrl": url,
            "MaxNumberOfMessages": max_messages,
            "WaitTimeSeconds": math.ceil(wait_seconds),
            "MessageSystemAttributeNames": ["ApproximateReceiveCount"],
            "MessageAttributeNames": ["All"],
        }
        timeout = self._visibility_timeout if visibility_timeout is None else visibility_timeout
        if timeout is not None:
            request["VisibilityTimeout"] = math.ceil(timeout)
        answer = await self._client.receive_message(**request)
        received = []
        for message in answer.get("Messages", []):
            attributes = {
                name: value["StringValue"]
                for name, value in message.get("MessageAttributes", {}).items()
                if "StringValue" in value
            }
            prior = int(attributes.pop(PRIOR_RECEIVES, "0"))
            own = int(message.get("Attributes", {}).get("ApproximateReceiveCount", 1))
            received.append(
                (
                    ReceivedMessage(
                        message_id=message["MessageId"],
                        receipt=receipt_prefix + message["ReceiptHandle"],
                        body=message["Body"],
                        attributes=attributes,
                        receive_count=own + prior,
                    ),
                    prior,
                )
            )
        return received

    async def delete(self, queue: QueueName, receipts: Sequence[str]) -> None:
        """Delete by receipt, ten per DeleteMessageBatch call. Stale receipts are ignored, as
        the Postgres adapter ignores them; other per-entry failures raise SqsBatchError."""
        by_url: dict[str, list[str]] = {}
        for receipt in dict.fromkeys(receipts):  # SQS refuses a receipt twice in one batch
            url, handle = self._route(queue, receipt)
            by_url.setdefault(url, []).append(handle)
        failures = []
        for url, handles in by_url.items():
            for start in range(0, len(handles), MAX_BATCH):
                chunk = handles[start : start + MAX_BATCH]
                answer = await self._client.delete_message_batch(
                    QueueUrl=url,
                    Entries=[{"Id": str(i), "ReceiptHandle": h} for i, h in enumerate(chunk)],
                )
                failures += [
                    f"{f.get('Code')}: {f.get('Message')}"
                    for f in answer.get("Failed", [])
                    if not _is_stale(f.get("Code"), f.get("Message"))
                ]
        if failures:
            raise SqsBatchError("; ".join(failures))

    async def change_visibility(self, queue: QueueName, receipt: str, timeout: float) -> None:
        check_visibility(timeout)
        url, handle = self._route(queue, receipt)
        try:
            await self._client.change_message_visibility(
                QueueUrl=url, ReceiptHandle=handle, VisibilityTimeout=math.ceil(timeout)
            )
        except ClientError as error:
            if not _is_stale(_code(error), error.response.get("Error", {}).get("Message")):
                raise

    def _route(self, queue: QueueName, receipt: str) -> tuple[str, str]:
        if receipt.startswith(_DLQ_RECEIPT):
            return self._url(queue, dead_letters=True), receipt.removeprefix(_DLQ_RECEIPT)
        return self._url(queue), receipt

    async def stats(self, queue: QueueName) -> QueueStats:
        names = ["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]
        main, dead = await asyncio.gather(
            self._client.get_queue_attributes(QueueUrl=self._url(queue), AttributeNames=names),
            self._client.get_queue_attributes(
                QueueUrl=self._url(queue, dead_letters=True), AttributeNames=names
            ),
        )
        counts = main["Attributes"]
        dead_counts = dead["Attributes"]
        return QueueStats(
            visible=int(counts["ApproximateNumberOfMessages"]),
            in_flight=int(counts["ApproximateNumberOfMessagesNotVisible"]),
            # Every message in the dead-letter queue, also those someone is inspecting.
            dead_letters=sum(int(dead_counts[name]) for name in names),
        )

    async def dead_letters(
        self, queue: QueueName, *, max_messages: int = MAX_BATCH
    ) -> list[ReceivedMessage]:
        check_receive(max_messages, 0, None)
        received = await self._receive(
            self._url(queue, dead_letters=True),
            max_messages=max_messages,
            visibility_timeout=None,
            wait_seconds=0,
            receipt_prefix=_DLQ_RECEIPT,
        )
        return [message for message, _ in received]

    async def peek_dead_letters(self, queue: QueueName, *, limit: int = 1000) -> list[DeadLetter]:
        """SQS cannot list a queue: this receives the dead-letter queue until it is empty for
        this peek (what it received stays hidden meanwhile), then makes every message it got
        visible again. Long polls (a second), so that an empty answer means empty, not a
        sample of SQS's servers that held none. A message another consumer holds is missed."""
        url = self._url(queue, dead_letters=True)
        found: dict[str, DeadLetter] = {}
        handles: list[str] = []
        try:
            while len(found) < limit:
                answer = await self._client.receive_message(
                    QueueUrl=url,
                    MaxNumberOfMessages=min(MAX_BATCH, limit - len(found)),
                    WaitTimeSeconds=1,
                    VisibilityTimeout=_PEEK_HOLD,
                    MessageSystemAttributeNames=["ApproximateReceiveCount", "SentTimestamp"],
                    MessageAttributeNames=["All"],
                )
                messages = answer.get("Messages", [])
                if not messages:
                    break
                for message in messages:
                    handles.append(message["ReceiptHandle"])
                    found.setdefault(message["MessageId"], _dead_letter(message))
        finally:
            await asyncio.gather(
                *(self.change_visibility(queue, _DLQ_RECEIPT + h, 0) for h in handles),
                return_exceptions=True,
            )
        return list(found.values())


def _dead_letter(message: dict[str, Any]) -> DeadLetter:
    attributes = {
        name: value["StringValue"]
        for name, value in message.get("MessageAttributes", {}).items()
        if "StringValue" in value
    }
    prior = int(attributes.pop(PRIOR_RECEIVES, "0"))
    system = message.get("Attributes", {})
    sent = system.get("SentTimestamp")
    return DeadLetter(
        message_id=message["MessageId"],
        receipt=_DLQ_RECEIPT + message["ReceiptHandle"],
        body=message["Body"],
        attributes=attributes,
        # Less this peek's own receive.
        receive_count=prior + max(int(system.get("ApproximateReceiveCount", 1)) - 1, 0),
        sent_at=datetime.fromtimestamp(int(sent) / 1000, UTC) if sent else None,
    )


def _send_entry(message: OutgoingMessage) -> dict[str, Any]:
    entry: dict[str, Any] = {"Id": message.entry_id, "MessageBody": message.body}
    if message.attributes:
        entry["MessageAttributes"] = {
            name: {"DataType": "String", "StringValue": value}
            for name, value in message.attributes.items()
        }
    return entry


def _payload_bytes(message: OutgoingMessage) -> int:
    return len(message.body.encode()) + sum(
        len(name) + len("String") + len(value.encode())
        for name, value in message.attributes.items()
    )


def _requests_within_payload_limit(
    messages: Sequence[OutgoingMessage],
) -> list[list[OutgoingMessage]]:
    """Split a batch so that no SendMessageBatch call carries more than SQS's payload limit in
    total (it refuses the whole call otherwise): ten small messages stay one call."""
    requests: list[list[OutgoingMessage]] = []
    size = 0
    for message in messages:
        message_size = _payload_bytes(message)
        if not requests or size + message_size > MAX_MESSAGE_BYTES:
            requests.append([])
            size = 0
        requests[-1].append(message)
        size += message_size
    return requests
