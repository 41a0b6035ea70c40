"""Event-store append throughput, against raw INSERTs into a plain table on the same database.

    uv run python bench/append.py                 # embedded Postgres in a temp folder
    DATABASE_URL=postgresql://... uv run python bench/append.py   # a scratch database there

What is measured, at each writer count of ``--writers`` (asyncio tasks in this one process;
the store's pool has one connection per writer), every operation writing to a new stream:

* single events: ``raw INSERT, 1 row`` (one autocommit ``INSERT`` of one row into
  ``bench_raw``: identity primary key, ``stream_id text``, ``data jsonb``, with the event's
  JSON, on a connection each writer holds) against ``append, 1 event``
  (``PostgresEventStore.append`` of one ``Fan.Created``, expected version 0, wired as
  ``adapters.bootstrap.build`` wires it: personal fields encrypted, a new data key per fan
  stored by the same statement), the same append with encryption off (``no encryption``:
  ``PostgresEventStore(pool, PersonalDataCodec(None), notifier)``, personal fields in clear,
  no key row), the same append without the store's ``Notifier`` (``no NOTIFY``: nothing is
  announced after commit), and the raw INSERT through the pool (``via pool``: acquire,
  execute, release, as the store and the API do);
* batches: ``raw INSERT, N rows`` (one ``INSERT ... SELECT FROM unnest($2::text[])``) against
  ``append, N events`` (one append of ``Fan.register`` then N-1 ``fan.update(notes=...)``:
  every event carries personal fields, so N encryptions and one data key), the same append
  with encryption off, and without the Notifier. Every statement is one commit.

``--encryption on|off|both`` (default both) picks which stores run; with both, the summary
prints, per scenario, the rate with encryption off over the rate with it on, the share of the
throughput encryption costs, and the share of the CPU per event (this process and Postgres)
it costs, which a busy host disturbs much less than rates (the issue's goal: under 15%; the
verdict takes the worse of the two).

The scenarios of a group are interleaved: ``--rounds`` rounds, each running every scenario for
``--duration / --rounds`` seconds (order rotated), so a burst of disk or CPU contention from
the host hits all of them alike, and ratios compare like with like. ``range`` is the lowest and
highest rate of the single slices: a wide range means a noisy machine. ``cpu us/op`` is the
CPU time this process (``bench``) and the Postgres processes (``pg``: the pool's backends and
the background writers, when the server runs on this machine) spent per operation, which
varies much less than throughput when the host is busy.

The encrypting store is wired as the services wire it (``adapters.bootstrap.build``, with a
master key made up for the scratch database), so the figures include whatever ``append`` does
in production besides the INSERT. Events are built before timing (encoding them is part of
``append`` and is timed). A fixed set of pre-built events is reused cyclically, each time under
a new stream id.

Goals (from the issues): single-event appends reach at least 50% of the raw single-row INSERT
commit rate at the same writer count, batched appends reach at least 30,000 events/s (both
judged on the store as deployed, with encryption), and encryption costs under 15% of the
append rate.

Read the figures with the machine in mind: this process, Postgres and its WAL writer share
the same cores (2 on the reference machine), and by default every commit waits for an fsync
(``--synchronous-commit off`` takes the disk out, leaving CPU cost). Nothing here asserts a
timing: the script prints figures.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import os
import secrets
import statistics
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import asyncpg
import msgspec
from _common import PgCpuMeter, pg_pids, scratch_database

from adapters import bootstrap
from adapters.config import Settings
from adapters.observability import configure_logging
from adapters.postgres.event_store import PostgresEventStore
from adapters.postgres.listen import Notifier
from adapters.postgres.personal_data import PersonalDataCodec
from application.ports import EventMetadata, EventStore
from domain.base import DomainEvent
from domain.fan import Fan

SINGLE_GOAL_RATIO = 0.5
BATCH_GOAL_EVENTS = 30_000
ENCRYPTION_GOAL_COST = 0.15

_RAW_TABLE = """
CREATE TABLE bench_raw (
    id        bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    stream_id text NOT NULL,
    data      jsonb NOT NULL
)
"""
_RAW_ONE = "INSERT INTO bench_raw (stream_id, data) VALUES ($1, $2::text::jsonb)"
_RAW_MANY = (
    "INSERT INTO bench_raw (stream_id, data) SELECT $1, d::jsonb FROM unnest($2::text[]) AS d"
)

Op = Callable[[], Awaitable[int]]


@dataclass
class Scenario:
    name: str
    make_op: Callable[[int], Op]  # given the writer's index


@dataclass
class Result:
    scenario: str
    writers: int
    ops: int = 0
    events: int = 0
    seconds: float = 0.0
    latencies: list[float] = field(default_factory=list)
    slice_rates: list[float] = field(default_factory=list)
    bench_cpu: float = 0.0
    pg_cpu: float | None = 0.0

    @property
    def ops_per_s(self) -> float:
        return self.ops / self.seconds if self.seconds else float("nan")

    @property
    def events_per_s(self) -> float:
        return self.events / self.seconds if self.seconds else float("nan")

    def percentile_ms(self, q: float) -> float:
        if len(self.latencies) < 2:
            return self.latencies[0] * 1000 if self.latencies else float("nan")
        cuts = statistics.quantiles(self.latencies, n=100, method="inclusive")
        return cuts[round(q * 100) - 1] * 1000


async def run_slice(ops: list[Op], seconds: float, latencies: list[float] | None) -> tuple:
    """Every op back to back in its own task until ``seconds`` have passed; an op started
    before the end is counted, and the slice lasts until the last one finishes."""

    async def worker(op: Op, until: float) -> tuple[int, int]:
        count = events = 0
        clock = time.perf_counter
        while (started := clock()) < until:
            events += await op()
            count += 1
            if latencies is not None:
                latencies.append(clock() - started)
        return count, events

    started = time.perf_counter()
    done = await asyncio.gather(*(worker(op, started + seconds) for op in ops))
    return sum(c for c, _ in done), sum(e for _, e in done), time.perf_counter() - started


async def run_group(
    pool: asyncpg.Pool,
    scenarios: list[Scenario],
    writers: int,
    args: argparse.Namespace,
) -> list[Result]:
    """Interleave the scenarios: each round runs every one for duration/rounds seconds."""
    results = [Result(s.name, writers) for s in scenarios]
    ops = [[s.make_op(w) for w in range(writers)] for s in scenarios]
    for i in range(len(scenarios)):  # warm up: prepared statements, caches
        await run_slice(ops[i], args.warmup, None)
    # Not a superuser on DATABASE_URL: then the scenarios share the checkpointer's work alike.
    with contextlib.suppress(asyncpg.InsufficientPrivilegeError):
        await pool.execute("CHECKPOINT")
    # Postgres processes now, after the warm-up: a pool may have replaced a connection.
    cpu = PgCpuMeter(await pg_pids(pool))
    slice_s = args.duration / args.rounds
    for r in range(args.rounds):
        for k in range(len(scenarios)):
            i = (k + r) % len(scenarios)
            res = results[i]
            mine0, pg0 = cpu.sample()
            count, events, seconds = await run_slice(ops[i], slice_s, res.latencies)
            mine1, pg1 = cpu.sample()
            res.ops += count
            res.events += events
            res.seconds += seconds
            res.slice_rates.append(events / seconds)
            res.bench_cpu += mine1 - mine0
            pg = PgCpuMeter.delta(pg0, pg1)
            res.pg_cpu = None if pg is None or res.pg_cpu is None else res.pg_cpu + pg
    return results


def build_events(singles: int, batches: int, batch_size: int) -> tuple[list, list]:
    created: list[DomainEvent] = []
    for i in range(1, singles + 1):
        fan = Fan.register(fan_id=i, tenant="bench", name=f"Fan {i}", handle=f"fan_{i}")
        created.extend(fan.collect_events())
    batched: list[list[DomainEvent]] = []
    for b in range(1, batches + 1):
        fan = Fan.register(fan_id=10_000_000 + b, tenant="bench", name=f"Batch fan {b}")
        for i in range(1, batch_size):
            fan.update(notes=str(i))
        batched.append(fan.collect_events())
    return created, batched


async def run(args: argparse.Namespace) -> None:
    t0 = time.perf_counter()
    modes = ["on", "off"] if args.encryption == "both" else [args.encryption]
    created, batched = build_events(args.prebuilt, args.prebuilt_batches, args.batch_size)
    build_s = time.perf_counter() - t0
    created_json = [event_json(e) for e in created]
    batched_json = [[event_json(e) for e in batch] for batch in batched]
    metadata = EventMetadata(
        tenant="bench", actor="bench", correlation_id="bench", causation_id="bench"
    )
    counter = itertools.count(1)  # every op gets a stream id never used before in the run
    settings = {"synchronous_commit": args.synchronous_commit}

    async with scratch_database(settings) as (url, where):
        size = max(args.writers)
        # The store as the services wire it, on a pool with a connection per writer. A master
        # key is made up for the scratch database (used if the store encrypts personal data).
        settings = Settings.from_env(
            {"CRM_MASTER_KEY": secrets.token_urlsafe(32)},
            database_url=url,
            pool_min_size=size,
            pool_max_size=size,
        )
        async with contextlib.AsyncExitStack() as stack:
            container = await bootstrap.build(settings)
            stack.push_async_callback(container.close)
            pool = container.pool
            await pool.execute(_RAW_TABLE)
            # The stores compared: as bootstrap wires it (encrypting, with the process's
            # Notifier), the same with encryption off, and the first of those without a
            # Notifier (no NOTIFY after commit). They share the pool and the key cache.
            notifier = Notifier(pool)
            stack.push_async_callback(notifier.close)
            stores: dict[str, EventStore] = {
                "on": container.events,
                "off": PostgresEventStore(pool, PersonalDataCodec(None), notifier),
            }
            first = "on" if "on" in modes else "off"
            silent = PostgresEventStore(
                pool, PersonalDataCodec(container.keys if first == "on" else None), None
            )

            # Raw INSERTs get a connection of their own per writer, held for the whole run:
            # the rate Postgres gives a client with nothing in between. ``via pool`` runs the
            # same INSERT through the pool (acquire, execute, release) as the store does.
            raw_conns = [await asyncpg.connect(url) for _ in range(size)]
            stack.push_async_callback(_close_all, raw_conns)

            def append_one(into: EventStore) -> Callable[[int], Op]:
                def make(_: int) -> Op:
                    async def op() -> int:
                        n = next(counter)
                        event = created[n % len(created)]
                        await into.append(
                            f"fan-{n}", "fan", [event], expected_version=0, metadata=metadata
                        )
                        return 1

                    return op

                return make

            def append_batch(into: EventStore) -> Callable[[int], Op]:
                def make(_: int) -> Op:
                    async def op() -> int:
                        n = next(counter)
                        events = batched[n % len(batched)]
                        await into.append(
                            f"fan-{n}", "fan", events, expected_version=0, metadata=metadata
                        )
                        return len(events)

                    return op

                return make

            def raw_one(writer: int) -> Op:
                conn = raw_conns[writer]

                async def op() -> int:
                    n = next(counter)
                    await conn.execute(_RAW_ONE, f"fan-{n}", created_json[n % len(created_json)])
                    return 1

                return op

            def raw_one_pooled(_: int) -> Op:
                async def op() -> int:
                    n = next(counter)
                    await pool.execute(_RAW_ONE, f"fan-{n}", created_json[n % len(created_json)])
                    return 1

                return op

            def raw_batch(writer: int) -> Op:
                conn = raw_conns[writer]

                async def op() -> int:
                    n = next(counter)
                    rows = batched_json[n % len(batched_json)]
                    await conn.execute(_RAW_MANY, f"fan-{n}", rows)
                    return len(rows)

                return op

            b = args.batch_size
            single = [
                Scenario("raw INSERT, 1 row", raw_one),
                Scenario("raw INSERT, 1 row, via pool", raw_one_pooled),
                *(
                    Scenario("append, 1 event" + _SUFFIX[mode], append_one(stores[mode]))
                    for mode in modes
                ),
                Scenario("append, 1 event, no NOTIFY", append_one(silent)),
            ]
            batch = [
                Scenario(f"raw INSERT, {b} rows", raw_batch),
                *(
                    Scenario(f"append, {b} events" + _SUFFIX[mode], append_batch(stores[mode]))
                    for mode in modes
                ),
                Scenario(f"append, {b} events, no NOTIFY", append_batch(silent)),
            ]
            groups = [single, batch]
            info = await pool.fetchrow(
                "SELECT current_setting('server_version') AS v, current_setting('fsync') AS f,"
                " current_setting('synchronous_commit') AS s"
            )
            print(
                f"fancrm append benchmark: PostgreSQL {info['v']} ({where}, fsync={info['f']},"
                f" synchronous_commit={info['s']}), {os.cpu_count()} CPUs; per scenario"
                f" {args.duration:g} s in {args.rounds} interleaved slices after"
                f" {args.warmup:g} s warm-up; events built in {build_s:.1f} s;"
                f" encryption {args.encryption}",
                flush=True,
            )
            print(_header(), flush=True)
            results: list[Result] = []
            for group in groups:
                for writers in args.writers:
                    for result in await run_group(pool, group, writers, args):
                        results.append(result)
                        print(_row(result), flush=True)
            _summary(results, args, modes, first)


_ENVELOPE = ("originator_id", "originator_version", "originator_topic")


def event_json(event: DomainEvent) -> str:
    """The event's own fields as JSON, as a plain store would keep them: the raw rows."""
    fields = msgspec.to_builtins(event)
    for key in _ENVELOPE:
        fields.pop(key, None)
    return msgspec.json.encode(fields).decode()


