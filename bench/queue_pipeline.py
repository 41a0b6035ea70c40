"""The messaging pipeline: outbox -> relay -> queue -> receive -> delete, its rate as the
backlog drains, beside a bare INSERT/DELETE loop on a plain table of the same database.

    uv run python bench/queue_pipeline.py                    # embedded Postgres, temp folder
    uv run python bench/queue_pipeline.py --messages 20000   # a smaller backlog
    DATABASE_URL=postgresql://... uv run python bench/queue_pipeline.py   # a scratch database

This is the issue's ``bench/queue.py`` under another name: a bench/queue.py would be what
``import queue`` finds first for every script of this folder (run as ``python bench/x.py``),
hiding the standard library module that asyncio, logging and urllib3 import.

Everything is wired as ``adapters.bootstrap.build`` wires it (a master key made up for the
scratch database, so message contents are sealed in the outbox and on the queue), in this one
process:

1. check: ``--orphans`` (100) outbox rows inserted with SQL for message ids that have no
   stream, relayed alone: the relay cannot record them as dispatched; the run reports what
   it logged and whether it went on (the rows must be sent and deleted all the same);
2. fill: ``--fans`` fans (each with its conversation), then ``--messages`` real messages
   (100,000), each a ``MessageQueued`` event and its outbox row, appended as
   ``application.messages.queue_message`` appends them (``store.append_all`` with the outbox
   entry) but ``--fill-batch`` messages per transaction, by ``--writers`` tasks: the outbox
   holds the whole backlog before the pipeline starts;
3. pipeline: one ``worker.relay.Relay`` (``run_once`` in a loop, as ``Relay.run`` does while
   rows are due: claims of ``CLAIM_LIMIT``, ``send_batch`` by the queue's ``max_batch``,
   ``MessageDispatched`` recorded per slice of the claim) and one consumer loop (``receive``
   10 with a 1 s long poll, ``delete`` them) run together on the Postgres queue until every
   message has been received and deleted. Every
   ``--slice`` (10,000) messages deleted, both are paused and a bare loop runs for
   ``--bare-seconds`` on a plain table of the same database: one task inserting 10 rows per
   statement (``INSERT ... SELECT FROM unnest``), one deleting the 10 oldest per statement
   (``DELETE ... WHERE id IN (SELECT ... ORDER BY id LIMIT 10 FOR UPDATE SKIP LOCKED)``), each
   statement one commit: what 10 messages through one table cost Postgres with nothing in
   between. Each line prints the pipeline's rate over its last slice (messages deleted per
   second; and relayed, i.e. sent to the queue), the backlog left in the outbox and the queue,
   the CPU per message of this process and of Postgres, and the bare loop's rate next to it;
4. relay alone: ``--relay-messages`` (20,000) more messages in the outbox, relayed by one
   relay with nothing consuming: with the queue's own ``max_batch`` (one INSERT per queue per
   claim on Postgres) and with batches of 10 (SQS's limit, what the relay sent before),
   alternated ``--relay-rounds`` (2) times: outbox -> queue messages/s and CPU per message
   of this process and of Postgres;
5. the same pipeline on moto's SQS server (``moto.server.ThreadedMotoServer`` on a free port,
   in a thread of this process; ``adapters.sqs``) for ``--sqs-messages`` (500), for reference:
   moto scans every message of a queue on each call and shares this process's GIL, so it
   says what the adapter costs, not what Amazon SQS would do.

With ``--what-if``, before the SQS part: three more pipelines on fresh backlogs of
``--what-if-messages`` (10,000), with MessageDispatched recorded per message as
worker/relay.py does, batched per claim (one query and one transaction for the claim's
dispatches, ``BatchedDispatchRelay``), and not at all: what the fixes suggested by the figures
would bring, measured rather than guessed.

The relay and the consumer share this process (one event loop) as they would share a core;
``cpu us/msg`` counts them together. With ``--relay-process`` the pipeline's relay runs as
deployed, in a process of its own (``crm worker relay``; the sender consumes elsewhere), paused
with SIGSTOP while the bare loop runs, its CPU added to ``bench``: one event loop no longer
makes the consumer wait behind the relay's Python, the OS shares the cores between them.
Goal (from the issue): at least 2,000 messages/s sustained on Postgres. Nothing here asserts
a timing: the script prints figures.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import logging
import os
import secrets
import signal
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
import structlog.testing
from _common import PG_PIDS_SQL, host_busy, scratch_database

from adapters import bootstrap
from adapters.config import Settings
from adapters.observability import configure_logging
from adapters.postgres.event_store import PostgresEventStore
from adapters.postgres.outbox import OutboxRow
from adapters.sqs import SqsQueue, create_queues, sqs_client
from application.context import CommandContext
from application.messages import outbox_entry, record_failed
from application.ports import EventStore, StreamWrite
from application.queue import MessageQueue
from domain.conversation import Conversation
from domain.fan import Fan
from domain.message import Message, message_stream_id
from worker.relay import CLAIM_LIMIT, SENDS_IN_FLIGHT, Relay, _owner

GOAL_MESSAGES_PER_S = 2_000
TENANT = "bench"
QUEUE = "normal"

_BARE_TABLE = """
CREATE TABLE bench_bare (
    id    bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    body  text NOT NULL
)
"""
_BARE_INSERT = "INSERT INTO bench_bare (body) SELECT b FROM unnest($1::text[]) AS b"
_BARE_DELETE = """
DELETE FROM bench_bare WHERE id IN (
    SELECT id FROM bench_bare ORDER BY id LIMIT 10 FOR UPDATE SKIP LOCKED
)
"""


# --- CPU ---------------------------------------------------------------------------------


class CpuMeter:
    """CPU seconds of this process, of the Postgres processes of the database (backends and
    the server's background processes, re-listed at each sample: pools open connections on
    demand and autovacuum workers come and go), and of the whole host."""

    def __init__(self, pool: asyncpg.Pool, child: Callable[[], float] | None = None) -> None:
        self._pool = pool
        self._child = child  # CPU seconds of a child process counted as this one's
        self._known: dict[int, Any] = {}
        try:
            import psutil

            self._psutil: Any = psutil
        except ImportError:
            self._psutil = None

    async def sample(self) -> tuple[float, dict[int, float] | None, float | None]:
        mine = time.process_time() + (self._child() if self._child else 0.0)
        if self._psutil is None:
            return mine, None, None
        rows = await self._pool.fetch(PG_PIDS_SQL)
        used = {}
        for row in rows:
            pid = row["pid"]
            try:
                proc = self._known.get(pid) or self._psutil.Process(pid)
                self._known[pid] = proc
                times = proc.cpu_times()
            except Exception:  # gone, or the server is not on this machine
                continue
            used[pid] = times.user + times.system
        return mine, used, host_busy(self._psutil)

    @staticmethod
    def pg_delta(before: dict[int, float] | None, after: dict[int, float] | None) -> float:
        """CPU of the processes seen at both ends, plus all of those that appeared since (a
        process that started and ended in between is missed)."""
        if before is None or after is None:
            return float("nan")
        return sum(after[pid] - before.get(pid, 0.0) for pid in after)


@dataclass
class Usage:
    bench: float = 0.0
    pg: float = 0.0
    host: float = 0.0

    async def measure(self, meter: CpuMeter, start: tuple, end: tuple) -> None:
        self.bench += end[0] - start[0]
        self.pg += CpuMeter.pg_delta(start[1], end[1])
        if start[2] is not None and end[2] is not None:
            self.host += end[2] - start[2]


# --- fill --------------------------------------------------------------------------------


def _write(aggregate: Any, stream_type: str) -> StreamWrite:
    pending = aggregate.collect_events()
    return StreamWrite(aggregate.id, stream_type, pending, pending[0].originator_version - 1)


async def create_fans(store: EventStore, count: int, first_id: int) -> list[int]:
    """Fans with their conversation opened, so that messages take the steady path."""
    ids = list(range(first_id, first_id + count))
    for fan_id in ids:
        ctx = CommandContext(tenant=TENANT, actor="bench", correlation_id=f"fan-{fan_id}")
        fan = Fan.register(
            fan_id=fan_id,
            tenant=TENANT,
            name=f"Fan {fan_id}",
            handle=f"fan_{fan_id}",
            email=f"fan.{fan_id}@example.com",
        )
        fan.open_conversation(fan_id)
        conversation = Conversation.start(
            conversation_id=fan_id, tenant=TENANT, fan_id=fan_id, platform="onlyfans"
        )
        await store.append_all(
            [_write(fan, "fan"), _write(conversation, "conversation")], metadata=ctx.metadata()
        )
    return ids


async def queue_messages(
    store: EventStore, fans: list[int], count: int, batch: int, writers: int
) -> None:
    """``count`` messages, each its MessageQueued event and outbox row, ``batch`` per
    transaction (append_all, as queue_message does for one)."""
    numbers = iter(range(0, count, batch))
    ctx = CommandContext(tenant=TENANT, actor="bench", correlation_id="bench-fill")

    async def writer() -> None:
        for start in numbers:
            messages = []
            for n in range(start, min(start + batch, count)):
                fan_id = fans[n % len(fans)]
                messages.append(
                    Message.queue(
                        message_id=str(uuid.uuid4()),
                        tenant=TENANT,
                        conversation_id=fan_id,
                        fan_id=fan_id,
                        content=f"Message {n}: new set just dropped, want a preview?",
                        attachments=[("image", f"https://cdn.example.com/{n}.jpg")],
                    )
                )
            outbox = [outbox_entry(m, ctx) for m in messages]
            await store.append_all(
                [_write(m, "message") for m in messages], metadata=ctx.metadata(), outbox=outbox
            )

    await asyncio.gather(*(writer() for _ in range(writers)))


# --- pipeline ----------------------------------------------------------------------------


class Pipeline:
    """One relay loop and one consumer loop, pausable between iterations."""

    def __init__(self, relay: Relay, queue: MessageQueue, wait_seconds: float) -> None:
        self.relay = relay
        self.queue = queue
        self.wait_seconds = wait_seconds
        self.relayed = 0
        self.deleted = 0
        self.empty_receives = 0
        self.progress = asyncio.Event()  # set after each delete, and when the consumer ends
        self.running = asyncio.Event()
        self.running.set()
        self._busy = {"relay": False, "consumer": False}
        self._idle = asyncio.Event()
        self.stop = False
        self.relay_done = False

    async def _gate(self, who: str) -> None:
        self._busy[who] = False
        if not self.running.is_set():
            self._idle.set()
            await self.running.wait()
        self._busy[who] = True

    async def pause(self) -> None:
        """Stop both loops at their next iteration; returns once neither is mid-iteration."""
        self.running.clear()
        while any(self._busy.values()):
            self._idle.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._idle.wait(), 0.05)

    def resume(self) -> None:
        self.running.set()

    async def relay_loop(self) -> None:
        while not self.stop:
            await self._gate("relay")
            settled = await self.relay.run_once()
            self.relayed += settled
            if not settled:
                self.relay_done = True
                self._busy["relay"] = False
                return

    async def consumer_loop(self, total: int) -> None:
        try:
            await self._consume(total)
        finally:
            self._busy["consumer"] = False
            self.progress.set()

    async def _consume(self, total: int) -> None:
        while self.deleted < total and not self.stop:
            await self._gate("consumer")
            batch = await self.queue.receive(QUEUE, max_messages=10, wait_seconds=self.wait_seconds)
            if not batch:
                self.empty_receives += 1
                if self.relay_done and self.deleted < total:
                    # The relay found the outbox empty: whatever is left is on the queue.
                    stats = await self.queue.stats(QUEUE)
                    if stats.visible == 0 and stats.in_flight == 0:
                        break
                continue
            await self.queue.delete(QUEUE, [m.receipt for m in batch])
            self.deleted += len(batch)
            self.progress.set()


# The relay as deployed (``crm worker relay``): a process of its own, so that the OS, not one
# event loop, shares the CPU between it and the consumer. The parent pauses it with SIGSTOP.
_RELAY_PROCESS = """
import asyncio, os, sys
from adapters import bootstrap
from adapters.config import Settings
from adapters.observability import configure_logging
from worker.relay import Relay

