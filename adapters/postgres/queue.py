"""The message queue on PostgreSQL, with Amazon SQS's semantics: the single-machine default.

Table ``queue_messages`` (migrations/005_queue.sql). Sending is one INSERT of up to
``PG_MAX_BATCH`` rows: SQS caps a batch at ten, but here a larger one costs one statement and one
commit all the same, so the relay sends its whole claim at once (``max_batch``).
Receiving is one UPDATE that claims up to ten visible messages with ``FOR UPDATE SKIP LOCKED``
(so concurrent receivers never get the same message), increments their receive count and hides
them for the visibility timeout; a message already received ``max_receive_count`` times moves
to the queue's dead-letter queue instead of being delivered, as SQS's redrive policy does. A
receipt is ``"<id>.<receive_count>"``: it names one receive, so after the message is received
again a stale receipt deletes nothing and hides nothing (stricter than SQS, whose documentation
only says the message "might not be deleted"). Long polling LISTENs for the notification sent
after each send commits (``adapters.postgres.listen.Notifier``; a trigger would serialise
concurrent senders on the notify lock), and re-polls every half second for messages whose
visibility timeout ended and for notifications lost.

Why not pgqueuer (1.6, evaluated from its wheel): it is a job runner, not a message queue.
Workers register entrypoints and pgqueuer calls them; a job is re-picked when its worker's
heartbeat goes stale, not after a visibility timeout the consumer chooses or extends per
message; there are no receipts (completion is by job id, so a worker whose job was re-picked
can still complete it); no dead-letter queue (exhausted retries are logged to a statistics
table); no per-entry send results nor batch limits. It also brings pydantic, typer and
croniter, and installs its schema with its own CLI instead of numbered migrations. What it
shares with this module is its core, a few lines of SQL: claims with SKIP LOCKED, an index
ordered the way receivers read, LISTEN/NOTIFY.

Deletes VACUUM the table every ``vacuum_every`` messages (see ``_vacuum``): a receive reads the
head of the index range ``queue = $1 AND visible_at <= now()``, and every message received and
deleted leaves dead entries exactly there. Autovacuum visits a database at most once per
``autovacuum_naptime`` (a minute by default; off altogether on some servers), and meanwhile a
flowing queue piles up tens of thousands of dead entries that every receive walks through:
measured here, a receive read 4 buffers right after a VACUUM and 300 half a minute of
2,000 messages/s later, and the consumer's Postgres CPU per message rose by half.

SQS's per-message rules (size, characters, attributes) are defined here, where they are
emulated, and imported by adapters/sqs.py, which checks them before sending so that one bad
entry fails alone instead of failing the whole SendMessageBatch call.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import re
from collections.abc import Mapping, Sequence

import asyncpg
import msgspec
import structlog

from adapters.postgres.listen import Notifier
from application.queue import (
    MAX_BATCH,
    MAX_DEFER,
    QUEUES,
    DeadLetter,
    OutgoingMessage,
    QueueName,
    QueueStats,
    ReceivedMessage,
    SendResult,
)

log = structlog.get_logger(__name__)

# Entries per send_batch: one INSERT from arrays. Bounded so that one statement stays small
# (bodies are a few hundred bytes to 256 KiB) and covers a relay's whole claim.
PG_MAX_BATCH = 500
# Messages deleted between two VACUUMs of the queue table, and the least time between them:
# about 4,000 dead index entries at most at the head of the receive range, for ~1 % of a core.
VACUUM_EVERY = 2_000
_VACUUM_MIN_INTERVAL = 1.0

# SQS's limits. 256 KiB was SQS's maximum message size until 2025 (now 1 MiB); holding to the
# lower one keeps a message valid on every SQS deployment and on moto.
MAX_MESSAGE_BYTES = 256 * 1024
MAX_ATTRIBUTES = 10
MAX_WAIT_SECONDS = 20
MAX_VISIBILITY_TIMEOUT = 12 * 60 * 60
_ENTRY_ID = re.compile(r"[\w-]{1,80}", re.ASCII)
_ATTRIBUTE_NAME = re.compile(r"[A-Za-z0-9_\-.]{1,256}")
# Characters SQS accepts in bodies and attribute values (XML 1.0's); NUL, which a Postgres text
# column cannot hold either, is outside it.
_INVALID_CHARACTER = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")

# Channels are identifiers: at most 63 bytes, "queue_messages:" and the longest name included.
_MAX_PREFIX = 40
# Notifications announce new messages only; this bounds how late a long-polling receiver sees a
# message whose visibility timeout ended (or that change_visibility made visible).
_REPOLL_SECONDS = 0.5
_encode = msgspec.json.Encoder().encode
_decode_attributes = msgspec.json.Decoder(dict[str, str]).decode


class QueuePolicy(msgspec.Struct, frozen=True, kw_only=True):
    """What SQS sets per queue: default visibility timeout, and the redrive policy's count."""

    visibility_timeout: float = 30.0
    max_receive_count: int = 5


