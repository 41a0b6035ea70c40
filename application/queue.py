"""The message queue port: SQS semantics, whichever adapter serves it.

Two logical queues, ``high`` (one-to-one replies) and ``normal`` (bulk), each with a dead-letter
queue. A received message stays invisible for its visibility timeout; deleting it acknowledges
it; otherwise it becomes visible again, and after ``max_receive_count`` receives it moves to the
dead-letter queue. A consumer that received a message but did not try it (it waits for a
rate-limit token, or for the limiter itself) ``defer``s it: that receive then counts for
nothing, so waiting never brings a message nearer its dead-letter queue.

Adapters: Amazon SQS (adapters/sqs.py) and Postgres (adapters/postgres/queue.py), both held to
one contract test suite.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Literal, Protocol

import msgspec

QueueName = Literal["high", "normal"]
QUEUES: tuple[QueueName, ...] = ("high", "normal")
MAX_BATCH = 10  # SQS's limit for SendMessageBatch, ReceiveMessage and DeleteMessageBatch
MAX_DEFER = 900  # seconds: SQS's longest DelaySeconds


class OutgoingMessage(msgspec.Struct, frozen=True, kw_only=True):
    """An entry of a send batch. ``entry_id`` is unique within the batch and names its result."""

    entry_id: str
    body: str
    attributes: dict[str, str] = {}


class SendResult(msgspec.Struct, frozen=True, kw_only=True):
    entry_id: str
    ok: bool
    error: str | None = None


class ReceivedMessage(msgspec.Struct, frozen=True, kw_only=True):
    message_id: str  # assigned by the queue
    receipt: str  # the handle for delete / change_visibility of this receive
    body: str
    attributes: dict[str, str]
    receive_count: int


class QueueStats(msgspec.Struct, frozen=True, kw_only=True):
    visible: int  # waiting to be received (ApproximateNumberOfMessages)
    in_flight: int  # received, not yet deleted (ApproximateNumberOfMessagesNotVisible)
    dead_letters: int  # in the queue's dead-letter queue


class DeadLetter(msgspec.Struct, frozen=True, kw_only=True):
    """A message in a dead-letter queue, as ``peek_dead_letters`` shows it."""

    message_id: str  # assigned by the queue
    receipt: str  # deletes it: ``delete(queue, [receipt])`` of the queue it died on
    body: str
    attributes: dict[str, str]
    receive_count: int  # the receives that counted, on its queue
    sent_at: datetime | None  # when it was sent to its queue, where the queue says


class MessageQueue(Protocol):
    # The most entries one send_batch takes: SQS's MAX_BATCH, more where the adapter's store
    # takes a larger batch as cheaply (the relay sends batches of this size).
    max_batch: int

    async def send_batch(
        self, queue: QueueName, messages: Sequence[OutgoingMessage]
    ) -> list[SendResult]:
        """Send up to ``max_batch`` messages; one result per entry (partial failures allowed)."""
        ...

    async def receive(
        self,
        queue: QueueName,
        *,
        max_messages: int = MAX_BATCH,
        visibility_timeout: float | None = None,
        wait_seconds: float = 0.0,
    ) -> list[ReceivedMessage]: ...

    async def delete(self, queue: QueueName, receipts: Sequence[str]) -> None: ...

    async def change_visibility(self, queue: QueueName, receipt: str, timeout: float) -> None: ...

    async def defer(self, queue: QueueName, message: ReceivedMessage, delay: float) -> None:
        """Hand back a message received and not tried: it is received again after ``delay``
        seconds (at most ``MAX_DEFER`` and no less than 0), with the receive count it had
        before this receive, which therefore never counts towards the dead-letter limit. The
        message may come back under another message id and receipt (SQS)."""
        ...

    async def stats(self, queue: QueueName) -> QueueStats: ...

    async def dead_letters(
        self, queue: QueueName, *, max_messages: int = MAX_BATCH
    ) -> list[ReceivedMessage]:
        """Receive from the queue's dead-letter queue (for inspection and redrive)."""
        ...

    async def peek_dead_letters(self, queue: QueueName, *, limit: int = 1000) -> list[DeadLetter]:
        """Up to ``limit`` messages of the queue's dead-letter queue, each once, left there as
        visible as they were (a receive of the dead-letter queue, or another peek, still gets
        them). Those another consumer holds at the moment may be missing (SQS: a message in
        flight cannot be seen). For listing and redriving: a receipt deletes its message."""
        ...
