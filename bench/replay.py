"""Replaying the log into the core projections, with personal data encrypted and in clear.

    uv run python bench/replay.py                  # 1,000,000 events, embedded Postgres
    uv run python bench/replay.py --events 100000  # a smaller log
    uv run python bench/replay.py --per-projection # also each projection alone (slower)
    DATABASE_URL=postgresql://... uv run python bench/replay.py   # scratch databases there

Two scratch databases on one server hold the same log, appended twice through the event
store: once as ``adapters.bootstrap.build`` wires it (personal fields encrypted, a data key
per fan), once with encryption off (``PostgresEventStore(pool, PersonalDataCodec(None),
notifier)``: personal fields in clear). Two logs because a log appended in clear cannot be
read as an encrypted one (its personal fields would read back as None) and the other way
round (the reader refuses sealed fields without keys).

The log: ``--events`` events (1,000,000) made of fans, each one transaction of
``append_all`` as ``application.messages.queue_message`` does it (events of several streams
and outbox rows together): ``FanCreated`` (every personal field set), two ``FanUpdated``,
``FanConversationOpened``, ``ConversationStarted``, two ``MessageQueued`` (personal: content
and attachments; each with its outbox row, the body sealed under the fan's key), one
``MessageDispatched``, and ``FanDeleted`` for every tenth fan: about 8 events per fan. Events
are built before appending (once, for both logs); appending is timed and printed, with
``--writers`` concurrent writers.

Then, for each log, with a fresh store and a cold key cache (as a rebuild in a new worker
process would have):

* ``bare read_all``: ``store.read_all`` in batches of ``--batch-size`` (5000) from the start
  to the end of the log, no projection: reading, decoding, and for the encrypted log loading
  keys (one query per batch) and decrypting;
* ``core, one pass``: what ``crm projections rebuild --all`` runs for the core projections
  (``adapters.bootstrap.core_projections()``): one ``ProjectionGroupRunner``, batches of
  ``--batch-size``, into a schema made fresh for the run as the rebuild makes it (each table's
  columns and keys; its secondary indexes built at the end, timed as part of the job), from
  empty checkpoints. It reads each
  event once, folds each batch into every projection's rows in memory and writes each touched
  row once; each projection commits the batch with its checkpoint in a transaction of its own,
  all of them concurrently on their own connections; it reads the next batch while it
  applies one;
* with ``--per-projection``: one ``ProjectionRunner`` per core projection, each reading the
  whole log, into another fresh schema with every index (``CREATE TABLE x.t (LIKE public.t
  INCLUDING ALL)``), as the live projector worker does.

The eight jobs are interleaved: in each round every unfinished job runs for ``--slice``
seconds (order rotated each round) until all have reached the end of the log, so a burst of
contention from the host hits all of them alike. ``range`` is the lowest and highest rate of
their slices. ``cpu us/event`` is the CPU time this process (``bench``) and the Postgres
processes (``pg``: backends of both databases and the server's background processes, when
the server runs on this machine) spent per event of the log. ``others`` is how many cores the
rest of the host kept busy meanwhile (all busy CPU time but this process's and Postgres's, over
the job's seconds): on a machine shared with other work, read rates beside it.

Goals: ``core, one pass`` replays at least 50,000 events/s (issue "Replayable projections",
on the encrypted log, as production stores it), printed beside the bare read of the same
log in the same run; and (issue "Personal data in an immutable log") encryption costs under
15% of that replay (by rate and by CPU per event; the verdict takes the worse). Nothing
asserts a timing: the script prints figures. The replay runs with the garbage collector's
thresholds raised (``projections.runner.replay_gc``), as ``crm projections rebuild`` does.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import itertools
import os
import secrets
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import _common
import asyncpg
from _common import FIRST_NAMES, LAST_NAMES, PgCpuMeter, database_server, host_busy, pg_pids

from adapters import bootstrap
from adapters.config import Settings
from adapters.crypto import MasterKey
from adapters.observability import configure_logging
from adapters.postgres.event_store import PostgresEventStore
from adapters.postgres.event_store.mapper import event_type_of
from adapters.postgres.listen import Notifier
from adapters.postgres.personal_data import PersonalDataCodec
from adapters.postgres.pool import create_pool
from adapters.postgres.projection_store import PostgresProjectionStore
from adapters.postgres.rebuild import build_indexes, clone_table
from adapters.postgres.subject_keys import SubjectKeys
from application.context import CommandContext
from application.messages import outbox_entry
from application.ports import Checkpoint, EventStore, OutboxEntry, StreamWrite
from domain.conversation import Conversation
from domain.fan import Fan
from domain.message import Message
from projections.base import Projection
from projections.runner import ProjectionGroupRunner, ProjectionRunner, replay_gc

ENCRYPTION_GOAL_COST = 0.15
REPLAY_GOAL_RATE = 50_000
ONE_PASS = "core, one pass"
TENANT = "bench"
LOGS = ("encrypted", "clear")


# --- scratch databases -------------------------------------------------------------------


@asynccontextmanager
async def scratch_databases(count: int) -> AsyncIterator[tuple[list[str], str]]:
    """``count`` new, migrated databases on DATABASE_URL's server or on one embedded server;
    dropped after. Yields (their urls, where the server is)."""
    async with (
        database_server() as (admin_url, where, _),
        _common.scratch_databases(admin_url, count) as urls,
    ):
        yield urls, where


# --- the log -----------------------------------------------------------------------------


@dataclass
class Unit:
    """One fan's transaction: what ``append_all`` gets."""

    writes: list[StreamWrite]
    outbox: list[OutboxEntry]
    ctx: CommandContext

    @property
    def events(self) -> int:
        return sum(len(write.events) for write in self.writes)


