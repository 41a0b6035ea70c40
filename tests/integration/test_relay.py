"""The outbox relay against real Postgres and real queues (the Postgres queue; SQS on moto's
server for small volumes): every accepted message reaches its queue, sealed, at least once;
outages are retried on the 1 s / 2 s / 4 s schedule and then recorded as failed; a partial
batch failure retries only what failed; relays running at once never send a row twice; a relay
killed between SendMessageBatch and its commit loses nothing; NOTIFY wakes an idle relay."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import math
import signal
import socket
import sys
import uuid
from collections import Counter, defaultdict
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

import pytest

from adapters import bootstrap
from adapters.postgres.listen import ChannelListener
from adapters.postgres.outbox import PostgresOutbox
from adapters.postgres.personal_data import PII
from adapters.sqs import SqsQueue, create_queues, sqs_client
from application.context import CommandContext
from application.fans import CreateFan, create_fan
from application.messages import MessageCommand, QueueMessage, queue_message, retry_message
from application.queue import (
    MessageQueue,
    OutgoingMessage,
    QueueName,
    ReceivedMessage,
    SendResult,
)
from domain.fan import fan_stream_id
from domain.message import message_stream_id
from tests.support.moto import CREDENTIALS, REGION
from tests.support.settings import settings_for
from worker import relay as relay_module
from worker.relay import Relay

pytestmark = pytest.mark.timeout(60)

ROOT = Path(__file__).resolve().parents[2]
# Received messages stay hidden this long: nothing reappears while a test counts.
HIDDEN = 600
FAST_RETRIES = (0.05, 0.1, 0.2)


# --- helpers ---------------------------------------------------------------------------------


def context(tenant: str) -> CommandContext:
    return CommandContext(tenant=tenant, actor=f"{tenant}:key", correlation_id=uuid.uuid4().hex)


def new_tenant() -> str:
    return f"user-{uuid.uuid4().hex[:12]}"


async def make_fans(container: bootstrap.Container, tenant: str, count: int) -> list[int]:
    fans = []
    for i in range(count):
        changed = await create_fan(
            CreateFan(name=f"Fan {i}", handle=f"@fan{i}"),
            context(tenant),
            store=container.events,
            ids=container.ids,
        )
        fans.append(changed.fan.fan_id)
    return fans


async def send(
    container: bootstrap.Container,
    tenant: str,
    fan_id: int,
    *,
    priority: int = 5,
    price_cents: int = 0,
    content: str | None = None,
    media_urls: tuple[str, ...] = (),
) -> str:
    accepted = await queue_message(
        QueueMessage(
            recipient_id=fan_id,
            content=content or f"hello {uuid.uuid4().hex}",
            priority=priority,
            price_cents=price_cents,
            media_urls=media_urls,
        ),
        context(tenant),
        store=container.events,
        ids=container.ids,
    )
    assert accepted.created
    return accepted.message_id


async def send_many(
    container: bootstrap.Container, tenant: str, fans: list[int], count: int
) -> dict[str, QueueName]:
    """``count`` messages spread over the fans and both priorities: message id -> its queue."""
    queued: dict[str, QueueName] = {}
    # One message per fan first, one at a time: it opens the fan's conversation, which two
    # concurrent first messages would contend for.
    for i, fan_id in enumerate(fans[:count]):
        priority = 9 if i % 4 == 0 else 5
        queued[await send(container, tenant, fan_id, priority=priority)] = _queue_of(priority)
    gate = asyncio.Semaphore(16)

    async def one(i: int) -> None:
        priority = 9 if i % 4 == 0 else 5
        async with gate:
            message_id = await send(container, tenant, fans[i % len(fans)], priority=priority)
        queued[message_id] = _queue_of(priority)

    await asyncio.gather(*(one(i) for i in range(len(queued), count)))
    return queued


def _queue_of(priority: int) -> QueueName:
    return "high" if priority >= 8 else "normal"


def message_id_of(body: str) -> str:
    return str(json.loads(body)["messageId"])


async def drain(queue: MessageQueue, name: QueueName) -> list[ReceivedMessage]:
    """Receive every message on the queue (hidden for the rest of the test, not deleted)."""
    hidden_before = (await queue.stats(name)).in_flight
    got: list[ReceivedMessage] = []
    empty = 0
    while empty < 2:  # SQS may answer nothing while messages remain: ask twice
        batch = await queue.receive(name, visibility_timeout=HIDDEN)
        got += batch
        empty = 0 if batch else empty + 1
    stats = await queue.stats(name)
    assert (stats.visible, stats.in_flight) == (0, hidden_before + len(got))
    return got


async def on_queues(queue: MessageQueue) -> dict[QueueName, Counter[str]]:
    """How many times each message id is on each queue."""
    return {
        name: Counter(message_id_of(m.body) for m in await drain(queue, name))
        for name in ("high", "normal")
    }


def exactly_once(found: dict[QueueName, Counter[str]], queued: dict[str, QueueName]) -> None:
    for name in ("high", "normal"):
        expected = {message_id for message_id, q in queued.items() if q == name}
        assert set(found[name]) == expected, f"wrong messages on {name}"
        twice = {message_id: n for message_id, n in found[name].items() if n != 1}
        assert not twice, f"sent more than once on {name}: {twice}"


async def event_types(container: bootstrap.Container, message_id: str) -> list[str]:
    """The message's events, whichever tenant's it is (each test's ids are its own)."""
    rows = await container.pool.fetch(
        "SELECT event_type FROM events WHERE stream_type = 'message'"
        " AND right(stream_id, 36) = $1 ORDER BY version",
        message_id,
    )
    return [row["event_type"] for row in rows]


async def outbox_rows(container: bootstrap.Container) -> list[dict[str, Any]]:
    rows = await container.pool.fetch(
        "SELECT message_id, attempts, last_error, next_attempt_at > now() AS later,"
        " extract(epoch FROM next_attempt_at - now()) AS due_in FROM outbox ORDER BY id"
    )
    return [dict(row) for row in rows]


async def poll_until(condition: Callable[[], Awaitable[bool]], interval: float = 0.01) -> None:
    """Wait for a condition (callers bound the wait with asyncio.timeout)."""
    while True:
        if await condition():
            return
        await asyncio.sleep(interval)


async def relay_until_empty(relay: Relay, interval: float = 0.01) -> int:
    """Repeated passes until the outbox is empty; returns how many passes settled rows."""
    passes = 0
    while await relay.outbox.pending():
        if await relay.run_once():
            passes += 1
        else:
            await asyncio.sleep(interval)
    return passes


class Wrapped:
    """A MessageQueue that passes everything on to ``inner``; subclasses change sending."""

    def __init__(self, inner: MessageQueue) -> None:
        self.inner = inner

    async def send_batch(
        self, queue: QueueName, messages: Sequence[OutgoingMessage]
    ) -> list[SendResult]:
        return await self.inner.send_batch(queue, messages)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


class Outage(Wrapped):
    """The queue refuses each message's first ``failing`` send attempts (every one if
    infinite), the whole call raising, after ``hang`` seconds, as a client does when it cannot
    reach the queue. Remembers when each message was tried."""

    def __init__(self, inner: MessageQueue, failing: float = math.inf, hang: float = 0) -> None:
        super().__init__(inner)
        self.failing = failing
        self.hang = hang
        self.tries: dict[str, list[float]] = defaultdict(list)

    async def send_batch(
        self, queue: QueueName, messages: Sequence[OutgoingMessage]
    ) -> list[SendResult]:
        now = asyncio.get_running_loop().time()
        ids = [message_id_of(m.body) for m in messages]
        for message_id in ids:
            self.tries[message_id].append(now)
        if any(len(self.tries[message_id]) <= self.failing for message_id in ids):
            await asyncio.sleep(self.hang)
            raise ConnectionError("could not connect to the queue endpoint")
        return await self.inner.send_batch(queue, messages)


class FailOneEntry(Wrapped):
    """The first batch comes back with one entry failed (index ``index``), the rest sent."""

    def __init__(self, inner: MessageQueue, index: int) -> None:
        super().__init__(inner)
        self.index = index
        self.failed: str | None = None
        self.batches: list[list[str]] = []

    async def send_batch(
        self, queue: QueueName, messages: Sequence[OutgoingMessage]
    ) -> list[SendResult]:
        self.batches.append([message_id_of(m.body) for m in messages])
        if self.failed is not None:
            return await self.inner.send_batch(queue, messages)
        chosen = messages[self.index]
        self.failed = message_id_of(chosen.body)
        others = [m for m in messages if m is not chosen]
        results = {r.entry_id: r for r in await self.inner.send_batch(queue, others)}
        results[chosen.entry_id] = SendResult(
            entry_id=chosen.entry_id, ok=False, error="InternalError: injected for this entry"
        )
        return [results[m.entry_id] for m in messages]


class Counting(Wrapped):
    def __init__(self, inner: MessageQueue) -> None:
        super().__init__(inner)
        self.sent = 0

    async def send_batch(
        self, queue: QueueName, messages: Sequence[OutgoingMessage]
    ) -> list[SendResult]:
        results = await self.inner.send_batch(queue, messages)
        self.sent += sum(r.ok for r in results)
        return results


# --- fixtures --------------------------------------------------------------------------------


@pytest.fixture
async def fresh(fresh_database_url: str) -> AsyncIterator[bootstrap.Container]:
    container = await bootstrap.build(settings_for(fresh_database_url))
    try:
        yield container
    finally:
        await container.close()


@pytest.fixture
def fast_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(relay_module, "RETRY_DELAYS", FAST_RETRIES)


@pytest.fixture(params=["postgres", "sqs"])
async def queue(
    request: pytest.FixtureRequest, fresh: bootstrap.Container
) -> AsyncIterator[MessageQueue]:
    """The queue under test: the container's Postgres queue, or fresh queues on moto."""
    if request.param == "postgres":
        yield fresh.queue
        return
    # moto starts only for the SQS cases (a synchronous fixture, so asked for by name).
    endpoint = request.getfixturevalue("sqs_endpoint_url")
    async with sqs_client(endpoint_url=endpoint, region_name=REGION, **CREDENTIALS) as client:
        urls = await create_queues(client, prefix=f"relay{uuid.uuid4().hex[:12]}")
        yield SqsQueue(client, urls)


def free_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# --- the happy path --------------------------------------------------------------------------


async def test_a_sent_message_is_on_its_queue_sealed_and_dispatched(
    fresh: bootstrap.Container, queue: MessageQueue
) -> None:
    tenant = new_tenant()
    async with asyncio.timeout(30):
        fan_a, fan_b = await make_fans(fresh, tenant, 2)
        wanted = [  # (fan, priority, price): priorities 8 and up are replies, on "high"
            (fan_a, 8, 0),
            (fan_b, 10, 500),
            (fan_a, 7, 1_000),
            (fan_b, 5, 0),
            (fan_a, 1, 20_000),
        ]
        queued: dict[str, tuple[int, int, int, str]] = {}
        for fan_id, priority, price in wanted:
            content = f"secret words {uuid.uuid4().hex}"
            message_id = await send(
                fresh,
                tenant,
                fan_id,
                priority=priority,
                price_cents=price,
                content=content,
                media_urls=("https://cdn.example.com/p/very-private.jpg",),
            )
            queued[message_id] = (fan_id, priority, price, content)
        assert await fresh.outbox.pending() == 5

        relay = Relay(fresh.outbox, queue, fresh.events)
        assert await relay.run_once() == 5

        received = {name: await drain(queue, name) for name in ("high", "normal")}
        assert await fresh.outbox.pending() == 0
        assert await relay.run_once() == 0

    by_id = {}
    for name, messages in received.items():
        for message in messages:
            body = json.loads(message.body)
            assert body["messageId"] not in by_id, "sent twice"
            by_id[body["messageId"]] = (name, body, message)
    assert set(by_id) == set(queued)
    for message_id, (fan_id, priority, price, content) in queued.items():
        name, body, message = by_id[message_id]
        assert name == ("high" if priority >= 8 else "normal")
        assert body["messageId"] == message_id
        assert body["tenant"] == tenant
        assert body["recipientId"] == fan_id
        assert body["priority"] == priority
        assert body["priceCents"] == price
        assert body["attempt"] == 1
        # Personal data travels sealed under the fan's key, never in clear.
        assert "content" not in body
        assert "media" not in body
        assert content not in message.body
        assert "very-private" not in message.body
        assert isinstance(body[PII], str)
        assert body[PII]
        async with fresh.pool.acquire() as conn:
            opened = await fresh.events._personal.open_body(conn, body, fan_stream_id(fan_id))
        assert opened["content"] == content
        assert message.attributes["correlation_id"] == body["correlationId"]

        recorded = await fresh.events.load(message_stream_id(tenant, message_id))
        assert [r.event_type for r in recorded] == ["MessageQueued", "MessageDispatched"]
        dispatched = recorded[-1].event
        assert dispatched.queue == name  # type: ignore[attr-defined]


# --- outages ---------------------------------------------------------------------------------


async def test_while_the_queue_is_down_rows_stay_and_back_off(
    fresh: bootstrap.Container,
) -> None:
    tenant = new_tenant()
    async with asyncio.timeout(30):
        fans = await make_fans(fresh, tenant, 3)
        queued = [await send(fresh, tenant, fan_id, priority=p) for fan_id in fans for p in (9, 5)]
        # Each call hangs a while before failing, as a call to an unreachable queue does.
        down = Outage(fresh.queue, hang=0.3)
        relay = Relay(fresh.outbox, down, fresh.events)

        assert await relay.run_once() == 6

        rows = await outbox_rows(fresh)
        assert sorted(row["message_id"] for row in rows) == sorted(queued)
        for row in rows:
            assert row["attempts"] == 1
            assert row["later"], "rescheduled in the future"
            # The real schedule: the first retry waits 1 s, counted from the failure (not
            # from the start of the pass, 0.6 s earlier).
            assert 0.8 < float(row["due_in"]) <= 1.0
            assert "could not connect to the queue endpoint" in row["last_error"]
        # Not due yet: the next pass takes nothing and tries nothing.
        assert await relay.run_once() == 0
        assert all(len(tries) == 1 for tries in down.tries.values())
        for message_id in queued:
            assert await event_types(fresh, message_id) == ["MessageQueued"]
        assert (await fresh.queue.stats("high")).visible == 0
        assert (await fresh.queue.stats("normal")).visible == 0


async def test_while_sqs_is_unreachable_rows_stay_and_back_off(
    fresh: bootstrap.Container,
) -> None:
    """The SQS adapter pointed at a port nothing listens on: its client's error fails the pass."""
    tenant = new_tenant()
    endpoint = f"http://127.0.0.1:{free_port()}"
    urls = {key: f"{endpoint}/123456789012/dead-{key}" for key in ("high", "normal")}
    urls |= {f"{key}-dlq": url + "-dlq" for key, url in urls.items()}
    async with (
        asyncio.timeout(40),
        sqs_client(endpoint_url=endpoint, region_name=REGION, **CREDENTIALS) as client,
    ):
        (fan_id,) = await make_fans(fresh, tenant, 1)
        # One queue only: each call to a dead endpoint takes seconds of the client's retries.
        queued = [await send(fresh, tenant, fan_id, priority=5) for _ in range(3)]
        relay = Relay(fresh.outbox, SqsQueue(client, urls), fresh.events)

        assert await relay.run_once() == 3

        rows = await outbox_rows(fresh)
        assert sorted(row["message_id"] for row in rows) == sorted(queued)
        for row in rows:
            assert row["attempts"] == 1
            # Due a full first delay after the failed call, however long the call took.
            assert row["later"]
            assert 0.5 < float(row["due_in"]) <= 1.0
            assert "Could not connect to the endpoint URL" in row["last_error"]
        assert await relay.run_once() == 0
        for message_id in queued:
            assert await event_types(fresh, message_id) == ["MessageQueued"]


async def test_an_outage_shorter_than_the_schedule_ends_with_each_message_sent_once(
    fresh: bootstrap.Container,
) -> None:
    """The real schedule, end to end, in the long-running loop: two failed attempts 1 s then
    2 s apart, the third goes through."""
    tenant = new_tenant()
    async with asyncio.timeout(20):
        fans = await make_fans(fresh, tenant, 4)
        queued = {}
        for i, fan_id in enumerate(fans * 3):
            priority = 9 if i % 3 == 0 else 4
            queued[await send(fresh, tenant, fan_id, priority=priority)] = _queue_of(priority)
        flaky = Outage(fresh.queue, failing=2)
        relay = Relay(fresh.outbox, flaky, fresh.events, poll_interval=0.2)
        stop = asyncio.Event()
        running = asyncio.create_task(relay.run(stop))
        try:

            async def all_dispatched() -> bool:
                if await fresh.outbox.pending():
                    return False
                for message_id in queued:
                    if "MessageDispatched" not in await event_types(fresh, message_id):
                        return False
                return True

            await poll_until(all_dispatched, 0.05)
        finally:
            stop.set()
            await running

        exactly_once(await on_queues(fresh.queue), queued)

    assert set(flaky.tries) == set(queued)
    for message_id, tries in flaky.tries.items():
        assert len(tries) == 3, f"{message_id} tried {len(tries)} times"
        first_wait, second_wait = tries[1] - tries[0], tries[2] - tries[1]
        assert 1.0 <= first_wait < 1.6, first_wait
        assert 2.0 <= second_wait < 2.6, second_wait
        assert await event_types(fresh, message_id) == ["MessageQueued", "MessageDispatched"]


async def test_a_long_outage_fails_each_message_and_a_retry_sends_it_once(
    fresh: bootstrap.Container, fast_retries: None
) -> None:
    tenant = new_tenant()
    async with asyncio.timeout(30):
        fans = await make_fans(fresh, tenant, 3)
        queued = {}
        for i, fan_id in enumerate(fans * 4):
            priority = 8 if i % 2 else 3
            queued[await send(fresh, tenant, fan_id, priority=priority)] = _queue_of(priority)
        down = Outage(fresh.queue)
        relay = Relay(fresh.outbox, down, fresh.events)

        await relay_until_empty(relay)

        # The first attempt and one per retry delay, then given up: failed, with the reason.
        assert {len(tries) for tries in down.tries.values()} == {1 + len(FAST_RETRIES)}
        assert set(down.tries) == set(queued)
        for message_id in queued:
            recorded = await fresh.events.load(message_stream_id(tenant, message_id))
            assert [r.event_type for r in recorded] == ["MessageQueued", "MessageFailed"]
            reason = recorded[-1].event.reason  # type: ignore[attr-defined]
            assert "queue unavailable" in reason
            assert "could not connect to the queue endpoint" in reason
        assert await fresh.outbox.pending() == 0
        assert (await fresh.queue.stats("high")).visible == 0
        assert (await fresh.queue.stats("normal")).visible == 0

        # A person retries each one: back in the outbox, and one pass puts each on its queue.
        for message_id in queued:
            await retry_message(
                MessageCommand(message_id=message_id), context(tenant), store=fresh.events
            )
        assert await fresh.outbox.pending() == len(queued)
        healthy = Relay(fresh.outbox, fresh.queue, fresh.events)
        assert await healthy.run_once() == len(queued)
        assert await fresh.outbox.pending() == 0

        found = await on_queues(fresh.queue)
        exactly_once(found, queued)
        for message_id in queued:
            assert await event_types(fresh, message_id) == [
                "MessageQueued",
                "MessageFailed",
                "MessageRequeued",
                "MessageDispatched",
            ]


async def test_a_long_outage_with_the_real_schedule_gives_up_after_seven_seconds(
    fresh: bootstrap.Container,
) -> None:
    """1 s, 2 s and 4 s after the first three failed attempts; the fourth failure is final."""
    tenant = new_tenant()
    async with asyncio.timeout(20):
        (fan_id,) = await make_fans(fresh, tenant, 1)
        queued = [await send(fresh, tenant, fan_id, priority=p) for p in (9, 2)]
        down = Outage(fresh.queue)
        relay = Relay(fresh.outbox, down, fresh.events, poll_interval=0.2)
        stop = asyncio.Event()
        running = asyncio.create_task(relay.run(stop))
        try:

            async def all_failed() -> bool:
                for message_id in queued:
                    if (await event_types(fresh, message_id))[-1] != "MessageFailed":
                        return False
                return True

            await poll_until(all_failed, 0.05)
        finally:
            stop.set()
            await running
        assert await fresh.outbox.pending() == 0

    for message_id in queued:
        tries = down.tries[message_id]
        gaps = [later - earlier for earlier, later in itertools.pairwise(tries)]
        assert len(gaps) == 3, tries
        for gap, delay in zip(gaps, (1.0, 2.0, 4.0), strict=True):
            assert delay <= gap < delay + 0.6, gaps


# --- partial failure -------------------------------------------------------------------------


async def test_one_failed_entry_of_a_batch_is_retried_alone(
    fresh: bootstrap.Container, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Long enough that the failed row is still waiting when the test looks at it.
    monkeypatch.setattr(relay_module, "RETRY_DELAYS", (0.5, 0.5, 0.5))
    tenant = new_tenant()
    async with asyncio.timeout(30):
        fans = await make_fans(fresh, tenant, 5)
        queued = {}
        for fan_id in fans * 2:
            queued[await send(fresh, tenant, fan_id, priority=5)] = _queue_of(5)
        one_fails = FailOneEntry(fresh.queue, index=3)
        relay = Relay(fresh.outbox, one_fails, fresh.events)

        assert await relay.run_once() == 10
        assert len(one_fails.batches) == 1
        assert sorted(one_fails.batches[0]) == sorted(queued)
        failed = one_fails.failed
        assert failed is not None
        [row] = await outbox_rows(fresh)
        assert row["message_id"] == failed
        assert row["attempts"] == 1
        assert row["later"]
        assert row["last_error"] == "InternalError: injected for this entry"
        first = Counter(message_id_of(m.body) for m in await drain(fresh.queue, "normal"))
        assert set(first) == set(queued) - {failed}
        assert set(first.values()) == {1}
        for message_id in queued:
            expected = ["MessageQueued"] + ([] if message_id == failed else ["MessageDispatched"])
            assert await event_types(fresh, message_id) == expected

        assert await relay_until_empty(relay) == 1
        assert one_fails.batches[1:] == [[failed]]

        again = Counter(message_id_of(m.body) for m in await drain(fresh.queue, "normal"))
        assert again == Counter({failed: 1})
        for message_id in queued:
            assert await event_types(fresh, message_id) == ["MessageQueued", "MessageDispatched"]


# --- concurrency -----------------------------------------------------------------------------


async def test_two_relays_at_once_put_each_of_a_thousand_messages_on_the_queue_once(
    fresh: bootstrap.Container, fresh_database_url: str
) -> None:
    tenant = new_tenant()
    other = await bootstrap.build(settings_for(fresh_database_url))
    try:
        async with asyncio.timeout(50):
            fans = await make_fans(fresh, tenant, 20)
            queued = await send_many(fresh, tenant, fans, 1_000)
            assert len(queued) == 1_000
            assert await fresh.outbox.pending() == 1_000

            queues = [Counting(fresh.queue), Counting(other.queue)]
            relays = [
                Relay(fresh.outbox, queues[0], fresh.events, poll_interval=0.05),
                Relay(other.outbox, queues[1], other.events, poll_interval=0.05),
            ]
            stop = asyncio.Event()
            running = [asyncio.create_task(relay.run(stop)) for relay in relays]
            try:

                async def emptied() -> bool:
                    return await fresh.outbox.pending() == 0

                await poll_until(emptied, 0.02)
            finally:
                stop.set()
                await asyncio.gather(*running)

            exactly_once(await on_queues(fresh.queue), queued)
            assert [q.sent > 0 for q in queues] == [True, True], "both relays took a share"
            assert sum(q.sent for q in queues) == 1_000
            dispatched = await fresh.pool.fetch(
                "SELECT stream_id, count(*) AS n FROM events"
                " WHERE event_type = 'MessageDispatched' GROUP BY stream_id"
            )
            assert {row["stream_id"]: row["n"] for row in dispatched} == {
                message_stream_id(tenant, message_id): 1 for message_id in queued
            }
    finally:
        await other.close()


# --- a relay killed between SendMessageBatch and its commit -----------------------------------

# A relay process whose queue, once its first SendMessageBatch has succeeded, prints the ids it
# sent and SIGKILLs its own process: the claim's transaction never commits. Its second
# argument is the batch size the queue declares (0: the Postgres queue's own).
KILLED_RELAY = """
import asyncio, json, os, signal, sys
from adapters import bootstrap
from adapters.config import Settings
from worker.relay import Relay

class DiesAfterFirstBatch:
    def __init__(self, inner, max_batch):
        self.inner = inner
        self.max_batch = max_batch or inner.max_batch

    async def send_batch(self, queue, messages):
        results = await self.inner.send_batch(queue, messages)
        sent = [json.loads(m.body)["messageId"] for m, r in zip(messages, results) if r.ok]
        sys.stdout.write(json.dumps({"queue": queue, "sent": sent}) + "\\n")
        sys.stdout.flush()
        os.kill(os.getpid(), signal.SIGKILL)

    def __getattr__(self, name):
        return getattr(self.inner, name)

async def main(url, max_batch):
    settings = Settings.from_env(os.environ, database_url=url, pool_min_size=1, pool_max_size=3)
    container = await bootstrap.build(settings)
    queue = DiesAfterFirstBatch(container.queue, max_batch)
    relay = Relay(container.outbox, queue, container.events)
    await relay.run_once()
    print("survived", flush=True)

asyncio.run(main(sys.argv[1], int(sys.argv[2])))
"""


async def run_killed_relay(database_url: str, max_batch: int) -> dict[str, Any]:
    """Runs KILLED_RELAY to its SIGKILL; returns the batch it reported sent."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        KILLED_RELAY,
        database_url,
        str(max_batch),
        cwd=ROOT,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    stdout, stderr = await proc.communicate()
    assert proc.returncode == -signal.SIGKILL, stderr.decode()[-3000:]
    return dict(json.loads(stdout.decode().splitlines()[0]))


async def test_a_relay_killed_after_sending_before_committing_loses_nothing(
    fresh: bootstrap.Container, fresh_database_url: str
) -> None:
    tenant = new_tenant()
    async with asyncio.timeout(40):
        fans = await make_fans(fresh, tenant, 7)
        queued = {}
        for i, fan_id in enumerate(fans * 5):
            priority = 10 if i % 5 == 0 else 6
            queued[await send(fresh, tenant, fan_id, priority=priority)] = _queue_of(priority)
        assert await fresh.outbox.pending() == 35

        # Batches of ten, as the relay sends them to SQS.
        killed_batch = await run_killed_relay(fresh_database_url, 10)
        first_sent = set(killed_batch["sent"])
        # One batch: up to ten messages, all of one queue.
        on_that_queue = {m for m, q in queued.items() if q == killed_batch["queue"]}
        assert first_sent <= on_that_queue
        assert len(first_sent) == min(10, len(on_that_queue))

        # The claim never committed: every row is still there, none counted as an attempt.
        rows = await outbox_rows(fresh)
        assert sorted(row["message_id"] for row in rows) == sorted(queued)
        assert {row["attempts"] for row in rows} == {0}
        for message_id in queued:
            assert await event_types(fresh, message_id) == ["MessageQueued"]

        # Restarted: a normal relay (it waits, if need be, until the server has ended the
        # killed process's transaction and released its row locks).
        relay = Relay(fresh.outbox, fresh.queue, fresh.events)
        await relay_until_empty(relay)

        found = await on_queues(fresh.queue)

    # Nothing lost; the only duplicates are the killed pass's batches (the one it reported,
    # and any of the few in flight with it), each sent twice with the same message id in its
    # body (the sender drops the second).
    for name in ("high", "normal"):
        expected = {message_id for message_id, q in queued.items() if q == name}
        assert set(found[name]) == expected
    duplicates = {
        message_id: n for counts in found.values() for message_id, n in counts.items() if n > 1
    }
    assert set(duplicates.values()) == {2}
    assert first_sent <= set(duplicates)
    assert len(duplicates) <= relay_module.SENDS_IN_FLIGHT * 10
    for message_id in queued:
        assert await event_types(fresh, message_id) == ["MessageQueued", "MessageDispatched"]


# --- wake-ups --------------------------------------------------------------------------------


async def test_an_idle_relay_wakes_on_notify_well_before_its_poll_interval(
    fresh: bootstrap.Container, fresh_database_url: str
) -> None:
    tenant = new_tenant()
    loop = asyncio.get_running_loop()
    listener = ChannelListener(fresh_database_url, "outbox")
    await listener.ensure()
    relay = Relay(fresh.outbox, fresh.queue, fresh.events, wake=listener.notified, poll_interval=10)
    stop = asyncio.Event()
    running = asyncio.create_task(relay.run(stop))
    try:
        async with asyncio.timeout(20):
            fans = await make_fans(fresh, tenant, 3)
            for fan_id in fans:
                await asyncio.sleep(0.3)  # idle: waiting on its 10 s poll
                queued_at = loop.time()
                message_id = await send(fresh, tenant, fan_id, priority=9)

                async def arrived(message_id: str = message_id) -> bool:
                    got = await fresh.queue.receive("high", visibility_timeout=HIDDEN)
                    assert [message_id_of(m.body) for m in got] in ([], [message_id])
                    return bool(got)

                await poll_until(arrived, 0.005)
                assert loop.time() - queued_at < 1.0
    finally:
        stop.set()
        await running
        await listener.close()


class NotifiedWhileIdling(PostgresOutbox):
    """An outbox through which a test slips a message in at the worst moment: after the
    relay's pass found nothing and while it asks when the next row is due, so that the
    message's NOTIFY arrives before the relay starts waiting."""

    def __init__(self, inner: PostgresOutbox, slip: Callable[[], Awaitable[None]]) -> None:
        super().__init__(inner._pool)
        self.slip: Callable[[], Awaitable[None]] | None = slip

    async def seconds_until_due(self) -> float | None:
        due = await super().seconds_until_due()
        if self.slip is not None:
            slip, self.slip = self.slip, None
            await slip()
        return due


async def test_a_notify_arriving_as_the_relay_goes_idle_is_not_lost(
    fresh: bootstrap.Container, fresh_database_url: str
) -> None:
    tenant = new_tenant()
    loop = asyncio.get_running_loop()
    listener = ChannelListener(fresh_database_url, "outbox")
    await listener.ensure()
    (fan_id,) = await make_fans(fresh, tenant, 1)
    sent: list[tuple[str, float]] = []

    async def slip() -> None:
        listener.notified.clear()
        sent.append((await send(fresh, tenant, fan_id, priority=9), loop.time()))
        await asyncio.wait_for(listener.notified.wait(), 5)

    outbox = NotifiedWhileIdling(fresh.outbox, slip)
    relay = Relay(outbox, fresh.queue, fresh.events, wake=listener.notified, poll_interval=10)
    stop = asyncio.Event()
    running = asyncio.create_task(relay.run(stop))
    try:
        async with asyncio.timeout(20):

            async def slipped() -> bool:
                return bool(sent)

            await poll_until(slipped, 0.005)
            [(message_id, queued_at)] = sent

            async def arrived() -> bool:
                return bool(await fresh.queue.receive("high", visibility_timeout=HIDDEN))

            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(3):
                    await poll_until(arrived, 0.01)
            assert loop.time() - queued_at < 1.0, "the relay slept through the notification"

            async def dispatched() -> bool:
                return await event_types(fresh, message_id) == [
                    "MessageQueued",
                    "MessageDispatched",
                ]

            await poll_until(dispatched)
    finally:
        stop.set()
        await running
        await listener.close()


async def test_the_relay_takes_a_reply_before_a_backlog_of_bulk_rows(
    fresh_database_url: str,
) -> None:
    container = await bootstrap.build(settings_for(fresh_database_url))
    try:
        tenant = new_tenant()
        [fan] = await make_fans(container, tenant, 1)
        for _ in range(30):
            await send(container, tenant, fan, priority=5)
        reply = await send(container, tenant, fan, priority=9)

        async with container.outbox.claim(10) as claimed:
            taken = [row.message_id for row in claimed.rows]

        assert taken[0] == reply
        assert len(taken) == 10
    finally:
        await container.close()


async def test_a_relay_killed_after_a_whole_claim_batch_loses_nothing(
    fresh: bootstrap.Container, fresh_database_url: str
) -> None:
    # The Postgres queue takes the claim's rows of one queue in one batch: killed after it,
    # the relay re-sends at most the claim, each message once more, and loses nothing.
    tenant = new_tenant()
    async with asyncio.timeout(40):
        fans = await make_fans(fresh, tenant, 8)
        queued = {}
        for i, fan_id in enumerate(fans * 4):
            priority = 10 if i % 8 == 0 else 6
            queued[await send(fresh, tenant, fan_id, priority=priority)] = _queue_of(priority)

        killed_batch = await run_killed_relay(fresh_database_url, 0)
        on_that_queue = {m for m, q in queued.items() if q == killed_batch["queue"]}
        assert set(killed_batch["sent"]) == on_that_queue  # 4 or 28 in one batch
        assert sorted(row["message_id"] for row in await outbox_rows(fresh)) == sorted(queued)

        await relay_until_empty(Relay(fresh.outbox, fresh.queue, fresh.events))
        found = await on_queues(fresh.queue)

    for name in ("high", "normal"):
        assert set(found[name]) == {m for m, q in queued.items() if q == name}
    duplicates = {m: n for counts in found.values() for m, n in counts.items() if n > 1}
    assert set(killed_batch["sent"]) <= set(duplicates)
    assert set(duplicates.values()) == {2}
    for message_id in queued:
        assert await event_types(fresh, message_id) == ["MessageQueued", "MessageDispatched"]


# --- batch sizes -----------------------------------------------------------------------------


class Batches(Wrapped):
    """Records the size of each batch sent; ``max_batch`` overrides the inner queue's."""

    def __init__(self, inner: MessageQueue, max_batch: int | None = None) -> None:
        super().__init__(inner)
        if max_batch is not None:
            self.max_batch = max_batch
        self.sizes: list[tuple[QueueName, int]] = []

    async def send_batch(
        self, queue: QueueName, messages: Sequence[OutgoingMessage]
    ) -> list[SendResult]:
        self.sizes.append((queue, len(messages)))
        return await self.inner.send_batch(queue, messages)


@pytest.mark.parametrize(("max_batch", "expected"), [(None, [9, 36]), (10, [9, 10, 10, 10, 6])])
async def test_the_relay_sends_batches_as_large_as_the_queue_takes(
    fresh: bootstrap.Container, max_batch: int | None, expected: list[int]
) -> None:
    tenant = new_tenant()
    async with asyncio.timeout(30):
        fans = await make_fans(fresh, tenant, 9)
        queued = {}
        for i, fan_id in enumerate(fans * 5):
            priority = 9 if i < 9 else 5
            queued[await send(fresh, tenant, fan_id, priority=priority)] = _queue_of(priority)
        batches = Batches(fresh.queue, max_batch)

        assert await Relay(fresh.outbox, batches, fresh.events).run_once() == 45

        assert sorted(size for _, size in batches.sizes) == sorted(expected)
        assert {queue for queue, size in batches.sizes if size == 9} == {"high"}
        exactly_once(await on_queues(fresh.queue), queued)


async def test_one_failed_entry_of_a_batch_larger_than_ten_is_retried_alone(
    fresh: bootstrap.Container, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(relay_module, "RETRY_DELAYS", FAST_RETRIES)
    tenant = new_tenant()
    async with asyncio.timeout(30):
        fans = await make_fans(fresh, tenant, 5)
        queued = {}
        for fan_id in fans * 5:
            queued[await send(fresh, tenant, fan_id, priority=5)] = _queue_of(5)
        one_fails = FailOneEntry(fresh.queue, index=17)
        relay = Relay(fresh.outbox, one_fails, fresh.events)

        assert await relay.run_once() == 25
        assert [len(batch) for batch in one_fails.batches] == [25]
        failed = one_fails.failed
        assert [row["message_id"] for row in await outbox_rows(fresh)] == [failed]

        await relay_until_empty(relay)
        assert one_fails.batches[1:] == [[failed]]
        exactly_once(await on_queues(fresh.queue), queued)
        for message_id in queued:
            assert await event_types(fresh, message_id) == ["MessageQueued", "MessageDispatched"]


# --- upkeep ----------------------------------------------------------------------------------


async def test_the_relay_vacuums_the_outbox_every_so_many_rows(
    fresh: bootstrap.Container,
) -> None:
    # A dozen dead rows: far below autovacuum's threshold, so only the relay vacuums here.
    async def vacuums() -> int:
        return int(
            await fresh.pool.fetchval(
                "SELECT vacuum_count FROM pg_stat_user_tables WHERE relname = 'outbox'"
            )
        )

    tenant = new_tenant()
    async with asyncio.timeout(30):
        fans = await make_fans(fresh, tenant, 6)
        for fan_id in fans * 2:
            await send(fresh, tenant, fan_id, priority=5)
        before = await vacuums()
        relay = Relay(PostgresOutbox(fresh.pool, vacuum_every=10), fresh.queue, fresh.events)

        assert await relay.run_once() == 12
        assert await vacuums() == before + 1
        assert await fresh.outbox.pending() == 0