async def main(url):
    settings = Settings.from_env(os.environ, database_url=url, pool_min_size=2, pool_max_size=4)
    container = await bootstrap.build(settings)
    relay = Relay(container.outbox, container.queue, container.events)
    try:
        while await relay.run_once():
            pass
    finally:
        await container.close()

configure_logging("WARNING", json=False)
asyncio.run(main(sys.argv[1]))
"""


class RelayProcessPipeline(Pipeline):
    """The pipeline with its relay in a child process; ``relayed`` is read from the outbox."""

    def __init__(self, queue: MessageQueue, pool: asyncpg.Pool, url: str, key: str) -> None:
        super().__init__(None, queue, wait_seconds=1.0)  # type: ignore[arg-type]
        self._pool, self._url, self._key = pool, url, key
        self._outbox_at_start: int | None = None
        self.proc: asyncio.subprocess.Process | None = None

    def child_cpu(self) -> float:
        """CPU seconds of the relay process: psutil while it runs, getrusage once reaped."""
        import resource

        if self.proc is not None and self.proc.returncode is None:
            with contextlib.suppress(Exception):
                import psutil

                times = psutil.Process(self.proc.pid).cpu_times()
                return float(times.user + times.system)
        usage = resource.getrusage(resource.RUSAGE_CHILDREN)
        return usage.ru_utime + usage.ru_stime

    async def relay_loop(self) -> None:
        self._outbox_at_start = int(await self._pool.fetchval("SELECT count(*) FROM outbox"))
        root = Path(__file__).resolve().parents[1]
        self.proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            _RELAY_PROCESS,
            self._url,
            cwd=root,
            env={**os.environ, "CRM_MASTER_KEY": self._key, "PYTHONPATH": str(root)},
        )
        try:
            await self.proc.wait()
        finally:
            if self.proc.returncode is None:
                self.proc.kill()
                await self.proc.wait()
        self.relay_done = True

    async def refresh(self) -> None:
        if self._outbox_at_start is not None:
            left = int(await self._pool.fetchval("SELECT count(*) FROM outbox"))
            self.relayed = self._outbox_at_start - left

    async def pause(self) -> None:
        if self.proc is not None and self.proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.proc.pid, signal.SIGSTOP)
        self._busy["relay"] = False
        await super().pause()

    def resume(self) -> None:
        if self.proc is not None and self.proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.proc.pid, signal.SIGCONT)
        super().resume()


async def backlog(pool: asyncpg.Pool) -> tuple[int, int]:
    row = await pool.fetchrow(
        "SELECT (SELECT count(*) FROM outbox) AS outbox,"
        " (SELECT count(*) FROM queue_messages WHERE queue = $1) AS queued",
        QUEUE,
    )
    assert row is not None
    return row["outbox"], row["queued"]


async def bare_loop(pool: asyncpg.Pool, conns: list[asyncpg.Connection], seconds: float) -> float:
    """Rows deleted per second by one inserting and one deleting connection: 10 rows per
    statement, one commit per statement. Starts with what the previous run left (or 100)."""
    bodies = ['{"messageId": "bare", "text": "' + "x" * 200 + '"}'] * 10
    inserter, deleter = conns
    deleted = 0
    until = time.perf_counter() + seconds

    async def insert() -> None:
        while time.perf_counter() < until:
            await inserter.execute(_BARE_INSERT, bodies)

    async def delete() -> None:
        nonlocal deleted
        while time.perf_counter() < until:
            status = await deleter.execute(_BARE_DELETE)
            deleted += int(status.split()[-1])

    started = time.perf_counter()
    await asyncio.gather(insert(), delete())
    return deleted / (time.perf_counter() - started)


@dataclass
class Line:
    label: str
    messages: int
    seconds: float
    relayed: int
    usage: Usage

    def row(self, outbox: int, queued: int, bare: float | None) -> str:
        per = self.messages or 1
        others = (self.usage.host - self.usage.bench - self.usage.pg) / self.seconds
        bare_text = f"{bare:>10,.0f}" if bare is not None else f"{'-':>10}"
        return (
            f"{self.label:>9} {self.messages:>7,} {self.seconds:>6.1f} "
            f"{self.messages / self.seconds:>8,.0f} {self.relayed / self.seconds:>9,.0f}"
            f" {outbox:>9,} {queued:>7,} {self.usage.bench / per * 1e6:>7.0f}"
            f" {self.usage.pg / per * 1e6:>6.0f} {others:>7.2f} {bare_text}"
        )


def _header(unit: str) -> str:
    return (
        f"{'deleted':>9} {'slice':>7} {'s':>6} {unit:>8} {'relayed/s':>9} {'outbox':>9}"
        f" {'queued':>7} {'cpu us/msg':>14} {'others':>7} {'bare msg/s':>10}\n"
        f"{'':>71}{'bench':>7} {'pg':>6} {'cores':>7}\n" + "-" * 100
    )


async def run_pipeline(
    pipeline: Pipeline,
    total: int,
    every: int,
    meter: CpuMeter,
    pool: asyncpg.Pool,
    between: Callable[[], Any] | None,
    *,
    quiet: bool = False,
) -> tuple[list[Line], float, list[float]]:
    """Run until ``total`` messages are deleted, printing a line every ``every`` of them;
    ``between`` (the bare loop) runs while the pipeline is paused after each line."""
    lines: list[Line] = []
    bare_rates: list[float] = []
    tasks = [
        asyncio.create_task(pipeline.relay_loop()),
        asyncio.create_task(pipeline.consumer_loop(total)),
    ]
    active = 0.0
    try:
        for target in itertools.count(every, every):
            target = min(target, total)
            start_cpu = await meter.sample()
            started = time.perf_counter()
            deleted0, relayed0 = pipeline.deleted, pipeline.relayed
            while pipeline.deleted < target and not tasks[1].done():
                pipeline.progress.clear()
                await pipeline.progress.wait()
            await pipeline.pause()
            elapsed = time.perf_counter() - started
            if isinstance(pipeline, RelayProcessPipeline):
                await pipeline.refresh()
            active += elapsed
            usage = Usage()
            await usage.measure(meter, start_cpu, await meter.sample())
            line = Line(
                f"{pipeline.deleted:,}",
                pipeline.deleted - deleted0,
                elapsed,
                pipeline.relayed - relayed0,
                usage,
            )
            lines.append(line)
            outbox, queued = await backlog(pool)
            bare = await between() if between is not None else None
            if bare is not None:
                bare_rates.append(bare)
            if not quiet:
                print(line.row(outbox, queued, bare), flush=True)
            pipeline.resume()
            if pipeline.deleted >= total or tasks[1].done():
                break
    finally:
        pipeline.stop = True
        pipeline.resume()
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
    return lines, active, bare_rates


# --- what-if: dispatches recorded otherwise ----------------------------------------------


class BatchedDispatchRelay(Relay):
    """What-if: ``run_once`` as in worker/relay.py, but the claim's MessageDispatched events
    are recorded together after commit: one query for the streams' versions and last event
    types, one ``append_all`` (one transaction, one commit) for all of them, instead of a
    load, a decision and a one-event append (its own commit) per message. Only messages whose
    last event leaves them queued get one, as ``Message.dispatch`` decides. A measurement, not
    a drop-in: it takes the first row's tenant for the metadata of all (one tenant here)."""

    async def run_once(self) -> int:
        async with self.outbox.claim(CLAIM_LIMIT) as claimed:
            if not claimed.rows:
                return 0
            outcomes = await self._send(claimed.rows)
            sent, gave_up = await self._settle(claimed, outcomes)
            for row, reason in gave_up:
                await record_failed(row.message_id, reason, _owner(row), store=self.store)
        if sent:
            await self._record_all(sent)
        return len(claimed.rows)

    async def _record_all(self, rows: list[OutboxRow]) -> None:
        streams = {message_stream_id(_owner(row).tenant, row.message_id): row for row in rows}
        assert isinstance(self.store, PostgresEventStore)
        found = await self.store._pool.fetch(
            "SELECT stream_id, max(version) AS version,"
            " (array_agg(event_type ORDER BY version DESC))[1] AS last"
            " FROM events WHERE stream_id = ANY($1::text[]) GROUP BY stream_id",
            list(streams),
        )
        now = datetime.now(UTC)
        writes = [
            StreamWrite(
                record["stream_id"],
                "message",
                [
                    Message.Dispatched(
                        originator_id=record["stream_id"],
                        originator_version=record["version"] + 1,
                        timestamp=now,
                        queue=streams[record["stream_id"]].queue,
                    )
                ],
                record["version"],
            )
            for record in found
            if record["last"] in ("MessageQueued", "MessageRequeued")
        ]
        if writes:
            await self.store.append_all(writes, metadata=_owner(rows[0]).metadata())