def _write(aggregate: Fan | Conversation | Message, stream_type: str) -> StreamWrite:
    pending = aggregate.collect_events()
    return StreamWrite(aggregate.id, stream_type, pending, pending[0].originator_version - 1)


def build_units(events: int) -> list[Unit]:
    """Fans with their conversation and messages until the log holds ``events`` events."""
    units: list[Unit] = []
    total = 0
    for i in itertools.count(1):
        if total >= events:
            return units
        first, last = FIRST_NAMES[i % len(FIRST_NAMES)], LAST_NAMES[i % len(LAST_NAMES)]
        ctx = CommandContext(tenant=TENANT, actor="bench", correlation_id=f"bench-{i}")
        fan = Fan.register(
            fan_id=i,
            tenant=TENANT,
            platform_id=f"of-{i}",
            name=f"{first} {last}",
            handle=f"{first.lower()}_{last.lower()}_{i}",
            email=f"{first.lower()}.{i}@example.com",
            value_cents=i * 7 % 100_000,
            tags=["vip", "new"] if i % 3 else ["promo"],
            notes=f"met at the {i % 12}th meetup",
        )
        fan.update(notes=f"prefers evening messages ({i})")
        fan.update(email=f"{first.lower()}.{last.lower()}.{i}@example.org", value_cents=i % 5000)
        fan.open_conversation(i)
        conversation = Conversation.start(
            conversation_id=i, tenant=TENANT, fan_id=i, platform="onlyfans"
        )
        messages = []
        for k in range(2):
            message = Message.queue(
                message_id=str(uuid.UUID(int=i * 4 + k)),
                tenant=TENANT,
                conversation_id=i,
                fan_id=i,
                content=f"Hi {first}, here is something new for you ({k})",
                price_cents=0 if k else 500,
                attachments=[("image", f"https://cdn.example.com/{i}/{k}.jpg")],
            )
            messages.append(message)
        outbox = [outbox_entry(message, ctx) for message in messages]
        messages[0].dispatch("normal")
        if i % 10 == 0:
            fan.delete()
        writes = [_write(fan, "fan"), _write(conversation, "conversation")]
        writes += [_write(message, "message") for message in messages]
        unit = Unit(writes, outbox, ctx)
        units.append(unit)
        total += unit.events
    raise AssertionError("unreachable")