def check_batch(messages: Sequence[OutgoingMessage], limit: int = MAX_BATCH) -> None:
    """Refuse what SQS refuses as a whole request (too many entries, bad or repeated ids)."""
    if len(messages) > limit:
        raise ValueError(f"a batch holds at most {limit} messages, not {len(messages)}")
    ids = [message.entry_id for message in messages]
    if len(set(ids)) != len(ids):
        raise ValueError("entry ids repeat within the batch")
    for entry_id in ids:
        if not _ENTRY_ID.fullmatch(entry_id):
            raise ValueError(f"entry id {entry_id!r} is not 1-80 letters, digits, - or _")


def entry_error(message: OutgoingMessage) -> str | None:
    """Why SQS would refuse this one entry, or None: a failed entry of the batch's results."""
    if not message.body:
        return "InvalidParameterValue: the body is empty"
    if len(message.attributes) > MAX_ATTRIBUTES:
        return f"InvalidParameterValue: more than {MAX_ATTRIBUTES} message attributes"
    size = len(message.body.encode("utf-8", "surrogatepass"))
    for name, value in message.attributes.items():
        if not _valid_attribute_name(name):
            return f"InvalidParameterValue: attribute name {name[:80]!r} is not allowed"
        if not value:
            return f"InvalidParameterValue: attribute {name!r} has an empty value"
        if _INVALID_CHARACTER.search(value):
            return f"InvalidMessageContents: attribute {name!r} holds a character SQS refuses"
        size += len(name) + len("String") + len(value.encode("utf-8", "surrogatepass"))
    if _INVALID_CHARACTER.search(message.body):
        return "InvalidMessageContents: the body holds a character SQS refuses"
    if size > MAX_MESSAGE_BYTES:
        return f"MessageTooLong: {size} bytes with attributes, over {MAX_MESSAGE_BYTES}"
    return None


def _valid_attribute_name(name: str) -> bool:
    lowered = name.lower()
    return (
        bool(_ATTRIBUTE_NAME.fullmatch(name))
        and not name.startswith(".")
        and not name.endswith(".")
        and ".." not in name
        and not lowered.startswith(("aws.", "amazon."))
    )


def check_receive(max_messages: int, wait_seconds: float, visibility: float | None) -> None:
    if not 1 <= max_messages <= MAX_BATCH:
        raise ValueError(f"max_messages must be 1 to {MAX_BATCH}, not {max_messages}")
    if not 0 <= wait_seconds <= MAX_WAIT_SECONDS:
        raise ValueError(f"wait_seconds must be 0 to {MAX_WAIT_SECONDS}, not {wait_seconds}")
    if visibility is not None:
        check_visibility(visibility)


def check_defer(delay: float) -> None:
    if not 0 <= delay <= MAX_DEFER:  # also refuses NaN
        raise ValueError(f"a message is deferred 0 to {MAX_DEFER} s, not {delay}")


def check_visibility(timeout: float) -> None:
    if not 0 <= timeout <= MAX_VISIBILITY_TIMEOUT:  # also refuses NaN
        raise ValueError(f"a visibility timeout is 0 to {MAX_VISIBILITY_TIMEOUT} s, not {timeout}")


_SEND = """
INSERT INTO queue_messages (queue, body, attributes)
SELECT $1, body, attributes::jsonb FROM unnest($2::text[], $3::text[]) AS m(body, attributes)
"""