async def what_if(container: bootstrap.Container, args: argparse.Namespace) -> None:
    """The same pipeline on fresh backlogs, with dispatches recorded as worker/relay.py does,
    batched per claim, and not at all: how much of the rate the per-message recording costs."""
    store = container.events
    fans = await create_fans(store, 100, 20_000_000)
    print()
    print(
        f"what-if: the same pipeline, {args.what_if_messages:,} messages each, MessageDispatched"
        " recorded..."
    )
    print(
        f"{'':<34} {'messages':>8} {'s':>6} {'msg/s':>7} {'cpu us/msg bench+pg':>20}"
        f" {'dispatched':>10}"
    )
    print("-" * 91)

    async def no_record(_: OutboxRow) -> None:
        return None

    variants: list[tuple[str, Callable[[], Relay]]] = [
        ("per message (worker/relay.py)", lambda: Relay(container.outbox, container.queue, store)),
        (
            "batched per claim (1 commit)",
            lambda: BatchedDispatchRelay(container.outbox, container.queue, store),
        ),
        ("not at all", lambda: _without_recording(container, no_record)),
    ]
    for label, make in variants:
        await queue_messages(store, fans, args.what_if_messages, args.fill_batch, args.writers)
        await container.pool.execute("VACUUM ANALYZE outbox")
        before = await container.pool.fetchval(
            "SELECT count(*) FROM events WHERE event_type = 'MessageDispatched'"
        )
        pipeline = Pipeline(make(), container.queue, wait_seconds=1.0)
        lines, active, _ = await run_pipeline(
            pipeline,
            args.what_if_messages,
            args.what_if_messages,
            CpuMeter(container.pool),
            container.pool,
            None,
            quiet=True,
        )
        done = pipeline.deleted or 1
        bench = sum(line.usage.bench for line in lines) / done * 1e6
        pg = sum(line.usage.pg for line in lines) / done * 1e6
        dispatched = (
            await container.pool.fetchval(
                "SELECT count(*) FROM events WHERE event_type = 'MessageDispatched'"
            )
            - before
        )
        print(
            f"{label:<34} {pipeline.deleted:>8,} {active:>6.1f} {pipeline.deleted / active:>7,.0f}"
            f" {f'{bench:.0f} + {pg:.0f}':>20} {dispatched:>10,}",
            flush=True,
        )