async def _close_all(conns: list[asyncpg.Connection]) -> None:
    for conn in conns:
        await conn.close()


def _header() -> str:
    return (
        f"{'scenario':<33} {'writers':>7} {'commits/s':>9} {'events/s':>8}"
        f" {'range events/s':>15} {'p50 ms':>7} {'p99 ms':>7} {'cpu us/op bench+pg':>19}\n"
        + "-"
        * 111
    )


def _row(r: Result) -> str:
    low, high = min(r.slice_rates), max(r.slice_rates)
    spread = f"{_short(low)}-{_short(high)}"
    pg = f"{r.pg_cpu / r.ops * 1e6:.0f}" if r.pg_cpu is not None and r.ops else "n/a"
    mine = f"{r.bench_cpu / r.ops * 1e6:.0f}" if r.ops else "n/a"
    return (
        f"{r.scenario:<33} {r.writers:>7} {r.ops_per_s:>9,.0f} {r.events_per_s:>8,.0f}"
        f" {spread:>15} {r.percentile_ms(0.5):>7.2f} {r.percentile_ms(0.99):>7.2f}"
        f" {mine + ' + ' + pg:>19}"
    )


def _short(rate: float) -> str:
    return f"{rate / 1000:.1f}k" if rate >= 1000 else f"{rate:.0f}"