# One statement, so one round trip and one commit per batch. Rows received max_receive_count
# times already move to the dead-letter queue ($5) in the same UPDATE and come back with a NULL
# body; the others are delivered.
_RECEIVE = """
WITH candidates AS (
    SELECT id FROM queue_messages
    WHERE queue = $1 AND visible_at <= now()
    ORDER BY visible_at, id
    LIMIT $2
    FOR UPDATE SKIP LOCKED
)
UPDATE queue_messages AS m
SET queue = CASE WHEN m.receive_count - m.deferrals >= $4 THEN $5 ELSE m.queue END,
    visible_at = CASE WHEN m.receive_count - m.deferrals >= $4 THEN now()
                      ELSE now() + make_interval(secs => $3) END,
    receive_count = CASE WHEN m.receive_count - m.deferrals >= $4 THEN m.receive_count
                         ELSE m.receive_count + 1 END
FROM candidates AS c
WHERE m.id = c.id
RETURNING m.id, m.receive_count, m.deferrals,
          CASE WHEN m.queue = $1 THEN m.body END AS body,
          CASE WHEN m.queue = $1 THEN m.attributes::text END AS attributes
"""

_DELETE = """
DELETE FROM queue_messages AS m
USING unnest($1::bigint[], $2::integer[]) AS r(id, receive_count)
WHERE m.id = r.id AND m.receive_count = r.receive_count AND m.queue = ANY($3::text[])
"""

# Only a message still in flight under this very receive: SQS refuses to change the visibility
# of a message that is not in flight.
_CHANGE_VISIBILITY = """
UPDATE queue_messages SET visible_at = now() + make_interval(secs => $4)
WHERE id = $1 AND receive_count = $2 AND queue = ANY($3::text[]) AND visible_at > now()
"""

# As change_visibility, and this receive counts for nothing (migrations/022: deferrals).
_DEFER = """
UPDATE queue_messages
SET visible_at = now() + make_interval(secs => $4), deferrals = deferrals + 1
WHERE id = $1 AND receive_count = $2 AND queue = $3 AND visible_at > now()
"""

_STATS = """
SELECT count(*) FILTER (WHERE queue = $1 AND visible_at <= now()) AS visible,
       count(*) FILTER (WHERE queue = $1 AND visible_at > now()) AS in_flight,
       count(*) FILTER (WHERE queue = $2) AS dead_letters
FROM queue_messages WHERE queue = $1 OR queue = $2
"""


# A look, not a receive: nothing changes, so a message held by a consumer shows too.
_PEEK = """
SELECT id, receive_count, deferrals, body, attributes::text AS attributes, sent_at
FROM queue_messages WHERE queue = $1 ORDER BY id LIMIT $2
"""


