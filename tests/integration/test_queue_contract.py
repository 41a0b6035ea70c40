"""One contract for both MessageQueue adapters: PostgresQueue on a fresh database, SqsQueue on
moto's SQS server. Each test gets queues of its own (a random name prefix).

Not in the contract, so tested per adapter below: SQS documents that a stale receipt "might
not" delete the message, and moto does delete with it (it accepts every receipt a message ever
had), so only the Postgres adapter promises that a stale receipt does nothing. Order is not
part of the contract either: SQS standard queues do not keep it.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import asyncpg
import pytest

from adapters.postgres.pool import create_pool
from adapters.postgres.queue import PostgresQueue, QueuePolicy
from adapters.sqs import SqsBatchError, SqsQueue, create_queues, queue_urls, sqs_client
from application.queue import (
    MessageQueue,
    OutgoingMessage,
    QueueName,
    QueueStats,
    ReceivedMessage,
)
from tests.support import databases
from tests.support.moto import CREDENTIALS, REGION
from worker import relay as relay_module

pytestmark = pytest.mark.timeout(60)

MakeQueue = Callable[..., Awaitable[MessageQueue]]
# Long enough that nothing reappears while a test runs, short enough to notice if it does.
HIDDEN = 30
# The shortest visibility timeout SQS (and so moto) takes: whole seconds.
SHORT = 1
PAST_SHORT = 1.3


def prefix() -> str:
    return f"t{uuid.uuid4().hex[:12]}"


def message(entry_id: str, body: str | None = None, **attributes: str) -> OutgoingMessage:
    return OutgoingMessage(
        entry_id=entry_id, body=body or f"body of {entry_id}", attributes=attributes
    )


@pytest.fixture(scope="module")
async def queue_pool(test_server: databases.TestServer) -> AsyncIterator[asyncpg.Pool]:
    pool = await create_pool(await test_server.clone(), min_size=1, max_size=10)
    yield pool
    await pool.close()


@pytest.fixture(scope="module")
async def sqs(sqs_endpoint_url: str) -> AsyncIterator[Any]:
    async with sqs_client(endpoint_url=sqs_endpoint_url, region_name=REGION, **CREDENTIALS) as c:
        yield c


@pytest.fixture(params=["postgres", "sqs"])
async def make_queue(
    request: pytest.FixtureRequest, queue_pool: asyncpg.Pool, sqs: Any
) -> AsyncIterator[MakeQueue]:
    """Makes a queue pair of the adapter under test, with these redrive and visibility
    settings; closes what it made."""
    made: list[PostgresQueue] = []

    async def make(*, max_receive_count: int = 5, visibility_timeout: int = HIDDEN) -> Any:
        if request.param == "postgres":
            queue = PostgresQueue(
                queue_pool,
                visibility_timeout=visibility_timeout,
                max_receive_count=max_receive_count,
                prefix=prefix(),
            )
            made.append(queue)
            return queue
        urls = await create_queues(
            sqs,
            prefix=prefix(),
            max_receive_count=max_receive_count,
            visibility_timeout=visibility_timeout,
        )
        return SqsQueue(sqs, urls)

    yield make
    for queue in made:
        await queue.close()


async def take(
    queue: MessageQueue, name: QueueName, count: int, *, visibility_timeout: float = HIDDEN
) -> list[ReceivedMessage]:
    """Receive until ``count`` messages came (SQS may answer with fewer than there are)."""
    got: list[ReceivedMessage] = []
    deadline = time.monotonic() + 10
    while len(got) < count and time.monotonic() < deadline:
        got += await queue.receive(
            name,
            max_messages=min(10, count - len(got)),
            visibility_timeout=visibility_timeout,
            wait_seconds=1,
        )
    return got


async def test_roundtrip_keeps_body_and_attributes(make_queue: MakeQueue) -> None:
    queue = await make_queue()
    body = '{"text": "Hé 👋 — line\\nbreak", "price": 500}'
    results = await queue.send_batch(
        "high", [message("m1", body, messageId="msg-42", creator="creator-7")]
    )
    assert [(r.entry_id, r.ok, r.error) for r in results] == [("m1", True, None)]

    [got] = await take(queue, "high", 1)
    assert got.body == body
    assert got.attributes == {"messageId": "msg-42", "creator": "creator-7"}
    assert got.receive_count == 1
    assert got.message_id
    assert got.receipt

    await queue.delete("high", [got.receipt])
    assert await queue.receive("high") == []
    stats = await queue.stats("high")
    assert (stats.visible, stats.in_flight, stats.dead_letters) == (0, 0, 0)


@pytest.mark.parametrize(
    ("invalid", "reason"),
    [
        (OutgoingMessage(entry_id="bad", body="x" * (256 * 1024 + 1)), "MessageTooLong"),
        (OutgoingMessage(entry_id="bad", body="nul \x00 inside"), "InvalidMessageContents"),
        (OutgoingMessage(entry_id="bad", body="ok", attributes={"a": ""}), "empty value"),
        (OutgoingMessage(entry_id="bad", body="ok", attributes={"AWS.x": "1"}), "not allowed"),
    ],
    ids=["too-large", "nul-character", "empty-attribute", "reserved-attribute-name"],
)
async def test_one_invalid_entry_fails_alone(
    make_queue: MakeQueue, invalid: OutgoingMessage, reason: str
) -> None:
    queue = await make_queue()
    batch = [message(f"e{i}", kind="bulk") for i in range(9)]
    batch.insert(4, invalid)

    results = await queue.send_batch("normal", batch)

    assert [r.entry_id for r in results] == [m.entry_id for m in batch]
    assert [r.entry_id for r in results if r.ok] == [f"e{i}" for i in range(9)]
    [failed] = [r for r in results if not r.ok]
    assert failed.entry_id == "bad"
    assert failed.error is not None
    assert reason in failed.error
    got = await take(queue, "normal", 9)
    assert sorted(m.body for m in got) == sorted(m.body for m in batch if m.entry_id != "bad")
    await queue.delete("normal", [m.receipt for m in got])
    assert (await queue.stats("normal")).in_flight == 0


async def test_more_entries_than_max_batch_are_refused(make_queue: MakeQueue) -> None:
    queue = await make_queue()
    too_many = queue.max_batch + 1
    with pytest.raises(ValueError, match=f"at most {queue.max_batch}"):
        await queue.send_batch("normal", [message(f"e{i}") for i in range(too_many)])
    with pytest.raises(ValueError, match="repeat"):
        await queue.send_batch("normal", [message("same"), message("same")])
    with pytest.raises(ValueError, match="entry id"):
        await queue.send_batch("normal", [message("no spaces allowed")])
    assert (await queue.stats("normal")).visible == 0


async def test_a_full_batch_is_sent_with_its_one_invalid_entry_failing_alone(
    make_queue: MakeQueue,
) -> None:
    queue = await make_queue()
    batch = [message(f"e{i}", f"body {i}", kind="bulk") for i in range(queue.max_batch - 1)]
    batch.insert(len(batch) // 2, OutgoingMessage(entry_id="bad", body="nul \x00 here"))

    results = await queue.send_batch("normal", batch)

    assert [r.entry_id for r in results] == [m.entry_id for m in batch]
    assert [r.entry_id for r in results if not r.ok] == ["bad"]
    got = await take(queue, "normal", len(batch) - 1)
    assert sorted(m.body for m in got) == sorted(m.body for m in batch if m.entry_id != "bad")
    assert {m.attributes["kind"] for m in got} == {"bulk"}
    await queue.delete("normal", [m.receipt for m in got])
    assert await queue.stats("normal") == QueueStats(visible=0, in_flight=0, dead_letters=0)


def test_sqs_takes_ten_per_batch_and_postgres_a_relay_claim() -> None:
    # SendMessageBatch's hard limit; the Postgres queue sends a relay's whole claim in one INSERT.
    assert SqsQueue.max_batch == 10
    assert PostgresQueue.max_batch >= relay_module.CLAIM_LIMIT


async def test_batch_larger_than_one_request_in_total_is_sent(make_queue: MakeQueue) -> None:
    # Each message is valid, but together they exceed what one SendMessageBatch may carry.
    queue = await make_queue()
    big = [message(f"big{i}", str(i) * (200 * 1024)) for i in range(3)]

    results = await queue.send_batch("normal", big)

    assert all(r.ok for r in results)
    assert len(await take(queue, "normal", 3)) == 3


async def test_receive_takes_at_most_max_messages(make_queue: MakeQueue) -> None:
    queue = await make_queue()
    await queue.send_batch("normal", [message(f"e{i}") for i in range(5)])

    got = await queue.receive("normal", max_messages=2, wait_seconds=1)

    assert 1 <= len(got) <= 2
    for bad in (0, 11):
        with pytest.raises(ValueError, match="max_messages"):
            await queue.receive("normal", max_messages=bad)
    with pytest.raises(ValueError, match="wait_seconds"):
        await queue.receive("normal", wait_seconds=21)


async def test_visibility_timeout_hides_then_redelivers(make_queue: MakeQueue) -> None:
    queue = await make_queue()
    await queue.send_batch("high", [message("m1")])

    [first] = await take(queue, "high", 1, visibility_timeout=SHORT)
    assert first.receive_count == 1
    assert await queue.receive("high") == []
    stats = await queue.stats("high")
    assert (stats.visible, stats.in_flight) == (0, 1)

    await asyncio.sleep(PAST_SHORT)
    [second] = await take(queue, "high", 1)

    assert second.message_id == first.message_id
    assert second.body == first.body
    assert second.receive_count == 2
    assert second.receipt != first.receipt


async def test_latest_receipt_deletes_redelivered_message(make_queue: MakeQueue) -> None:
    queue = await make_queue()
    await queue.send_batch("high", [message("m1")])
    await take(queue, "high", 1, visibility_timeout=SHORT)
    await asyncio.sleep(PAST_SHORT)
    [again] = await take(queue, "high", 1, visibility_timeout=SHORT)

    await queue.delete("high", [again.receipt])
    await asyncio.sleep(PAST_SHORT)

    assert await queue.receive("high") == []
    stats = await queue.stats("high")
    assert (stats.visible, stats.in_flight) == (0, 0)


async def test_change_visibility_to_zero_makes_message_visible(make_queue: MakeQueue) -> None:
    queue = await make_queue()
    await queue.send_batch("high", [message("m1")])
    [first] = await take(queue, "high", 1)

    await queue.change_visibility("high", first.receipt, 0)

    [again] = await take(queue, "high", 1)
    assert again.message_id == first.message_id
    assert again.receive_count == 2


async def test_change_visibility_extends_the_hiding(make_queue: MakeQueue) -> None:
    queue = await make_queue()
    await queue.send_batch("high", [message("m1")])
    [first] = await take(queue, "high", 1, visibility_timeout=SHORT)

    await queue.change_visibility("high", first.receipt, HIDDEN)
    await asyncio.sleep(PAST_SHORT)

    assert await queue.receive("high") == []
    assert (await queue.stats("high")).in_flight == 1
    await queue.delete("high", [first.receipt])
    assert (await queue.stats("high")).in_flight == 0


async def test_dead_letter_after_max_receive_count(make_queue: MakeQueue) -> None:
    queue = await make_queue(max_receive_count=2)
    await queue.send_batch("normal", [message("m1", "poison", kind="bulk")])
    for expected_count in (1, 2):
        [got] = await take(queue, "normal", 1, visibility_timeout=SHORT)
        assert got.receive_count == expected_count
        await asyncio.sleep(PAST_SHORT)

    # The third receive finds it received twice already: it moves to the dead-letter queue.
    assert await queue.receive("normal") == []
    stats = await queue.stats("normal")
    assert (stats.visible, stats.in_flight, stats.dead_letters) == (0, 0, 1)
    assert (await queue.stats("high")).dead_letters == 0

    [dead] = await queue.dead_letters("normal")
    assert dead.message_id == got.message_id
    assert (dead.body, dead.attributes) == ("poison", {"kind": "bulk"})
    # Being looked at does not take it out of the dead-letter count.
    assert (await queue.stats("normal")).dead_letters == 1
    await queue.delete("normal", [dead.receipt])
    assert (await queue.stats("normal")).dead_letters == 0


async def dead_lettered(queue: MessageQueue, name: QueueName, bodies: list[str]) -> None:
    """Send these and receive each past a max_receive_count of 1: into the dead-letter queue."""
    entries = [message(f"m{i}", body) for i, body in enumerate(bodies)]
    for start in range(0, len(entries), 10):
        await queue.send_batch(name, entries[start : start + 10])
    for got in await take(queue, name, len(bodies)):
        await queue.change_visibility(name, got.receipt, 0)
    deadline = time.monotonic() + 10
    while (await queue.stats(name)).dead_letters < len(bodies) and time.monotonic() < deadline:
        assert await queue.receive(name, wait_seconds=1) == []


async def test_peeking_lists_every_dead_letter_once_and_leaves_them_there(
    make_queue: MakeQueue,
) -> None:
    queue = await make_queue(max_receive_count=1)
    bodies = [f"poison {i}" for i in range(12)]  # more than one receive's worth
    await dead_lettered(queue, "normal", bodies)

    first = await queue.peek_dead_letters("normal")
    again = await queue.peek_dead_letters("normal")

    assert sorted(dead.body for dead in first) == sorted(bodies)
    assert len({dead.message_id for dead in first}) == len(bodies)
    assert {dead.message_id for dead in again} == {dead.message_id for dead in first}
    assert {dead.receive_count for dead in first} == {1}
    assert all(dead.sent_at is not None for dead in first)
    assert await queue.peek_dead_letters("high") == []
    assert len(await queue.peek_dead_letters("normal", limit=5)) == 5
    assert (await queue.stats("normal")).dead_letters == len(bodies)
    # Still there for a consumer of the dead-letter queue: a peek hides nothing.
    assert len(await queue.dead_letters("normal")) > 0


async def test_a_peeked_receipt_deletes_its_dead_letter(make_queue: MakeQueue) -> None:
    queue = await make_queue(max_receive_count=1)
    await dead_lettered(queue, "high", ["keep", "drop"])

    [drop] = [dead for dead in await queue.peek_dead_letters("high") if dead.body == "drop"]
    await queue.delete("high", [drop.receipt])

    assert [dead.body for dead in await queue.peek_dead_letters("high")] == ["keep"]
    assert (await queue.stats("high")).dead_letters == 1


async def test_a_deferred_receive_never_counts_towards_the_dead_letter_queue(
    make_queue: MakeQueue,
) -> None:
    # Waiting for a rate-limit token, ten times over, on a queue that dead-letters after two
    # receives: the message keeps the count of its real tries, and reaches no dead-letter queue.
    queue = await make_queue(max_receive_count=2)
    await queue.send_batch("normal", [message("m1", "waits", kind="bulk")])
    for _ in range(10):
        [got] = await take(queue, "normal", 1)
        assert got.receive_count == 1
        assert (got.body, got.attributes) == ("waits", {"kind": "bulk"})
        await queue.defer("normal", got, 0)
    assert (await queue.stats("normal")).dead_letters == 0

    # Real tries still count: two of them, and the third receive dead-letters it.
    [tried] = await take(queue, "normal", 1)
    assert tried.receive_count == 1
    await queue.change_visibility("normal", tried.receipt, 0)
    [again] = await take(queue, "normal", 1)
    assert again.receive_count == 2
    await queue.defer("normal", again, 0)
    [still] = await take(queue, "normal", 1)
    assert still.receive_count == 2, "the deferred receive did not count"
    await queue.change_visibility("normal", still.receipt, 0)

    deadline = time.monotonic() + 10
    while (await queue.stats("normal")).dead_letters == 0 and time.monotonic() < deadline:
        assert await queue.receive("normal", wait_seconds=1) == []
    stats = await queue.stats("normal")
    assert (stats.visible, stats.in_flight, stats.dead_letters) == (0, 0, 1)
    [dead] = await queue.dead_letters("normal")
    assert (dead.body, dead.attributes) == ("waits", {"kind": "bulk"})


async def test_a_deferred_message_comes_back_after_its_delay(make_queue: MakeQueue) -> None:
    queue = await make_queue()
    await queue.send_batch("high", [message("m1", "later", traceparent="00-abc-01")])
    [got] = await take(queue, "high", 1)

    await queue.defer("high", got, SHORT)

    assert await queue.receive("high") == []
    [back] = await take(queue, "high", 1)
    assert (back.body, back.attributes, back.receive_count) == (
        "later",
        {"traceparent": "00-abc-01"},
        1,
    )
    await queue.delete("high", [back.receipt])
    assert await queue.stats("high") == QueueStats(visible=0, in_flight=0, dead_letters=0)
    with pytest.raises(ValueError, match="deferred"):
        await queue.defer("high", back, 901)


async def test_stats_count_visible_and_in_flight(make_queue: MakeQueue) -> None:
    queue = await make_queue()
    await queue.send_batch("normal", [message(f"e{i}") for i in range(5)])
    stats = await queue.stats("normal")
    assert (stats.visible, stats.in_flight, stats.dead_letters) == (5, 0, 0)

    got = await take(queue, "normal", 2)
    stats = await queue.stats("normal")
    assert (stats.visible, stats.in_flight) == (3, 2)

    await queue.delete("normal", [got[0].receipt])
    stats = await queue.stats("normal")
    assert (stats.visible, stats.in_flight) == (3, 1)


async def test_queues_are_independent(make_queue: MakeQueue) -> None:
    queue = await make_queue()
    await queue.send_batch("normal", [message(f"e{i}") for i in range(3)])

    assert await queue.receive("high") == []
    assert (await queue.stats("high")).visible == 0
    assert (await queue.stats("normal")).visible == 3


async def test_long_poll_returns_promptly_when_a_message_arrives(make_queue: MakeQueue) -> None:
    queue = await make_queue()
    waiting = asyncio.create_task(queue.receive("high", wait_seconds=10))
    await asyncio.sleep(0.5)
    assert not waiting.done()

    sent = time.monotonic()
    await queue.send_batch("high", [message("m1", "reply")])
    got = await asyncio.wait_for(waiting, 10)

    assert [m.body for m in got] == ["reply"]
    assert time.monotonic() - sent < 1.5


async def test_long_poll_on_an_empty_queue_waits_then_answers_nothing(
    make_queue: MakeQueue,
) -> None:
    queue = await make_queue()
    started = time.monotonic()

    assert await queue.receive("high", wait_seconds=1) == []

    assert 0.9 <= time.monotonic() - started < 4


# --- Postgres only: what the Postgres adapter promises beyond SQS ---------------------------


@pytest.fixture
async def pg_queue(queue_pool: asyncpg.Pool) -> AsyncIterator[PostgresQueue]:
    queue = PostgresQueue(queue_pool, visibility_timeout=HIDDEN, prefix=prefix())
    yield queue
    await queue.close()


async def test_postgres_stale_receipt_neither_deletes_nor_hides(pg_queue: PostgresQueue) -> None:
    await pg_queue.send_batch("high", [message("m1")])
    [first] = await take(pg_queue, "high", 1, visibility_timeout=0.2)
    await asyncio.sleep(0.3)
    [second] = await take(pg_queue, "high", 1, visibility_timeout=0.2)

    await pg_queue.delete("high", [first.receipt])
    await pg_queue.change_visibility("high", first.receipt, HIDDEN)
    await asyncio.sleep(0.3)

    [third] = await take(pg_queue, "high", 1)
    assert third.message_id == first.message_id
    assert third.receive_count == 3
    await pg_queue.delete("high", [second.receipt])  # stale as well by now
    assert (await pg_queue.stats("high")).in_flight == 1
    await pg_queue.delete("high", [third.receipt])
    assert (await pg_queue.stats("high")).in_flight == 0


async def test_postgres_concurrent_receivers_never_share_a_message(
    pg_queue: PostgresQueue,
) -> None:
    for start in range(0, 300, 10):
        await pg_queue.send_batch("normal", [message(f"e{i}") for i in range(start, start + 10)])

    async def consume() -> list[str]:
        seen = []
        while batch := await pg_queue.receive("normal"):
            seen += [m.message_id for m in batch]
            await pg_queue.delete("normal", [m.receipt for m in batch])
        return seen

    results = await asyncio.gather(*(consume() for _ in range(6)))

    every = [message_id for seen in results for message_id in seen]
    assert len(every) == len(set(every)) == 300


async def test_postgres_policies_per_queue(queue_pool: asyncpg.Pool) -> None:
    queue = PostgresQueue(
        queue_pool,
        visibility_timeout=HIDDEN,
        policies={"high": QueuePolicy(visibility_timeout=0.2, max_receive_count=1)},
        prefix=prefix(),
    )
    try:
        await queue.send_batch("high", [message("h")])
        await queue.send_batch("normal", [message("n")])
        await take(queue, "high", 1, visibility_timeout=0.2)
        [n] = await queue.receive("normal")
        await asyncio.sleep(0.3)

        assert await queue.receive("high") == []  # received once: max_receive_count 1 reached
        assert (await queue.stats("high")).dead_letters == 1
        assert await queue.receive("normal") == []  # hidden for the default 30 s
        assert n.receive_count == 1
    finally:
        await queue.close()


async def vacuums_of(pool: asyncpg.Pool, table: str, *, auto: bool = False) -> int:
    """VACUUMs run on the table; with ``auto``, autovacuum's runs too (this test server's
    autovacuum may hold the table when the adapter's VACUUM, with SKIP_LOCKED, comes)."""
    count = await pool.fetchval(
        "SELECT vacuum_count + CASE WHEN $2 THEN autovacuum_count ELSE 0 END"
        " FROM pg_stat_user_tables WHERE relname = $1",
        table,
        auto,
    )
    return int(count)