def _summary(results: list[Result], args: argparse.Namespace, modes: list[str], first: str) -> None:
    def rate(name: str, writers: int) -> float:
        for r in results:
            if r.scenario == name and r.writers == writers:
                return r.events_per_s
        return float("nan")

    def cpu(name: str, writers: int) -> float:
        """CPU (bench + pg) per event: steadier than rates when the host is busy."""
        for r in results:
            if r.scenario == name and r.writers == writers and r.pg_cpu is not None:
                return (r.bench_cpu + r.pg_cpu) / r.events
        return float("nan")

    b = args.batch_size
    deployed = "append" + _SUFFIX[first]
    print()
    print(
        f"{'summary (events/s)':<26} {'writers':>7} {'raw':>8} {'append':>8} {'/raw':>5}"
        f" {'no encr.':>8} {'/raw':>5} {'off/on':>6} {'encr. cost':>10} {'cpu':>4}"
        f" {'no NOTIFY':>9} {'NOTIFY cost':>11}"
    )
    print("-" * 111)
    worst_single, best_batch = float("inf"), 0.0
    worst_cost = worst_cpu_cost = float("-inf")
    for label, raw, app in (
        ("single event", "raw INSERT, 1 row", "append, 1 event"),
        (f"batch of {b}", f"raw INSERT, {b} rows", f"append, {b} events"),
    ):
        for w in args.writers:
            r = rate(raw, w)
            on, off = rate(app, w), rate(app + _SUFFIX["off"], w)
            quiet = rate(app + ", no NOTIFY", w)
            shown = on if first == "on" else off
            cost = 1 - on / off
            cpu_cost = 1 - cpu(app + _SUFFIX["off"], w) / cpu(app, w)
            print(
                f"{label:<26} {w:>7} {r:>8,.0f} {_num(on, ',.0f'):>8} {_num(on / r, '.2f'):>5}"
                f" {_num(off, ',.0f'):>8} {_num(off / r, '.2f'):>5}"
                f" {_num(off / on, '.2f'):>6} {_num(cost, '.0%'):>10} {_num(cpu_cost, '.0%'):>4}"
                f" {quiet:>9,.0f} {1 - shown / quiet:>11.0%}"
            )
            if "on" in modes and "off" in modes:
                worst_cost = max(worst_cost, cost)
                worst_cpu_cost = max(worst_cpu_cost, cpu_cost)
            if label == "single event":
                worst_single = min(worst_single, shown / r)
            else:
                best_batch = max(best_batch, shown)
    print(
        "(append: encryption on, as deployed; no encr.: PersonalDataCodec(None); off/on: the"
        " rate without\n encryption over the rate with it; encr. cost: 1 - on/off, the share"
        " of the rate encryption takes; cpu: the same\n share of the CPU per event (bench + pg),"
        " steadier than rates on a busy host; NOTIFY cost: the share of the\n no-NOTIFY rate"
        f" lost with the Notifier, on the {'encrypting' if first == 'on' else 'clear'} store)"
    )
    for w in args.writers:
        held, pooled = rate("raw INSERT, 1 row", w), rate("raw INSERT, 1 row, via pool", w)
        print(
            f"pool acquire/release, {w} writer(s): raw INSERT via the pool reaches"
            f" {pooled / held:.2f} of a held connection's commits/s"
        )
    print()
    where = "" if first == "on" else " (measured without encryption: not as deployed)"
    print(
        f"goal: single-event {deployed} >= {SINGLE_GOAL_RATIO:.0%} of raw INSERT commits/s at"
        f" every writer count: worst ratio {worst_single:.2f} ->"
        f" {'met' if worst_single >= SINGLE_GOAL_RATIO else 'NOT met'}{where}"
    )
    print(
        f"goal: batched {deployed} >= {BATCH_GOAL_EVENTS:,} events/s: best {best_batch:,.0f} ->"
        f" {'met' if best_batch >= BATCH_GOAL_EVENTS else 'NOT met'}{where}"
    )
    if worst_cost != float("-inf"):
        worst = max(worst_cost, worst_cpu_cost)
        print(
            f"goal: encryption costs < {ENCRYPTION_GOAL_COST:.0%} of the append rate in every"
            f" scenario: worst {worst_cost:.1%} by rate, {worst_cpu_cost:.1%} by CPU per event"
            f" -> {'met' if worst < ENCRYPTION_GOAL_COST else 'NOT met'}"
        )