class PostgresQueue:
    """``MessageQueue`` on a Postgres pool. ``prefix`` namespaces the queues (``<prefix>-high``),
    as a name prefix does on SQS, for several deployments or tests sharing one database;
    ``policies`` overrides the visibility timeout and max receive count per queue; ``notifier``
    is the process's (one is made if None, and ``close()`` stops it). While receives long-poll,
    one pooled connection LISTENs for them. ``vacuum_every`` deleted messages, a pooled
    connection runs VACUUM on the table in the background (0: never)."""

    max_batch = PG_MAX_BATCH

    def __init__(
        self,
        pool: asyncpg.Pool,
        *,
        visibility_timeout: float = 30.0,
        max_receive_count: int = 5,
        policies: Mapping[QueueName, QueuePolicy] | None = None,
        prefix: str = "",
        notifier: Notifier | None = None,
        vacuum_every: int = VACUUM_EVERY,
    ) -> None:
        if len(prefix) > _MAX_PREFIX:
            raise ValueError(f"a queue prefix has at most {_MAX_PREFIX} characters")
        default = QueuePolicy(
            visibility_timeout=visibility_timeout, max_receive_count=max_receive_count
        )
        self._policies = {name: (policies or {}).get(name, default) for name in QUEUES}
        for policy in self._policies.values():
            check_visibility(policy.visibility_timeout)
            if policy.max_receive_count < 1:
                raise ValueError("max_receive_count must be at least 1")
        self._pool = pool
        self._prefix = f"{prefix}-" if prefix else ""
        self._notifier = notifier or Notifier(pool)
        self._owns_notifier = notifier is None
        self._listener: asyncpg.pool.PoolConnectionProxy | None = None
        self._channels: set[str] = set()
        self._waiting = 0
        self._listen_lock = asyncio.Lock()
        # One event per stored queue name, replaced after each notification: a receiver takes
        # the current one before querying, so a message sent between its query and its wait
        # still wakes it.
        self._arrivals: dict[str, asyncio.Event] = {}
        self._vacuum_every = vacuum_every
        self._deleted_since_vacuum = 0
        self._last_vacuum = -math.inf
        self._vacuuming: asyncio.Task[None] | None = None

    def _name(self, queue: QueueName) -> str:
        if queue not in QUEUES:
            raise ValueError(f"unknown queue {queue!r}")
        return self._prefix + queue

    def _dead_name(self, queue: QueueName) -> str:
        return self._name(queue) + ".dlq"

    async def send_batch(
        self, queue: QueueName, messages: Sequence[OutgoingMessage]
    ) -> list[SendResult]:
        check_batch(messages, self.max_batch)
        name = self._name(queue)
        errors = [entry_error(message) for message in messages]
        valid = [message for message, error in zip(messages, errors, strict=True) if not error]
        if valid:
            await self._pool.execute(
                _SEND,
                name,
                [message.body for message in valid],
                [_encode(m.attributes).decode() if m.attributes else None for m in valid],
            )
            self._notifier.poke(_channel(name))
        return [
            SendResult(entry_id=message.entry_id, ok=error is None, error=error)
            for message, error in zip(messages, errors, strict=True)
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
        policy = self._policies[queue]
        name = self._name(queue)
        timeout = policy.visibility_timeout if visibility_timeout is None else visibility_timeout
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait_seconds
        listening = False
        try:
            while True:
                arrival = self._arrivals.setdefault(name, asyncio.Event())
                received, moved = await self._claim(
                    name, max_messages, timeout, policy.max_receive_count, self._dead_name(queue)
                )
                if received:
                    return received
                if moved:
                    continue  # the batch went to the dead-letter queue: others may be waiting
                remaining = deadline - loop.time()
                if remaining <= 0:
                    return []
                if not listening:
                    # Only a receiver that found nothing listens, so a busy consumer pays no
                    # LISTEN; it queries once more, since a send just before the LISTEN took
                    # effect notified nobody.
                    listening = True
                    await self._start_listening(name)
                    continue
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(arrival.wait(), min(remaining, _REPOLL_SECONDS))
        finally:
            if listening:
                await self._stop_listening()

    async def _claim(
        self, name: str, limit: int, timeout: float, max_receive_count: int, dead_letters: str
    ) -> tuple[list[ReceivedMessage], int]:
        rows = await self._pool.fetch(
            _RECEIVE, name, limit, float(timeout), max_receive_count, dead_letters
        )
        received = [
            ReceivedMessage(
                message_id=str(row["id"]),
                # The receipt names this receive; the count is of the receives that counted.
                receipt=f"{row['id']}.{row['receive_count']}",
                body=row["body"],
                attributes=_decode_attributes(row["attributes"]) if row["attributes"] else {},
                receive_count=row["receive_count"] - row["deferrals"],
            )
            for row in rows
            if row["body"] is not None
        ]
        return received, len(rows) - len(received)

    async def delete(self, queue: QueueName, receipts: Sequence[str]) -> None:
        """Delete the messages these receipts name; a stale receipt (the message was received
        again, or is already deleted) deletes nothing. A receipt from ``dead_letters`` of the
        same queue deletes from the dead-letter queue."""
        if not receipts:
            return
        ids, counts = zip(*(_parse_receipt(receipt) for receipt in receipts), strict=True)
        names = [self._name(queue), self._dead_name(queue)]
        status = await self._pool.execute(_DELETE, list(ids), list(counts), names)
        self._deleted_since_vacuum += int(status.rpartition(" ")[2] or 0)
        self._maybe_vacuum()

    def _maybe_vacuum(self) -> None:
        if not self._vacuum_every or self._deleted_since_vacuum < self._vacuum_every:
            return
        now = asyncio.get_running_loop().time()
        if self._vacuuming is not None or now - self._last_vacuum < _VACUUM_MIN_INTERVAL:
            return
        self._deleted_since_vacuum = 0
        self._last_vacuum = now
        self._vacuuming = asyncio.create_task(self._vacuum())

    async def _vacuum(self) -> None:
        # INDEX_CLEANUP ON: the dead index entries are the point, and under a deep backlog the
        # few pages they sit on would let VACUUM skip the indexes (its 2 % bypass). SKIP_LOCKED:
        # another process's VACUUM (or autovacuum) at work makes this one redundant, not a wait.
        # A role that does not own the table gets a warning, not an error.
        try:
            await self._pool.execute("VACUUM (INDEX_CLEANUP ON, SKIP_LOCKED) queue_messages")
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as error:
            log.warning("queue vacuum failed", error=f"{type(error).__name__}: {error}")
        finally:
            self._vacuuming = None

    async def change_visibility(self, queue: QueueName, receipt: str, timeout: float) -> None:
        """Hide the message for ``timeout`` seconds from now (0: visible now). Does nothing if
        the receipt is stale or the message is no longer in flight."""
        check_visibility(timeout)
        message_id, receive_count = _parse_receipt(receipt)
        names = [self._name(queue), self._dead_name(queue)]
        await self._pool.execute(
            _CHANGE_VISIBILITY, message_id, receive_count, names, float(timeout)
        )

    async def defer(self, queue: QueueName, message: ReceivedMessage, delay: float) -> None:
        """Visible again after ``delay`` seconds, this receive uncounted. Does nothing if the
        receipt is stale or the message is no longer in flight."""
        check_defer(delay)
        message_id, receive_count = _parse_receipt(message.receipt)
        await self._pool.execute(_DEFER, message_id, receive_count, self._name(queue), float(delay))

    async def stats(self, queue: QueueName) -> QueueStats:
        row = await self._pool.fetchrow(_STATS, self._name(queue), self._dead_name(queue))
        assert row is not None
        return QueueStats(
            visible=row["visible"], in_flight=row["in_flight"], dead_letters=row["dead_letters"]
        )

    async def dead_letters(
        self, queue: QueueName, *, max_messages: int = MAX_BATCH
    ) -> list[ReceivedMessage]:
        check_receive(max_messages, 0, None)
        policy = self._policies[queue]
        name = self._dead_name(queue)
        # A dead-letter queue has no redrive policy of its own: nothing ever moves on from it.
        received, _ = await self._claim(
            name, max_messages, policy.visibility_timeout, 2**31 - 1, name
        )
        return received

    async def peek_dead_letters(self, queue: QueueName, *, limit: int = 1000) -> list[DeadLetter]:
        rows = await self._pool.fetch(_PEEK, self._dead_name(queue), limit)
        return [
            DeadLetter(
                message_id=str(row["id"]),
                receipt=f"{row['id']}.{row['receive_count']}",
                body=row["body"],
                attributes=_decode_attributes(row["attributes"]) if row["attributes"] else {},
                receive_count=row["receive_count"] - row["deferrals"],
                sent_at=row["sent_at"],
            )
            for row in rows
        ]

    async def close(self) -> None:
        """Wait for a VACUUM under way; stop the notifier this queue made (if it made one)."""
        if self._vacuuming is not None:
            await self._vacuuming
        if self._owns_notifier:
            await self._notifier.close()

    # The LISTEN connection is held only while some receive is waiting, so the pool can close
    # (and the connection serve others) whenever no long poll is in progress.

    async def _start_listening(self, name: str) -> None:
        channel = _channel(name)
        async with self._listen_lock:
            self._waiting += 1
            try:
                if self._listener is None:
                    self._listener = await self._pool.acquire()
                if channel not in self._channels:
                    await self._listener.add_listener(channel, self._on_notification)
                    self._channels.add(channel)
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError):
                pass  # the receiver polls instead; the next one tries again

    async def _stop_listening(self) -> None:
        async with self._listen_lock:
            self._waiting -= 1
            if self._waiting or self._listener is None:
                return
            listener, self._listener = self._listener, None
            channels, self._channels = self._channels, set()
            with contextlib.suppress(OSError, asyncpg.PostgresError, asyncpg.InterfaceError):
                for channel in channels:
                    await listener.remove_listener(channel, self._on_notification)
            # Released even when broken: the pool replaces a closed connection.
            await self._pool.release(listener)

    def _on_notification(self, _conn: object, _pid: int, channel: str, _payload: str) -> None:
        arrival = self._arrivals.pop(channel.removeprefix(_CHANNEL_PREFIX), None)
        if arrival is not None:
            arrival.set()


_CHANNEL_PREFIX = "queue_messages:"


def _channel(name: str) -> str:
    return _CHANNEL_PREFIX + name


def _parse_receipt(receipt: str) -> tuple[int, int]:
    message_id, dot, receive_count = receipt.partition(".")
    if not (dot and message_id.isdigit() and receive_count.isdigit()):
        raise ValueError(f"{receipt!r} is not a receipt of this queue")
    return int(message_id), int(receive_count)