def _without_recording(container: bootstrap.Container, no_record: Any) -> Relay:
    relay = Relay(container.outbox, container.queue, container.events)
    relay._record_dispatched = no_record  # type: ignore[method-assign]
    return relay


# --- relay alone ---------------------------------------------------------------------------


class BatchesOf:
    """The queue, declaring a smaller ``max_batch``: the relay as it sends to SQS."""

    def __init__(self, inner: MessageQueue, max_batch: int) -> None:
        self.inner = inner
        self.max_batch = max_batch

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


async def relay_alone(container: bootstrap.Container, args: argparse.Namespace) -> None:
    """Outbox -> queue with nothing consuming: the relay's own rate and CPU per message, with
    the queue's batches and with SQS-sized ones, each on a fresh backlog of the same size."""
    store, pool = container.events, container.pool
    fans = await create_fans(store, 100, 30_000_000)
    count = args.relay_messages
    print()
    print(
        f"relay alone: {count:,} messages outbox -> queue, 1 relay (claims of {CLAIM_LIMIT},"
        f" {SENDS_IN_FLIGHT} sends in flight), nothing consuming"
    )
    print(
        f"{'batches of':>10} {'messages':>9} {'s':>6} {'msg/s':>7} {'cpu us/msg':>14}"
        f" {'others':>7}\n{'':>34}{'bench':>7} {'pg':>6} {'cores':>7}\n" + "-" * 56
    )
    # Alternated, so that a change in the host's load falls on both sizes alike.
    for size in (container.queue.max_batch, 10) * args.relay_rounds:
        await queue_messages(store, fans, count, args.fill_batch, args.writers)
        await pool.execute("VACUUM ANALYZE outbox")
        relay = Relay(container.outbox, BatchesOf(container.queue, size), store)
        meter = CpuMeter(pool)
        start = await meter.sample()
        started = time.perf_counter()
        relayed = 0
        while settled := await relay.run_once():
            relayed += settled
        elapsed = time.perf_counter() - started
        usage = Usage()
        await usage.measure(meter, start, await meter.sample())
        others = (usage.host - usage.bench - usage.pg) / elapsed
        print(
            f"{size:>10} {relayed:>9,} {elapsed:>6.1f} {relayed / elapsed:>7,.0f}"
            f" {usage.bench / relayed * 1e6:>7.0f} {usage.pg / relayed * 1e6:>6.0f}"
            f" {others:>7.2f}",
            flush=True,
        )
        await pool.execute("DELETE FROM queue_messages WHERE queue = $1", QUEUE)