_SUFFIX = {"on": "", "off": ", no encryption"}


def _num(value: float, spec: str) -> str:
    return "-" if value != value else format(value, spec)  # NaN: the scenario did not run


def _writers(text: str) -> list[int]:
    try:
        values = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        values = []
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError("a comma-separated list of positive integers")
    return values


def main() -> None:
    parser = argparse.ArgumentParser(
        description="Event-store append throughput against raw INSERTs (see the docstring)."
    )
    parser.add_argument(
        "--duration", type=float, default=5.0, help="timed seconds per scenario (5)"
    )
    parser.add_argument("--rounds", type=int, default=5, help="interleaved slices per scenario (5)")
    parser.add_argument(
        "--warmup", type=float, default=0.5, help="untimed seconds per scenario first (0.5)"
    )
    parser.add_argument(
        "--writers", type=_writers, default=[1, 8], help="concurrent writers, e.g. 1,8 (default)"
    )
    parser.add_argument("--batch-size", type=int, default=100, help="events per batch (100)")
    parser.add_argument(
        "--prebuilt", type=int, default=20_000, help="distinct single events built (20000)"
    )
    parser.add_argument(
        "--prebuilt-batches", type=int, default=200, help="distinct batches built (200)"
    )
    parser.add_argument(
        "--encryption",
        choices=("on", "off", "both"),
        default="both",
        help="append with personal fields encrypted (as deployed), in clear, or both (both)",
    )
    parser.add_argument(
        "--synchronous-commit",
        choices=("on", "off"),
        default="on",
        help="the scratch database's synchronous_commit; off leaves only CPU cost (on)",
    )
    args = parser.parse_args()
    if args.batch_size < 1 or args.rounds < 1 or args.duration <= 0:
        parser.error("--batch-size and --rounds must be at least 1, --duration above 0")
    configure_logging("WARNING", json=False)
    asyncio.run(run(args))


if __name__ == "__main__":
    main()