async def fill(store: EventStore, units: list[Unit], writers: int) -> float:
    """Append every unit (one ``append_all`` each) with ``writers`` concurrent tasks."""
    queue = iter(units)

    async def writer() -> None:
        for unit in queue:  # shared iterator: each unit is taken by one writer
            await store.append_all(unit.writes, metadata=unit.ctx.metadata(), outbox=unit.outbox)

    started = time.perf_counter()
    await asyncio.gather(*(writer() for _ in range(writers)))
    return time.perf_counter() - started


# --- replay jobs -------------------------------------------------------------------------

Step = Callable[[], Awaitable[int]]


@dataclass
class Job:
    name: str
    log: str
    step: Step  # processes the next batch; 0 at the end of the log
    events: int = 0
    seconds: float = 0.0
    slice_rates: list[float] = field(default_factory=list)
    bench_cpu: float = 0.0
    pg_cpu: float | None = 0.0
    host_cpu: float | None = 0.0  # busy CPU seconds of the whole host
    done: bool = False

    @property
    def rate(self) -> float:
        return self.events / self.seconds if self.seconds else float("nan")

    @property
    def others(self) -> float | None:
        """Cores the rest of the host kept busy meanwhile (other processes than the bench
        and Postgres): how loaded the machine was."""
        if self.host_cpu is None or self.pg_cpu is None or not self.seconds:
            return None
        return max(0.0, self.host_cpu - self.bench_cpu - self.pg_cpu) / self.seconds


def bare_reader(store: PostgresEventStore, batch_size: int) -> Step:
    after = Checkpoint()

    async def step() -> int:
        nonlocal after
        batch = await store.read_all(after, batch_size)
        if batch:
            after = Checkpoint(batch[-1].transaction_id, batch[-1].position)
        return len(batch)

    return step


async def fresh_schema(pool: asyncpg.Pool, schema: str, projections: list[Projection]) -> None:
    await pool.execute(f'CREATE SCHEMA "{schema}"')
    for projection in projections:
        for table in projection.tables:
            await pool.execute(
                f'CREATE TABLE "{schema}"."{table}" (LIKE public."{table}" INCLUDING ALL)'
            )


async def rebuild_schema_of(pool: asyncpg.Pool, schema: str, projections: list[Projection]) -> None:
    """The tables as a rebuild makes them: columns and keys, secondary indexes later."""
    await pool.execute(f'CREATE SCHEMA "{schema}"')
    async with pool.acquire() as conn:
        for projection in projections:
            for table in projection.tables:
                await clone_table(conn, schema, table)


def as_rebuild(
    group: ProjectionGroupRunner, pool: asyncpg.Pool, schema: str, projections: list[Projection]
) -> Step:
    """The group's batches, then (timed with the last step) the secondary indexes, as
    ``crm projections rebuild`` builds them at the head of the log."""

    async def step() -> int:
        applied = await group.run_batch()
        if not applied:
            await build_indexes(pool, schema, projections)
        return applied

    return step


def _host_busy() -> float | None:
    try:
        import psutil
    except ImportError:
        return None
    return host_busy(psutil)


async def run_slice(job: Job, seconds: float, cpu: PgCpuMeter) -> None:
    """Batches of one job back to back until ``seconds`` have passed or the log ends."""
    host0 = _host_busy()
    mine0, pg0 = cpu.sample()
    started = time.perf_counter()
    until = started + seconds
    events = 0
    while time.perf_counter() < until:
        applied = await job.step()
        if not applied:
            job.done = True
            break
        events += applied
    elapsed = time.perf_counter() - started
    mine1, pg1 = cpu.sample()
    host1 = _host_busy()
    job.events += events
    job.seconds += elapsed
    if not job.done:  # a full slice: the last one, cut short by the end of the log, is not
        job.slice_rates.append(events / elapsed)
    job.bench_cpu += mine1 - mine0
    pg = PgCpuMeter.delta(pg0, pg1)
    job.pg_cpu = None if pg is None or job.pg_cpu is None else job.pg_cpu + pg
    if host0 is None or host1 is None or job.host_cpu is None:
        job.host_cpu = None
    else:
        job.host_cpu += host1 - host0