async def vacuumed_since(pool: asyncpg.Pool, table: str, before: int) -> bool:
    for _ in range(200):  # 10 s
        if await vacuums_of(pool, table, auto=True) > before:
            return True
        await asyncio.sleep(0.05)
    return False


async def test_postgres_deletes_vacuum_the_table_every_so_many_messages(
    queue_pool: asyncpg.Pool,
) -> None:
    queue = PostgresQueue(queue_pool, visibility_timeout=HIDDEN, prefix=prefix(), vacuum_every=25)
    try:
        before = await vacuums_of(queue_pool, "queue_messages")
        await queue.send_batch("normal", [message(f"e{i}") for i in range(20)])
        await queue.delete("normal", [m.receipt for m in await take(queue, "normal", 20)])
        await queue.close()  # waits for a VACUUM under way
        assert await vacuums_of(queue_pool, "queue_messages") == before

        before = await vacuums_of(queue_pool, "queue_messages", auto=True)
        await queue.send_batch("normal", [message(f"e{i}") for i in range(10)])
        await queue.delete("normal", [m.receipt for m in await take(queue, "normal", 10)])
        await queue.close()
        assert await vacuumed_since(queue_pool, "queue_messages", before)
        assert await queue.stats("normal") == QueueStats(visible=0, in_flight=0, dead_letters=0)
    finally:
        await queue.close()


