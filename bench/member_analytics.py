"""GET /api/analytics/members over 30 days of an agency's work: 50 members, 5 creator
accounts, 1,000,000 messages (issue 16, "Figures to measure and report": p95 < 100 ms).

    uv run python bench/member_analytics.py                   # 1,000,000 messages, embedded
    uv run python bench/member_analytics.py --messages 50000  # a quick run (under a minute)
    DATABASE_URL=postgresql://... uv run python bench/member_analytics.py  # a database there

On a scratch database (DATABASE_URL's server, or an embedded one), wired as ``bootstrap.build``
wires production (personal fields sealed under a made-up ``CRM_MASTER_KEY``):

1. The agency, through the app (in process, httpx ASGITransport) with a creator key of the
   workspace (``create_api_key``): ``--accounts - 1`` more accounts (``POST
   /api/workspace/accounts``) and ``--members`` members with access to all of them (``POST
   /api/workspace/members``, one manager in ten, the rest chatters; each invite accepted);
   then the ``workspaces`` view caught up.
2. The log, appended through the event store (``append_all``, ``--chunk`` streams a call,
   ``--writers`` concurrent writers, each stream's writes with its own metadata: tenant = the
   account, actor ``member:<id>`` for what a member did, ``webhook`` / ``sender`` otherwise),
   in the order of the events' timestamps, which cover the 30 UTC days up to now (set with
   ``dataclasses.replace(event, timestamp=...)``). Three quarters of the messages start a
   conversation turn (a random member, account and fan; ``--fans`` fans per account); a third of
   all messages draw a fan's reply (``InboundMessage.Received``, 30 s to 6 h later); three
   replies in four are answered by a random member 20 s to 2 h later (a message that answers).
   One message in ten is a PPV (5 to 50 $); 30% of them are bought 2 min to 24 h later
   (``Dispatched`` + ``Sent`` as the sender records them, then ``Purchased`` in the name of
   the member who sent it). Every member may send on every account: every (account, member,
   day) has rows, the most the read model can hold for this many messages.
3. The ``analytics_members`` projection over the whole log: one ``ProjectionRunner``, batches
   of ``--batch-size``, a fresh container (cold key cache, as a new worker has it), the
   garbage collector as ``crm projections rebuild`` sets it. Printed: events/s and CPU per
   event of this process and of Postgres (when local). Then ``ANALYZE`` of its tables (what
   autovacuum does within a minute of such a load).
4. The plan (``EXPLAIN (ANALYZE, BUFFERS)``) of the read model's query (``_DAILY``) for the
   default span and every account, and where the time of one
   ``figures()`` call goes, measured in this process.
5. The route over HTTP, against ``crm serve`` in a separate process (one uvicorn worker, as
   bench/api.py runs it): ``--requests`` requests (after 20 not counted) of the default span
   (the last 30 UTC days), from one keep-alive client one after the other (``--concurrency``
   for more): three in five for the whole workspace, one with ``accountId``, one with
   ``memberId``. Printed: p50/p95/p99/max latency (ms, request sent to body read) per kind and
   overall, rows in the answers, their size, and the API process's CPU per request.

Nothing asserts a timing: the script prints figures.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import gc
import heapq
import itertools
import math
import os
import random
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import _common
import asyncpg
import httpx
import msgspec
from _common import GroupCpuMeter, PgCpuMeter, crm_serve, free_port, percentile, pg_pids

from adapters import bootstrap
from adapters.config import Settings
from adapters.crypto import generate_master_key
from adapters.http.app import create_app
from adapters.observability import configure_logging
from adapters.postgres.api_keys import create_api_key
from adapters.postgres.member_analytics_read_model import _DAILY
from application.ports import EventMetadata, EventStore, StreamWrite
from domain.inbound import InboundMessage
from domain.message import Message
from projections.analytics_members import MemberAnalyticsProjection
from projections.runner import ProjectionRunner, replay_gc
from projections.workspaces import WorkspacesProjection

P95_GOAL_MS = 100.0
DAYS = 30  # the route's default span
FIGURES = "/api/analytics/members"
REPLY_SHARE = 1 / 3  # messages that draw a fan's reply
ANSWERED_SHARE = 0.75  # fans' replies a member answers
PPV_SHARE = 0.10
BOUGHT_SHARE = 0.30
WARMUP_REQUESTS = 20


# --- the agency ----------------------------------------------------------------------------


@dataclass
class Agency:
    workspace_id: str
    owner_key: str
    accounts: list[str]
    members: list[str]


def _created(response: httpx.Response) -> dict[str, Any]:
    if response.status_code != 201:
        raise SystemExit(f"{response.request.url}: {response.status_code} {response.text}")
    body: dict[str, Any] = response.json()
    return body


async def found_agency(container: bootstrap.Container, accounts: int, members: int) -> Agency:
    """The workspace, its accounts and members, made as a client would make them."""
    workspace_id = f"agency-{uuid.uuid4().hex[:8]}"
    key, _ = await create_api_key(container.pool, user_id=workspace_id, role="creator")
    owner = {"Authorization": f"Bearer {key}"}
    agency = Agency(workspace_id, key, [workspace_id], [])
    transport = httpx.ASGITransport(app=create_app(container=container))
    async with httpx.AsyncClient(transport=transport, base_url="http://bench") as api:
        for i in range(1, accounts):
            added = await api.post(
                "/api/workspace/accounts", json={"name": f"Creator {i}"}, headers=owner
            )
            agency.accounts.append(_created(added)["accountId"])
        for i in range(members):
            role = "manager" if i % 10 == 0 else "chatter"
            invite = {"role": role, "accounts": "all", "name": f"Member {i}"}
            invited = _created(await api.post("/api/workspace/members", json=invite, headers=owner))
            token = {"token": invited["inviteToken"]}
            accepted = _created(await api.post("/api/workspace/invites/accept", json=token))
            agency.members.append(accepted["memberId"])
    await ProjectionRunner(container.projection_store, WorkspacesProjection()).catch_up()
    return agency


# --- the log -------------------------------------------------------------------------------


def _log_uniform(rng: random.Random, low: float, high: float) -> float:
    return math.exp(rng.uniform(math.log(low), math.log(high)))


@dataclass
class Tally:
    messages: int = 0
    ppv: int = 0
    bought: int = 0
    replies: int = 0
    answers: int = 0
    events: Counter[str] = field(default_factory=Counter)


class Timeline:
    """The agency's 30 days as stream writes in the order of their timestamps. Each write
    comes with whether more writes of its stream will follow (a bought PPV's)."""

    def __init__(self, agency: Agency, messages: int, fans: int, seed: int) -> None:
        self.agency = agency
        self.fans = fans
        self.rng = random.Random(seed)
        self.tally = Tally()
        self.end = datetime.now(UTC)
        self.start = datetime.combine(
            self.end.date() - timedelta(days=DAYS - 1), datetime.min.time(), UTC
        )
        self.span = (self.end - self.start).total_seconds()
        # Turns started; answers make up the rest (a third of messages draw a reply, three
        # replies in four are answered).
        self.turns = round(messages * (1 - REPLY_SHARE * ANSWERED_SHARE))
        self._pending: list[tuple[float, int, Any]] = []
        self._seq = itertools.count()
        self._metadata: dict[tuple[str, str], EventMetadata] = {}

    def writes(self) -> Iterator[tuple[StreamWrite, bool]]:
        rng = self.rng
        for k in range(self.turns):
            at = self.span * (k + rng.random()) / self.turns
            yield from self._due(at)
            account = rng.randrange(len(self.agency.accounts))
            yield from self._send(at, account, rng.randrange(self.fans))
        yield from self._due(self.span)

    def _due(self, until: float) -> Iterator[tuple[StreamWrite, bool]]:
        while self._pending and self._pending[0][0] <= until:
            at, _, (kind, first, second) = heapq.heappop(self._pending)
            if kind == "write":
                yield first, second
            elif kind == "reply":
                yield from self._reply(at, first, second)
            else:
                yield from self._send(at, first, second)

    def _later(self, at: float, item: tuple[str, Any, Any]) -> None:
        if at <= self.span:  # what would happen after now is left out
            heapq.heappush(self._pending, (at, next(self._seq), item))

    def _send(self, at: float, account: int, fan: int) -> Iterator[tuple[StreamWrite, bool]]:
        rng, tally = self.rng, self.tally
        tenant = self.agency.accounts[account]
        member = rng.choice(self.agency.members)
        conversation = (account + 1) * 1_000_000 + fan
        price = rng.randrange(500, 5001, 100) if rng.random() < PPV_SHARE else 0
        message = Message.queue(
            message_id=str(uuid.UUID(int=rng.getrandbits(128), version=4)),
            tenant=tenant,
            conversation_id=conversation,
            fan_id=conversation,
            content=f"Hey, something new for you ({tally.messages})",
            price_cents=price,
            sent_by=member,
        )
        tally.messages += 1
        tally.ppv += price > 0
        bought = price > 0 and rng.random() < BOUGHT_SHARE
        yield self._write(message, at, tenant, f"member:{member}"), bought
        if bought:
            tally.bought += 1
            message.dispatch("normal")
            message.mark_sent(f"p-{tally.messages}")
            sent_at = at + rng.uniform(1, 10)
            self._later(sent_at, ("write", self._write(message, sent_at, tenant, "sender"), True))
            paid_at = sent_at + _log_uniform(rng, 120, 86_400)
            message.purchase(price)
            paid = self._write(message, paid_at, tenant, f"member:{member}")
            self._later(paid_at, ("write", paid, False))
        if rng.random() < REPLY_SHARE:
            self._later(at + _log_uniform(rng, 30, 6 * 3600), ("reply", account, fan))

    def _reply(self, at: float, account: int, fan: int) -> Iterator[tuple[StreamWrite, bool]]:
        rng = self.rng
        tenant = self.agency.accounts[account]
        conversation = (account + 1) * 1_000_000 + fan
        inbound = InboundMessage.receive(
            message_id=str(uuid.UUID(int=rng.getrandbits(128), version=4)),
            tenant=tenant,
            conversation_id=conversation,
            fan_id=conversation,
            content="hey, tell me more",
            platform_message_id=f"of-{self.tally.replies}",
        )
        self.tally.replies += 1
        yield self._write(inbound, at, tenant, "webhook"), False
        if rng.random() < ANSWERED_SHARE:
            self.tally.answers += 1
            self._later(at + _log_uniform(rng, 20, 2 * 3600), ("answer", account, fan))

    def _write(self, aggregate: Any, at: float, tenant: str, actor: str) -> StreamWrite:
        when = self.start + timedelta(seconds=at)
        events = [dataclasses.replace(e, timestamp=when) for e in aggregate.collect_events()]
        for event in events:
            self.tally.events[type(event).__qualname__] += 1
        metadata = self._metadata.get((tenant, actor))
        if metadata is None:
            metadata = EventMetadata(
                tenant=tenant, actor=actor, correlation_id="bench", causation_id="bench"
            )
            self._metadata[(tenant, actor)] = metadata
        return StreamWrite(
            aggregate.id, "message", events, events[0].originator_version - 1, metadata=metadata
        )


@dataclass
class Chunk:
    """One ``append_all``: writes to distinct streams, after the chunks that hold earlier
    writes of the same streams have committed."""

    index: int
    writes: list[StreamWrite] = field(default_factory=list)
    after: set[int] = field(default_factory=set)


def chunks(writes: Iterator[tuple[StreamWrite, bool]], size: int) -> Iterator[Chunk]:
    open_streams: dict[str, int] = {}  # stream -> chunk of its last write, more to follow
    chunk, streams, carried = Chunk(0), set[str](), list[tuple[StreamWrite, bool]]()

    def add(write: StreamWrite, follows: bool) -> None:
        if write.stream_id in streams:  # one write per stream a call: the next chunk takes it
            carried.append((write, follows))
            return
        streams.add(write.stream_id)
        before = open_streams.pop(write.stream_id, None)
        if before is not None:
            chunk.after.add(before)
        if follows:
            open_streams[write.stream_id] = chunk.index
        chunk.writes.append(write)

    for write, follows in writes:
        add(write, follows)
        if len(chunk.writes) >= size:
            yield chunk
            chunk, streams = Chunk(chunk.index + 1), set()
            waiting, carried[:] = list(carried), []
            for item in waiting:
                add(*item)
    while chunk.writes or carried:
        yield chunk
        chunk, streams = Chunk(chunk.index + 1), set()
        waiting, carried[:] = list(carried), []
        for item in waiting:
            add(*item)


async def fill(store: EventStore, source: Iterator[Chunk], writers: int, workspace: str) -> float:
    """Every chunk appended, ``writers`` at a time; a chunk waits for those it follows."""
    committed: dict[int, asyncio.Event] = {}
    default = EventMetadata(
        tenant=workspace, actor="bench", correlation_id="bench", causation_id="bench"
    )

    async def writer() -> None:
        for chunk in source:  # shared iterator: chunks are taken in order
            committed[chunk.index] = asyncio.Event()
            for before in chunk.after:
                await committed[before].wait()
            if chunk.writes:
                await store.append_all(chunk.writes, metadata=default)
            committed[chunk.index].set()

    started = time.perf_counter()
    await asyncio.gather(*(writer() for _ in range(writers)))
    return time.perf_counter() - started


# --- the replay ----------------------------------------------------------------------------


async def replay(settings: Settings, batch_size: int) -> tuple[int, float, float, float | None]:
    """The projection over the whole log from a fresh container. Returns events, seconds,
    CPU seconds of this process and of Postgres (None when not measurable)."""
    container = await bootstrap.build(settings)
    try:
        runner = ProjectionRunner(
            container.projection_store, MemberAnalyticsProjection(), batch_size=batch_size
        )
        meter = PgCpuMeter(await pg_pids(container.pool))
        mine0, pg0 = meter.sample()
        started = time.perf_counter()
        events = 0
        with replay_gc():
            while applied := await runner.run_batch():
                events += applied
        seconds = time.perf_counter() - started
        mine1, pg1 = meter.sample()
        return events, seconds, mine1 - mine0, PgCpuMeter.delta(pg0, pg1)
    finally:
        await container.close()


# --- the read side -------------------------------------------------------------------------


async def explain(pool: asyncpg.Pool, agency: Agency, since: Any, until: Any) -> None:
    args = (agency.accounts, since, until, None)
    for name, query, given in (("_DAILY", _DAILY, args),):
        rows = await pool.fetch("EXPLAIN (ANALYZE, BUFFERS) " + query, *given)
        print(f"\nplan of {name} (every account, {since} to {until}, every member):")
        for row in rows:
            print("  " + row[0])


async def breakdown(container: bootstrap.Container, agency: Agency, since: Any, until: Any) -> None:
    """Where one ``figures()`` call for the whole workspace spends its time, in this process."""
    args = (agency.accounts, since, until, None)
    view = container.member_analytics
    times: dict[str, list[float]] = {"_DAILY": [], "figures()": [], "json": []}
    rows: dict[str, int] = {}
    for _ in range(10):
        for name, query in (("_DAILY", _DAILY),):
            t0 = time.perf_counter()
            rows[name] = len(await container.pool.fetch(query, *args))
            times[name].append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        members, accounts = await view.figures(agency.workspace_id, agency.accounts, since, until)
        times["figures()"].append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        msgspec.json.encode({"accounts": accounts, "members": members})
        times["json"].append(time.perf_counter() - t0)
    print("\nin this process, 10 calls for the whole workspace (median ms):")
    for name, values in times.items():
        fetched = f", {rows[name]:,} rows" if name in rows else ""
        print(f"  {name:<10} {percentile(values, 0.5) * 1000:8.1f}{fetched}")
    print(
        "  (figures() runs _DAILY (summed by member-day and account-day in Postgres) and the"
        " names' query, then builds the answer; json: encoding its answer)"
    )


# An experiment, not the read model's code: the same figures summed and the medians found in
# Postgres (one row per member-day, account-day, member and account), to see what the read
# model's queries would cost if they returned only the rows the answer shows.
_SQL_SUMS = """
SELECT GROUPING(member_id, tenant_id, day) AS level, member_id, tenant_id, day,
       sum(messages_sent), sum(ppv_sent), sum(ppv_bought), sum(revenue_cents), sum(replies),
       sum(conversations_handled), sum(answers)
FROM analytics_member_daily
WHERE tenant_id = ANY($1::text[]) AND day BETWEEN $2 AND $3
  AND ($4::text IS NULL OR member_id = $4)
GROUP BY GROUPING SETS ((member_id, day), (member_id), (tenant_id, day), (tenant_id))
"""
_SQL_MEDIANS = """
WITH merged AS (
    SELECT GROUPING(member_id, tenant_id, day) AS level, member_id, tenant_id, day, bucket,
           sum(answers) AS n
    FROM analytics_member_answer_times
    WHERE tenant_id = ANY($1::text[]) AND day BETWEEN $2 AND $3
      AND ($4::text IS NULL OR member_id = $4)
    GROUP BY GROUPING SETS ((member_id, day, bucket), (member_id, bucket),
                            (tenant_id, day, bucket), (tenant_id, bucket))
), running AS (
    SELECT level, member_id, tenant_id, day, bucket,
           sum(n) OVER (PARTITION BY level, member_id, tenant_id, day ORDER BY bucket) AS seen,
           sum(n) OVER (PARTITION BY level, member_id, tenant_id, day) AS total
    FROM merged
)
SELECT DISTINCT ON (level, member_id, tenant_id, day) level, member_id, tenant_id, day, bucket
FROM running WHERE 2 * seen >= total
ORDER BY level, member_id, tenant_id, day, bucket
"""


async def sql_fold(pool: asyncpg.Pool, agency: Agency, since: Any, until: Any) -> None:
    args = (agency.accounts, since, until, None)
    times: dict[str, list[float]] = {"sums": [], "medians": []}
    rows: dict[str, int] = {}
    for _ in range(10):
        for name, query in (("sums", _SQL_SUMS), ("medians", _SQL_MEDIANS)):
            t0 = time.perf_counter()
            rows[name] = len(await pool.fetch(query, *args))
            times[name].append(time.perf_counter() - t0)
    print(
        "\nexperiment: the same sums and medians computed in Postgres (GROUPING SETS, a running"
        " sum over the merged buckets), 10 calls (median ms):"
    )
    for name, values in times.items():
        print(f"  {name:<10} {percentile(values, 0.5) * 1000:8.1f}, {rows[name]:,} rows")
    for name, query in (("sums", _SQL_SUMS), ("medians", _SQL_MEDIANS)):
        plan = await pool.fetch("EXPLAIN (ANALYZE) " + query, *args)
        print(f"  {name}: " + plan[-1][0])


@dataclass
class Kind:
    name: str
    params: list[dict[str, str]]
    latencies: list[float] = field(default_factory=list)
    sizes: list[int] = field(default_factory=list)
    rows: list[tuple[int, int, int]] = field(default_factory=list)  # members, accounts, days


async def measure_http(
    url: str, master_key: str, agency: Agency, requests: int, concurrency: int
) -> None:
    kinds = [
        Kind("whole workspace", [{}]),
        Kind("accountId", [{"accountId": a} for a in agency.accounts]),
        Kind("memberId", [{"memberId": m} for m in agency.members]),
    ]
    plan = [kinds[0], kinds[0], kinds[0], kinds[1], kinds[2]]  # three in five: everything
    port = free_port()
    env = {"DATABASE_URL": url, "CRM_MASTER_KEY": master_key}
    with crm_serve(env, port, 1, unset=["REDIS_URL"]) as server:
        await _common.wait_ready(server)
        clients = [
            _common.RawClient(server.base_url, {"Authorization": f"Bearer {agency.owner_key}"})
            for _ in range(concurrency)
        ]
        meter = GroupCpuMeter([server.proc.pid], [])
        counter = itertools.count()

        async def one(client: _common.RawClient, count: bool) -> None:
            i = next(counter)
            kind = plan[i % len(plan)]
            params = kind.params[i % len(kind.params)]
            query = "&".join(f"{k}={v}" for k, v in params.items())
            t0 = time.perf_counter()
            response = await client.get(FIGURES + (f"?{query}" if query else ""))
            elapsed = time.perf_counter() - t0
            if response.status_code != 200:
                raise SystemExit(f"{FIGURES}?{query}: {response.status_code} {response.body!r}")
            if count:
                body = response.json()
                kind.latencies.append(elapsed)
                kind.sizes.append(len(response.body))
                days = sum(len(m["days"]) for m in body["members"])
                days += sum(len(a["days"]) for a in body["accounts"])
                kind.rows.append((len(body["members"]), len(body["accounts"]), days))

        async def loop(client: _common.RawClient, n: int, count: bool) -> None:
            for _ in range(n):
                await one(client, count)

        try:
            await asyncio.gather(*(loop(c, WARMUP_REQUESTS // concurrency, False) for c in clients))
            cpu0 = meter.sample()
            started = time.perf_counter()
            await asyncio.gather(*(loop(c, requests // concurrency, True) for c in clients))
            wall = time.perf_counter() - started
            api_cpu = GroupCpuMeter.delta(cpu0["api"], meter.sample()["api"])
        finally:
            for client in clients:
                await client.aclose()
    done = sum(len(k.latencies) for k in kinds)
    print(
        f"\nGET {FIGURES} (default span: the last {DAYS} UTC days), crm serve in its own"
        f" process (1 worker), {done} requests from {concurrency} keep-alive client(s),"
        f" {done / wall:.0f} requests/s"
    )
    print(
        f"{'requests':<16} {'n':>4} {'p50 ms':>7} {'p95 ms':>7} {'p99 ms':>7} {'max ms':>7}"
        f" {'members':>8} {'accounts':>8} {'day rows':>8} {'bytes':>8}"
    )
    everything: list[float] = []
    for kind in kinds:
        everything += kind.latencies
        members, accounts, days = kind.rows[-1]
        print(
            f"{kind.name:<16} {len(kind.latencies):>4} {_ms(kind.latencies, 0.5)}"
            f" {_ms(kind.latencies, 0.95)} {_ms(kind.latencies, 0.99)} {_ms(kind.latencies, 1)}"
            f" {members:>8} {accounts:>8} {days:>8} {round(sum(kind.sizes) / len(kind.sizes)):>8,}"
        )
    print(
        f"{'all':<16} {len(everything):>4} {_ms(everything, 0.5)} {_ms(everything, 0.95)}"
        f" {_ms(everything, 0.99)} {_ms(everything, 1)}"
    )
    if api_cpu is not None:
        print(f"API process CPU: {api_cpu / done * 1000:.1f} ms per request")
    p95 = percentile(everything, 0.95) * 1000
    print(
        f"goal: p95 < {P95_GOAL_MS:.0f} ms over 30 days of {len(agency.members)} members:"
        f" {p95:.1f} ms -> {'met' if p95 < P95_GOAL_MS else 'NOT met'}"
    )


def _ms(values: list[float], q: float) -> str:
    return f"{percentile(values, q) * 1000:>7.1f}"


# --- the run -------------------------------------------------------------------------------


async def run(args: argparse.Namespace) -> None:
    master_key = generate_master_key()
    async with (
        _common.database_server() as (admin_url, where, _),
        _common.scratch_databases(admin_url, 1) as (url,),
    ):
        settings = Settings.from_env(
            {"CRM_MASTER_KEY": master_key},
            database_url=url,
            pool_min_size=args.writers,
            pool_max_size=args.writers + 2,
        )
        container = await bootstrap.build(settings)
        try:
            version = await container.pool.fetchval("SHOW server_version")
            print(
                f"fancrm member analytics benchmark: PostgreSQL {version} ({where}),"
                f" {os.cpu_count()} CPUs; {args.messages:,} messages asked"
            )
            agency = await found_agency(container, args.accounts, args.members)
            timeline = Timeline(agency, args.messages, args.fans, args.seed)
            fill_s = await fill(
                container.events,
                chunks(timeline.writes(), args.chunk),
                args.writers,
                agency.workspace_id,
            )
            await container.pool.execute("VACUUM ANALYZE events")
            size = await container.pool.fetchval(
                "SELECT pg_size_pretty(pg_total_relation_size('events'))"
            )
        finally:
            await container.close()
        tally = timeline.tally
        total = sum(tally.events.values())
        print(
            f"agency: {len(agency.accounts)} accounts, {len(agency.members)} members (all"
            f" accounts each), {args.fans:,} fans per account; {timeline.start:%Y-%m-%d %H:%M}"
            f" to {timeline.end:%Y-%m-%d %H:%M} UTC"
        )
        print(
            f"log: {tally.messages:,} messages ({tally.messages - tally.answers:,} turns,"
            f" {tally.answers:,} answers; {tally.ppv:,} PPV, {tally.bought:,} bought),"
            f" {tally.replies:,} fans' replies; {total:,} events ("
            + ", ".join(f"{n:,} {name}" for name, n in sorted(tally.events.items()))
            + ")"
        )
        print(
            f"appended in {fill_s:.1f} s with {args.writers} writers, {args.chunk} streams a"
            f" call: {total / fill_s:,.0f} events/s; events table {size}"
        )
        del timeline
        gc.collect()

        events, seconds, mine, pg = await replay(settings, args.batch_size)
        pg_us = f"{pg / events * 1e6:.1f}" if pg is not None else "n/a"
        print(
            f"replay of analytics_members: {events:,} events in {seconds:.1f} s, batches of"
            f" {args.batch_size}: {events / seconds:,.0f} events/s; CPU per event"
            f" {mine / events * 1e6:.1f} µs (this process) + {pg_us} µs (Postgres)"
        )

        container = await bootstrap.build(settings)
        try:
            pool = container.pool
            for table in MemberAnalyticsProjection.tables:
                await pool.execute(f"ANALYZE {table}")
            counts = [
                f"{table} {await pool.fetchval(f'SELECT count(*) FROM {table}'):,}"
                for table in MemberAnalyticsProjection.tables
            ]
            print("rows: " + ", ".join(counts))
            until = datetime.now(UTC).date()
            since = until - timedelta(days=DAYS - 1)
            await explain(pool, agency, since, until)
            await breakdown(container, agency, since, until)
            await sql_fold(pool, agency, since, until)
        finally:
            await container.close()
        await measure_http(url, master_key, agency, args.requests, args.concurrency)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--messages", type=int, default=1_000_000, help="messages (1000000)")
    parser.add_argument("--members", type=int, default=50, help="workspace members (50)")
    parser.add_argument("--accounts", type=int, default=5, help="creator accounts (5)")
    parser.add_argument("--fans", type=int, default=5000, help="fans per account (5000)")
    parser.add_argument("--writers", type=int, default=4, help="concurrent writers (4)")
    parser.add_argument("--chunk", type=int, default=200, help="streams per append_all (200)")
    parser.add_argument("--batch-size", type=int, default=2000, help="projector batch (2000)")
    parser.add_argument("--requests", type=int, default=500, help="timed requests (500)")
    parser.add_argument("--concurrency", type=int, default=1, help="HTTP clients (1)")
    parser.add_argument("--seed", type=int, default=16, help="random seed (16)")
    args = parser.parse_args()
    if min(args.messages, args.members, args.accounts, args.fans, args.writers, args.chunk) < 1:
        parser.error("counts must be at least 1")
    if args.requests < args.concurrency or args.concurrency < 1:
        parser.error("--requests must be at least --concurrency, which must be at least 1")
    configure_logging("WARNING", json=False)
    asyncio.run(run(args))


if __name__ == "__main__":
    main()