# --- the run -----------------------------------------------------------------------------


async def orphan_check(container: bootstrap.Container, count: int) -> list[str]:
    """Outbox rows for message ids with no stream, relayed alone: what happens."""
    await container.pool.execute(
        "INSERT INTO outbox (queue, message_id, body, attributes)"
        " SELECT $1, m, json_build_object('messageId', m, 'tenant', $2::text)::text,"
        " '{}'::jsonb FROM (SELECT gen_random_uuid()::text AS m"
        " FROM generate_series(1, $3)) AS s",
        QUEUE,
        TENANT,
        count,
    )
    relay = Relay(container.outbox, container.queue, container.events)
    settled = 0
    started = time.perf_counter()
    with structlog.testing.capture_logs() as logs:
        failed: BaseException | None = None
        try:
            while n := await relay.run_once():
                settled += n
        except Exception as error:  # the point of the check: does the relay go on?
            failed = error
    elapsed = time.perf_counter() - started
    outbox, queued = await backlog(container.pool)
    kinds: dict[str, int] = {}
    for entry in logs:
        key = f"{entry['log_level']} {entry['event']!r}"
        kinds[key] = kinds.get(key, 0) + 1
    # Take them off the queue, so that the pipeline's counts hold only real messages.
    await container.pool.execute("DELETE FROM queue_messages WHERE queue = $1", QUEUE)
    logged = ", ".join(f"{n} x {k}" for k, n in sorted(kinds.items())) or "nothing"
    verdict = (
        f"raised {type(failed).__name__}: {failed}"
        if failed is not None
        else "went on (no exception)"
    )
    return [
        f"orphan check: {count} outbox rows whose message has no stream, relayed alone:"
        f" the relay {verdict}; settled {settled} in {elapsed:.2f} s"
        f" ({elapsed / max(settled, 1) * 1e3:.2f} ms each), outbox left {outbox},"
        f" on the queue {queued};",
        f"  logged: {logged}; no MessageDispatched could be recorded for them",
    ]