async def interleave(jobs: list[Job], slice_s: float, cpu: PgCpuMeter) -> None:
    for r in itertools.count():
        pending = [job for job in jobs if not job.done]
        if not pending:
            return
        for k in range(len(pending)):
            await run_slice(pending[(k + r) % len(pending)], slice_s, cpu)


# --- the run -----------------------------------------------------------------------------


async def run(args: argparse.Namespace) -> None:
    t0 = time.perf_counter()
    units = build_units(args.events)
    build_s = time.perf_counter() - t0
    types = Counter(event_type_of(e) for unit in units for w in unit.writes for e in w.events)
    total = sum(types.values())
    master_key = secrets.token_urlsafe(32)

    async with scratch_databases(len(LOGS)) as (urls, where), contextlib.AsyncExitStack() as stack:
        # Fill: the encrypted log as bootstrap wires the store, the clear one with the same
        # wiring but PersonalDataCodec(None). The outbox rows are left where they are.
        fill_s: dict[str, float] = {}
        sizes: dict[str, str] = {}
        pools: dict[str, asyncpg.Pool] = {}
        for log, url in zip(LOGS, urls, strict=True):
            settings = Settings.from_env(
                {"CRM_MASTER_KEY": master_key},
                database_url=url,
                pool_min_size=args.writers,
                pool_max_size=args.writers,
            )
            container = await bootstrap.build(settings)
            notifier = Notifier(container.pool)
            try:
                store: EventStore = container.events
                if log == "clear":
                    store = PostgresEventStore(container.pool, PersonalDataCodec(None), notifier)
                fill_s[log] = await fill(store, units, args.writers)
                await container.pool.execute("VACUUM ANALYZE events")
                sizes[log] = await container.pool.fetchval(
                    "SELECT pg_size_pretty(pg_total_relation_size('events'))"
                )
            finally:
                await notifier.close()
                await container.close()
            # One connection per projection (the one-pass job applies them concurrently), one
            # for its read-ahead, one for the bare reader: all open now, so that the CPU meter
            # knows their backends.
            size = len(bootstrap.core_projections()) + 2
            pools[log] = await create_pool(url, min_size=size, max_size=size)
            stack.push_async_callback(pools[log].close)

        fans = len(units)
        # A rebuild's process does not hold the log in memory: neither should this one while
        # it replays (a million live events make every full garbage collection slow).
        del units
        gc.collect()
        version = await pools["clear"].fetchval("SHOW server_version")
        print(
            f"fancrm replay benchmark: PostgreSQL {version} ({where}), {os.cpu_count()} CPUs;"
            f" {total:,} events of {fans:,} fans built in {build_s:.1f} s"
        )
        print("log: " + ", ".join(f"{n} {name}" for name, n in sorted(types.items())))
        for log in LOGS:
            print(
                f"appended {log:<9} in {fill_s[log]:5.1f} s with {args.writers} writers:"
                f" {total / fill_s[log]:7,.0f} events/s, {fans / fill_s[log]:6,.0f}"
                f" transactions/s; events table {sizes[log]}"
            )
        print(
            f"append_all off/on: {fill_s['encrypted'] / fill_s['clear']:.2f}"
            f" (encryption costs {1 - fill_s['clear'] / fill_s['encrypted']:.0%} of the fill rate)"
        )

        schema = f"replay_{uuid.uuid4().hex[:8]}"
        single_schema = f"{schema}_single"
        master = MasterKey.parse(master_key)
        jobs: list[Job] = []
        for log in LOGS:
            pool = pools[log]
            projections = bootstrap.core_projections()
            await rebuild_schema_of(pool, schema, projections)
            url = urls[LOGS.index(log)]

            def new_store(pool: asyncpg.Pool = pool, log: str = log) -> PostgresEventStore:
                # A cold key cache per job, as a rebuild in a fresh worker process has it.
                keys = SubjectKeys(pool, master) if log == "encrypted" else None
                return PostgresEventStore(pool, PersonalDataCodec(keys), None)

            jobs.append(Job("bare read_all", log, bare_reader(new_store(), args.batch_size)))
            group_store = PostgresProjectionStore(pool, new_store(), url)
            stack.push_async_callback(group_store.close)
            group = ProjectionGroupRunner(
                group_store, projections, schema=schema, batch_size=args.batch_size
            )
            stack.push_async_callback(group.close)
            jobs.append(Job(ONE_PASS, log, as_rebuild(group, pool, schema, projections)))
            if not args.per_projection:
                continue
            await fresh_schema(pool, single_schema, projections)
            for projection in projections:
                projection_store = PostgresProjectionStore(pool, new_store(), url)
                stack.push_async_callback(projection_store.close)
                runner = ProjectionRunner(
                    projection_store, projection, schema=single_schema, batch_size=args.batch_size
                )
                jobs.append(Job(f"{projection.name} projection", log, runner.run_batch))
        with contextlib.suppress(asyncpg.InsufficientPrivilegeError):
            await pools["clear"].execute("CHECKPOINT")
        cpu = PgCpuMeter(await pg_pids(*pools.values()))
        print(
            f"replay: {len(jobs)} jobs interleaved in slices of {args.slice:g} s, batches of"
            f" {args.batch_size}, cold key cache per job"
        )
        print(_header(), flush=True)
        started = time.perf_counter()
        with replay_gc():  # as `crm projections rebuild` runs, for every job alike
            await interleave(jobs, args.slice, cpu)
        wall = time.perf_counter() - started
        for job in jobs:
            print(_row(job))
        if args.per_projection:
            for log in LOGS:
                print(_row(_one_after_another(jobs, log)))
        print(f"(all jobs done in {wall:.1f} s of wall time)")
        for log in LOGS:
            counts = await pools[log].fetchrow(
                f'SELECT (SELECT count(*) FROM "{schema}".fans) AS fans,'
                f' (SELECT count(*) FROM "{schema}".conversations) AS conversations,'
                f' (SELECT count(*) FROM "{schema}".messages) AS messages'
            )
            print(
                f"projected {log:<9}: {counts['fans']:,} fans, {counts['conversations']:,}"
                f" conversations, {counts['messages']:,} messages"
            )
        _summary(jobs)