async def test_postgres_refuses_a_malformed_receipt(pg_queue: PostgresQueue) -> None:
    with pytest.raises(ValueError, match="not a receipt"):
        await pg_queue.delete("high", ["AQEB-sqs-handle"])


# --- SQS only: creating the queues ----------------------------------------------------------


async def test_sqs_create_queues_is_idempotent_and_applies_new_settings(sqs: Any) -> None:
    name = prefix()
    first = await create_queues(sqs, prefix=name, max_receive_count=3, visibility_timeout=10)
    again = await create_queues(sqs, prefix=name, max_receive_count=7, visibility_timeout=20)

    assert first == again == await queue_urls(sqs, prefix=name)
    assert set(first) == {"high", "normal", "high-dlq", "normal-dlq"}
    answer = await sqs.get_queue_attributes(
        QueueUrl=first["normal"], AttributeNames=["RedrivePolicy", "VisibilityTimeout"]
    )
    assert answer["Attributes"]["VisibilityTimeout"] == "20"
    policy = json.loads(answer["Attributes"]["RedrivePolicy"])
    assert int(policy["maxReceiveCount"]) == 7
    assert policy["deadLetterTargetArn"].endswith(":" + first["normal-dlq"].rsplit("/", 1)[1])


class FailingSqs:
    """Stands in for the SQS client where moto cannot: entries SQS itself fails."""

    def __init__(self) -> None:
        self.calls: list[dict[str, Any]] = []

    async def send_message_batch(self, **request: Any) -> dict[str, Any]:
        self.calls.append(request)
        ids = [entry["Id"] for entry in request["Entries"]]
        return {
            "Successful": [{"Id": i, "MessageId": f"id-{i}"} for i in ids[1:]],
            "Failed": [{"Id": ids[0], "Code": "InternalError", "SenderFault": False}],
        }

    async def delete_message_batch(self, **request: Any) -> dict[str, Any]:
        self.calls.append(request)
        first, second, *_ = request["Entries"]
        return {
            "Successful": [],
            "Failed": [
                {"Id": first["Id"], "Code": "ReceiptHandleIsInvalid", "SenderFault": True},
                {"Id": second["Id"], "Code": "InternalError", "SenderFault": False},
            ],
        }