async def run(args: argparse.Namespace) -> None:
    async with scratch_database() as (url, where):
        args.master_key = secrets.token_urlsafe(32)
        settings = Settings.from_env(
            {"CRM_MASTER_KEY": args.master_key},
            database_url=url,
            pool_min_size=2,
            pool_max_size=max(4, args.writers + 2),
        )
        container = await bootstrap.build(settings)
        try:
            await _postgres(container, args, url, where)
            if args.relay_messages:
                await relay_alone(container, args)
            if args.what_if:
                await what_if(container, args)
            if args.sqs_messages:
                await _sqs(container, args)
        finally:
            await container.close()


async def _postgres(
    container: bootstrap.Container, args: argparse.Namespace, url: str, where: str
) -> None:
    pool, store = container.pool, container.events
    version = await pool.fetchval("SHOW server_version")
    print(
        f"fancrm queue pipeline benchmark: PostgreSQL {version} ({where}), {os.cpu_count()}"
        " CPUs shared by this process (relay + consumer) and Postgres; encryption on"
        " (as deployed)"
    )
    if args.orphans:
        for line in await orphan_check(container, args.orphans):
            print(line)
    started = time.perf_counter()
    fans = await create_fans(store, args.fans, 1)
    await queue_messages(store, fans, args.messages, args.fill_batch, args.writers)
    fill_s = time.perf_counter() - started
    await pool.execute("VACUUM ANALYZE outbox")
    size = await pool.fetchval("SELECT pg_size_pretty(pg_total_relation_size('outbox'))")
    print(
        f"fill: {args.fans:,} fans and {args.messages:,} messages (MessageQueued + outbox row,"
        f" {args.fill_batch} per append_all, {args.writers} writers) in {fill_s:.1f} s:"
        f" {args.messages / fill_s:,.0f} messages/s; outbox {size}"
    )

    await pool.execute(_BARE_TABLE)
    bare_conns = [await asyncpg.connect(url) for _ in range(2)]
    await bare_conns[0].execute(_BARE_INSERT, ["seed"] * 100)
    try:
        with contextlib.suppress(asyncpg.InsufficientPrivilegeError):
            await pool.execute("CHECKPOINT")
        pipeline: Pipeline
        if args.relay_process:
            pipeline = RelayProcessPipeline(container.queue, pool, url, args.master_key)
            where_relay = "in a process of its own, its CPU counted with bench's"
        else:
            relay = Relay(container.outbox, container.queue, store)
            pipeline = Pipeline(relay, container.queue, wait_seconds=1.0)
            where_relay = "in this process, on the consumer's event loop"
        print(
            f"pipeline: 1 relay (claims of {CLAIM_LIMIT}, batches of"
            f" {container.queue.max_batch}, MessageDispatched per claim; {where_relay})"
            f" + 1 consumer (receive 10, delete); every {args.slice:,} messages a bare"
            f" INSERT 10 / DELETE 10 loop runs {args.bare_seconds:g} s on a plain table"
        )
        print(_header("msg/s"), flush=True)
        meter = CpuMeter(
            pool, pipeline.child_cpu if isinstance(pipeline, RelayProcessPipeline) else None
        )
        lines, active, bare_rates = await run_pipeline(
            pipeline,
            args.messages,
            args.slice,
            meter,
            pool,
            lambda: bare_loop(pool, bare_conns, args.bare_seconds),
        )
    finally:
        for conn in bare_conns:
            await conn.close()
    dispatched = await pool.fetchval(
        "SELECT count(*) FROM events WHERE event_type = 'MessageDispatched'"
    )
    outbox, queued = await backlog(pool)
    deleted = pipeline.deleted
    rates = [line.messages / line.seconds for line in lines if line.messages]
    full = [r for line, r in zip(lines, rates, strict=False) if line.messages >= args.slice]
    bench = sum(line.usage.bench for line in lines) / max(deleted, 1) * 1e6
    pg = sum(line.usage.pg for line in lines) / max(deleted, 1) * 1e6
    overall = deleted / active if active else float("nan")
    print(
        f"total: {deleted:,} messages deleted in {active:.1f} s of pipeline time:"
        f" {overall:,.0f} msg/s; cpu per message {bench:.0f} us bench + {pg:.0f} us pg;"
        f" {dispatched:,} MessageDispatched recorded; left: outbox {outbox}, queue {queued};"
        f" {pipeline.empty_receives} empty receives"
    )
    if bare_rates:
        print(
            f"bare INSERT 10 / DELETE 10: {min(bare_rates):,.0f}-{max(bare_rates):,.0f} msg/s"
            f" (median {sorted(bare_rates)[len(bare_rates) // 2]:,.0f}); the pipeline reaches"
            f" {overall / (sum(bare_rates) / len(bare_rates)):.2f} of it"
        )
    if full:
        whole = [line for line in lines if line.messages >= args.slice]
        cpu = [(line.usage.bench + line.usage.pg) / line.messages * 1e6 for line in whole]
        print(
            f"slices of {args.slice:,}: {min(full):,.0f}-{max(full):,.0f} msg/s, last/first"
            f" {full[-1] / full[0]:.2f}; cpu us/msg (bench + pg) {min(cpu):,.0f}-{max(cpu):,.0f},"
            f" last/first {cpu[-1] / cpu[0]:.2f}\n(both near 1: the backlog's depth does not"
            " matter; the rate moves with the host's load (see others), the CPU per message"
            " hardly does)"
        )
    print()
    lowest = min(full) if full else overall
    print(
        f"goal: >= {GOAL_MESSAGES_PER_S:,} messages/s sustained on Postgres: overall"
        f" {overall:,.0f}, slowest slice {lowest:,.0f} ->"
        f" {'met' if lowest >= GOAL_MESSAGES_PER_S else 'NOT met'}",
        flush=True,
    )