def _one_after_another(jobs: list[Job], log: str) -> Job:
    """The single projections of one log as if run one after the other: log events / their
    summed time (what the live worker's runners, one per projection, cost to replay)."""
    parts = [job for job in jobs if job.log == log and job.name.endswith("projection")]
    total = Job("singles, summed", log, parts[0].step)
    total.seconds = sum(job.seconds for job in parts)
    total.events = parts[0].events
    total.bench_cpu = sum(job.bench_cpu for job in parts)
    pgs = [job.pg_cpu for job in parts]
    total.pg_cpu = None if any(pg is None for pg in pgs) else sum(pg or 0.0 for pg in pgs)
    hosts = [job.host_cpu for job in parts]
    total.host_cpu = None if any(h is None for h in hosts) else sum(h or 0.0 for h in hosts)
    return total


def _header() -> str:
    return (
        f"{'job':<24} {'log':<10} {'events':>9} {'seconds':>8} {'events/s':>9}"
        f" {'range events/s':>15} {'cpu us/event bench+pg':>22} {'others':>7}\n" + "-" * 110
    )


def _row(job: Job) -> str:
    if job.slice_rates:
        spread = f"{_short(min(job.slice_rates))}-{_short(max(job.slice_rates))}"
    else:
        spread = "-"
    per = job.events or 1
    pg = f"{job.pg_cpu / per * 1e6:.0f}" if job.pg_cpu is not None else "n/a"
    mine = f"{job.bench_cpu / per * 1e6:.0f}"
    others = f"{job.others:.2f}" if job.others is not None else "n/a"
    return (
        f"{job.name:<24} {job.log:<10} {job.events:>9,} {job.seconds:>8.2f} {job.rate:>9,.0f}"
        f" {spread:>15} {mine + ' + ' + pg:>22} {others:>7}"
    )


