"""Throughput of the Postgres message queue (adapters/postgres/queue.py) with a deep backlog.

    uv run python bench/queue_pg.py                  # embedded Postgres in a temp folder
    DATABASE_URL=postgresql://... uv run python bench/queue_pg.py   # a scratch database there

Three phases on one queue of a fresh, migrated scratch database:

1. fill: ``--messages`` messages (100,000) sent in batches of 10 by ``--senders`` tasks;
2. mixed: for ``--mixed-seconds``, one sender task keeps sending batches of 10 while
   ``--consumers`` loops receive 10 and delete them, so the backlog stays near its size;
3. drain: the consumer loops receive 10 and delete 10 until the queue is empty, printing the
   rate of each slice of ``--slice`` messages with the backlog left, to show whether the rate
   changes as the backlog shrinks.

Each send, receive and delete is one statement and one commit, as in the adapter. Bodies are
``--body-bytes`` of JSON-ish text with two attributes, like an outbox message. Nothing here
asserts a timing: the script prints figures. This process and Postgres share the machine's
cores, and every commit waits for the WAL flush unless ``--synchronous-commit off``.
"""

from __future__ import annotations

import argparse
import asyncio
import time

import asyncpg
from _common import scratch_database

from adapters.postgres.pool import create_pool
from adapters.postgres.queue import PostgresQueue
from application.queue import OutgoingMessage

QUEUE = "normal"


def batch_of(start: int, body_bytes: int) -> list[OutgoingMessage]:
    filler = "x" * max(0, body_bytes - 60)
    return [
        OutgoingMessage(
            entry_id=f"e{i}",
            body=f'{{"messageId": "msg-{start + i}", "text": "{filler}"}}',
            attributes={"messageId": f"msg-{start + i}", "creator": "creator-1"},
        )
        for i in range(10)
    ]


async def fill(queue: PostgresQueue, messages: int, senders: int, body_bytes: int) -> float:
    batches = iter(range(0, messages, 10))

    async def sender() -> None:
        for start in batches:  # shared iterator: each batch is taken by one sender
            results = await queue.send_batch(QUEUE, batch_of(start, body_bytes))
            assert all(r.ok for r in results)

    started = time.perf_counter()
    await asyncio.gather(*(sender() for _ in range(senders)))
    return time.perf_counter() - started


async def consume_batch(queue: PostgresQueue) -> int:
    batch = await queue.receive(QUEUE)
    if batch:
        await queue.delete(QUEUE, [m.receipt for m in batch])
    return len(batch)


async def mixed(queue: PostgresQueue, seconds: float, consumers: int, body_bytes: int) -> None:
    sent = received = 0
    until = time.perf_counter() + seconds

    async def sender() -> None:
        nonlocal sent
        while time.perf_counter() < until:
            await queue.send_batch(QUEUE, batch_of(10**9 + sent, body_bytes))
            sent += 10

    async def consumer() -> None:
        nonlocal received
        while time.perf_counter() < until:
            received += await consume_batch(queue)

    started = time.perf_counter()
    await asyncio.gather(sender(), *(consumer() for _ in range(consumers)))
    elapsed = time.perf_counter() - started
    stats = await queue.stats(QUEUE)
    print(
        f"mixed    {elapsed:6.1f} s   sent {sent / elapsed:8,.0f} msg/s   "
        f"received+deleted {received / elapsed:8,.0f} msg/s   backlog after {stats.visible:,}"
    )


async def drain(queue: PostgresQueue, consumers: int, slice_size: int) -> None:
    backlog = (await queue.stats(QUEUE)).visible
    total = backlog
    done = 0
    slice_done = 0
    slice_started = started = time.perf_counter()
    print(f"drain    {backlog:,} messages, {consumers} consumer(s), receive 10 + delete 10")

    async def consumer() -> None:
        nonlocal done, slice_done, slice_started
        while count := await consume_batch(queue):
            done += count
            slice_done += count
            if slice_done >= slice_size:
                now = time.perf_counter()
                rate = slice_done / (now - slice_started)
                print(f"  backlog {total - done:>9,} left   {rate:8,.0f} msg/s")
                slice_done = 0
                slice_started = now

    await asyncio.gather(*(consumer() for _ in range(consumers)))
    elapsed = time.perf_counter() - started
    print(f"drain    {done:,} in {elapsed:.1f} s: {done / elapsed:,.0f} msg/s overall")


async def table_size(pool: asyncpg.Pool) -> str:
    row = await pool.fetchrow(
        "SELECT pg_size_pretty(pg_table_size('queue_messages')) AS heap,"
        " pg_size_pretty(pg_indexes_size('queue_messages')) AS indexes"
    )
    assert row is not None
    return f"table {row['heap']}, indexes {row['indexes']}"


async def run(args: argparse.Namespace) -> None:
    async with scratch_database({"synchronous_commit": args.synchronous_commit}) as (url, where):
        pool = await create_pool(url, min_size=2, max_size=args.senders + args.consumers + 2)
        queue = PostgresQueue(pool)
        try:
            print(
                f"Postgres queue: {where} server, synchronous_commit {args.synchronous_commit}, "
                f"{args.body_bytes}-byte bodies"
            )
            elapsed = await fill(queue, args.messages, args.senders, args.body_bytes)
            print(
                f"fill     {args.messages:,} in {elapsed:.1f} s with {args.senders} senders: "
                f"{args.messages / elapsed:,.0f} msg/s   ({await table_size(pool)})"
            )
            if args.mixed_seconds > 0:
                await mixed(queue, args.mixed_seconds, args.consumers, args.body_bytes)
            await drain(queue, args.consumers, args.slice)
            print(f"after    {await table_size(pool)}")
        finally:
            await queue.close()
            await pool.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=100_000)
    parser.add_argument("--senders", type=int, default=4)
    parser.add_argument("--consumers", type=int, default=1)
    parser.add_argument("--mixed-seconds", type=float, default=10.0)
    parser.add_argument("--slice", type=int, default=10_000)
    parser.add_argument("--body-bytes", type=int, default=300)
    parser.add_argument("--synchronous-commit", choices=["on", "off"], default="on")
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