async def _sqs(container: bootstrap.Container, args: argparse.Namespace) -> None:
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        async with sqs_client(
            endpoint_url=f"http://{host}:{port}",
            region_name="us-east-1",
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        ) as client:
            urls = await create_queues(client, prefix="bench")
            sqs = SqsQueue(client, urls)
            store = container.events
            fans = await create_fans(store, 10, 10_000_000)
            await queue_messages(store, fans, args.sqs_messages, args.fill_batch, 1)
            relay = Relay(container.outbox, sqs, store)
            pipeline = Pipeline(relay, sqs, wait_seconds=1.0)
            every = max(1, args.sqs_messages // 5)
            print()
            print(
                f"the same pipeline on moto's SQS server (in a thread of this process),"
                f" {args.sqs_messages:,} messages:"
            )
            print(_header("msg/s"), flush=True)
            lines, active, _ = await run_pipeline(
                pipeline, args.sqs_messages, every, CpuMeter(container.pool), container.pool, None
            )
            deleted = pipeline.deleted
            bench = sum(line.usage.bench for line in lines) / max(deleted, 1) * 1e6
            left = await sqs.stats(QUEUE)
            print(
                f"total on moto: {deleted:,} messages in {active:.1f} s:"
                f" {deleted / active:,.0f} msg/s; cpu per message {bench:.0f} us in this"
                f" process (relay, consumer, moto); left on the queue {left.visible}"
                f" visible, {left.in_flight} in flight"
            )
    finally:
        server.stop()


def main() -> None:
    parser = argparse.ArgumentParser(
        description="outbox -> relay -> queue -> receive -> delete, on Postgres and moto's SQS."
    )
    parser.add_argument(
        "--messages", type=int, default=100_000, help="messages in the backlog (100000)"
    )
    parser.add_argument("--slice", type=int, default=10_000, help="messages per line (10000)")
    parser.add_argument(
        "--bare-seconds", type=float, default=0.5, help="bare loop after each line (0.5)"
    )
    parser.add_argument("--fans", type=int, default=1000, help="recipients (1000)")
    parser.add_argument(
        "--fill-batch", type=int, default=100, help="messages per append_all when filling (100)"
    )
    parser.add_argument("--writers", type=int, default=4, help="concurrent fill writers (4)")
    parser.add_argument(
        "--orphans", type=int, default=100, help="outbox rows without a stream (100; 0: skip)"
    )
    parser.add_argument(
        "--what-if",
        action="store_true",
        help="also run the pipeline with MessageDispatched batched per claim, and without it",
    )
    parser.add_argument(
        "--what-if-messages",
        type=int,
        default=10_000,
        help="messages per what-if pipeline (10000)",
    )
    parser.add_argument(
        "--relay-messages",
        type=int,
        default=20_000,
        help="messages relayed with nothing consuming, per batch size (20000; 0: skip)",
    )
    parser.add_argument(
        "--relay-process",
        action="store_true",
        help="run the pipeline's relay in a process of its own, as deployed",
    )
    parser.add_argument(
        "--relay-rounds", type=int, default=2, help="runs of each batch size, alternated (2)"
    )
    parser.add_argument(
        "--sqs-messages", type=int, default=500, help="messages on moto's SQS (500; 0: skip)"
    )
    args = parser.parse_args()
    if min(args.messages, args.slice, args.fans, args.fill_batch, args.writers) < 1:
        parser.error("--messages, --slice, --fans, --fill-batch and --writers must be >= 1")
    configure_logging("WARNING", json=False)
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # moto's server logs each request
    asyncio.run(run(args))


if __name__ == "__main__":
    main()