def _short(rate: float) -> str:
    return f"{rate / 1000:.1f}k" if rate >= 1000 else f"{rate:.0f}"


def _summary(jobs: list[Job]) -> None:
    by = {(job.name, job.log): job for job in jobs}
    names = [job.name for job in jobs if job.log == LOGS[0]]
    if any(name.endswith("projection") for name in names):
        for log in LOGS:
            by[("singles, summed", log)] = _one_after_another(jobs, log)
        names.append("singles, summed")
    print()
    print(
        f"{'summary (events/s)':<24} {'encrypted':>10} {'clear':>10} {'off/on':>7}"
        f" {'encr. cost':>10} {'cpu us/event on':>16} {'off':>6} {'cpu cost':>9}"
    )
    print("-" * 100)
    costs: dict[str, tuple[float, float]] = {}
    for name in names:
        on, off = by[(name, "encrypted")], by[(name, "clear")]
        cost = 1 - on.rate / off.rate
        cpu_on, cpu_off = _cpu_per_event(on), _cpu_per_event(off)
        cpu_cost = 1 - cpu_off / cpu_on
        costs[name] = (cost, cpu_cost)
        print(
            f"{name:<24} {on.rate:>10,.0f} {off.rate:>10,.0f} {off.rate / on.rate:>7.2f}"
            f" {cost:>10.0%} {cpu_on:>16.0f} {cpu_off:>6.0f} {cpu_cost:>9.0%}"
        )
    print(
        "(off/on: the clear log's rate over the encrypted log's; encr. cost: 1 - on/off;"
        " cpu cost: the share of the\n encrypted log's CPU per event (bench + pg) that the"
        " clear log does not spend, steadier than rates on a busy host)"
    )
    print()
    for log in LOGS:
        one, bare = by[(ONE_PASS, log)], by[("bare read_all", log)]
        print(
            f"goal: replay into the core projections >= {REPLAY_GOAL_RATE:,} events/s"
            f" ({log} log): {one.rate:,.0f} events/s, {_cpu_per_event(one):.0f} us CPU/event;"
            f" bare read {bare.rate:,.0f} events/s, {_cpu_per_event(bare):.0f} us CPU/event"
            f" -> {'met' if one.rate >= REPLAY_GOAL_RATE else 'NOT met'}"
        )
    rate_cost, cpu_cost = costs[ONE_PASS]
    print(
        f"goal: encryption costs < {ENCRYPTION_GOAL_COST:.0%} of the replay ({ONE_PASS}):"
        f" {rate_cost:.1%} by rate, {cpu_cost:.1%} by CPU per event ->"
        f" {'met' if max(rate_cost, cpu_cost) < ENCRYPTION_GOAL_COST else 'NOT met'}"
    )


def _cpu_per_event(job: Job) -> float:
    return (job.bench_cpu + (job.pg_cpu or 0.0)) / (job.events or 1) * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(
        description="Replay of the log into the core projections, encrypted and in clear."
    )
    parser.add_argument(
        "--events", type=int, default=1_000_000, help="events in each log, about (1000000)"
    )
    parser.add_argument(
        "--writers", type=int, default=4, help="concurrent append_all writers filling (4)"
    )
    parser.add_argument(
        "--batch-size", type=int, default=5000, help="events per read / projector batch (5000)"
    )
    parser.add_argument(
        "--per-projection",
        action="store_true",
        help="also replay into each core projection alone (one runner each, as the worker)",
    )
    parser.add_argument(
        "--slice", type=float, default=0.5, help="seconds per interleaved slice (0.5)"
    )
    args = parser.parse_args()
    if args.events < 1 or args.writers < 1 or args.batch_size < 1 or args.slice <= 0:
        parser.error("--events, --writers and --batch-size must be at least 1, --slice above 0")
    configure_logging("WARNING", json=False)
    asyncio.run(run(args))


if __name__ == "__main__":
    main()