def failing_sqs_queue() -> tuple[SqsQueue, FailingSqs]:
    client = FailingSqs()
    urls = {key: f"https://sqs.test/{key}" for key in ("high", "normal", "high-dlq", "normal-dlq")}
    return SqsQueue(client, urls), client


async def test_sqs_maps_entries_sqs_failed_to_send_results() -> None:
    queue, client = failing_sqs_queue()

    results = await queue.send_batch("normal", [message(f"e{i}") for i in range(3)])

    assert [(r.entry_id, r.ok) for r in results] == [("e0", False), ("e1", True), ("e2", True)]
    assert results[0].error is not None
    assert results[0].error.startswith("InternalError")
    assert len(client.calls) == 1


async def test_sqs_delete_ignores_stale_receipts_and_raises_on_other_failures() -> None:
    queue, client = failing_sqs_queue()

    with pytest.raises(SqsBatchError, match="InternalError") as raised:
        await queue.delete("high", ["r1", "r2", "r2", "dlq:r3", "dlq:r4"])

    assert "ReceiptHandleIsInvalid" not in str(raised.value)
    assert [(c["QueueUrl"], [e["ReceiptHandle"] for e in c["Entries"]]) for c in client.calls] == [
        ("https://sqs.test/high", ["r1", "r2"]),
        ("https://sqs.test/high-dlq", ["r3", "r4"]),
    ]
