"""Messages accepted per second by POST /api/onlyfans/messages/send, and its latency, under a
fixed number of concurrent clients.

    uv run python bench/send.py                   # embedded Postgres in a temp folder
    uv run python bench/send.py --no-redis --backlog 0   # the default scenario only
    DATABASE_URL=postgresql://... uv run python bench/send.py   # a scratch database there

The API runs as in production, in a separate process, as bench/api.py runs it: ``crm serve``
(uvicorn, ``--workers`` processes) on a fresh, migrated scratch database, ``LOG_LEVEL=WARNING``,
a ``CRM_MASTER_KEY`` made up for the run, no ``REDIS_URL`` (so the queue status behind each
answer's ``estimatedSendTime`` is read from Postgres on every request). No relay runs: accepted
messages stay in the outbox, as they would while the relay is behind.

This process creates an API key (role creator), seeds ``--seed`` fans through
``POST /api/crm/fans`` and sends each one message (which opens its conversation, so the timed
sends take the steady path: one message stream and one outbox row per request). Then
``--concurrency`` clients (asyncio tasks, each holding one HTTP/1.1 keep-alive connection)
each send their next message as soon as the last one is answered, to a random seeded fan, for
``--warmup`` seconds (not counted) then ``--duration`` seconds. The clients are
``_common.RawClient`` (bare asyncio streams, as wrk would drive a server: ~0.1 ms of CPU per
request) unless ``--client httpx`` (an httpx.AsyncClient each, ~1 ms per request, which this
process then takes from the API and Postgres on a small machine). A request counts as
accepted on 202. ``others`` in ``cores used`` is what the rest of the host used meanwhile
(busy CPU time of the whole machine less the three groups): a busy host slows every figure.

Two more scenarios (on by default):

* ``--redis`` (``--no-redis`` to skip): a second ``crm serve`` with ``REDIS_URL`` (an
  embedded redis-server), which caches the queue status for 3 s; interleaved with the first
  in ``--rounds`` slices of ``--duration / --rounds`` seconds each (so host noise hits both
  alike): what the status queries cost each request;
* ``--member`` (off by default; issue 16): the same sends by ``--concurrency`` more clients
  with a member's key (a chatter of every account of the workspace, invited and accepted
  through the API, the workspaces view caught up by this process), interleaved with the
  creator key's in the same slices: a member's key is never cached, so each of its requests
  looks the key and the member's standing up in Postgres;
* ``--backlog N`` (100,000; 0 to skip): N messages inserted straight into ``queue_messages``
  (queue ``normal``) after the others, then the first API measured again for ``--duration``:
  the status counts every queued message on each request.

Printed per scenario: accepted/s, latency percentiles (ms, from sending the request to having
read the whole response), errors (non-202 answers or transport errors), and the CPU cores used
on average, and CPU ms per request, of this load generator (``bench``), the API processes
(``api``) and Postgres (``pg``). After the runs: the plans and timings of the two queries the
queue status runs on every request without Redis, on the log and queue the run left behind;
and what the first API's Postgres connections were doing during its slices (sampled from
pg_stat_activity by ``application_name``), and how long its requests waited for a connection
from its pool: from asking the pool's own ``acquire()`` to holding a connection (p50, p95, p99
and max over the waits that ended inside the scenario's slices; bench/_connection_wait.py,
with ``--workers 1`` only).

Goal (from the issue): p95 < 50 ms at 50 concurrent clients (the reference's target: < 200
ms). The load generator, the API and Postgres share the machine's cores (2 on the reference
machine). Nothing here asserts a timing: the script prints figures.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import random
import secrets
import signal
import tempfile
import time
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import _common
import _connection_wait
import asyncpg
import httpx
from _common import (
    FANS,
    GroupCpuMeter,
    HttpResult,
    Server,
    crm_serve,
    database_server,
    free_port,
    load_clients,
    new_fan,
    percentile,
    pg_pids,
    raw_clients,
    scratch_databases,
    wait_ready,
)

from adapters import bootstrap
from adapters.config import Settings
from adapters.observability import configure_logging
from adapters.postgres.api_keys import create_api_key

P95_GOAL_MS = 50.0
REFERENCE_P95_MS = 200.0
GOAL_CONCURRENCY = 50
SEND = "/api/onlyfans/messages/send"

_TEXTS = (
    "Hey! New set just dropped, want a preview?",
    "Thanks for the tip, you made my day",
    "Exclusive video for my top fans this week",
    "Good morning! What would you like to see next?",
)


@dataclass
class Result(HttpResult):
    cpu: dict[str, float | None] = field(default_factory=dict)  # CPU seconds per group
    slices: list[tuple[float, float]] = field(default_factory=list)  # wall-clock, timed

    @property
    def accepted(self) -> int:
        return len(self.latencies) - self.errors


@asynccontextmanager
async def scratch_database(redis: bool) -> AsyncIterator[tuple[str, str, str | None]]:
    """A new, migrated database on DATABASE_URL's server or on an embedded one, dropped after;
    with ``redis``, an embedded redis-server too. Yields (url, where, redis url or None)."""
    async with database_server(embedded_stack=True) as (admin_url, where, stack):
        assert stack is not None
        redis_url = await asyncio.to_thread(stack.start_redis) if redis else None
        async with scratch_databases(admin_url) as urls:
            yield urls[0], where, redis_url


@contextlib.contextmanager
def api_server(
    url: str,
    master_key: str,
    redis_url: str | None,
    args: argparse.Namespace,
    waits_file: Path | None = None,
) -> Iterator[Server]:
    """`crm serve` in a child process, stopped (SIGTERM, then SIGKILL) on the way out; with
    ``waits_file``, its waits for a connection are timed (bench/_connection_wait.py)."""
    port = free_port()
    # asyncpg passes a DSN's unknown query parameters on as server settings: the API's
    # connections carry this name in pg_stat_activity.
    name = f"bench-api-{port}"
    query = urlsplit(url).query
    env = {
        "DATABASE_URL": urlunsplit(
            urlsplit(url)._replace(query=f"{query}&" * bool(query) + f"application_name={name}")
        ),
        "CRM_MASTER_KEY": master_key,
    }
    if redis_url:
        env["REDIS_URL"] = redis_url
    if args.pool_max is not None:
        env["CRM_POOL_MAX_SIZE"] = str(args.pool_max)
    prelude = ""
    if waits_file is not None:
        env[_connection_wait.FILE_VARIABLE] = str(waits_file)
        prelude = _connection_wait.PRELUDE
    with crm_serve(
        env, port, args.workers, unset=["REDIS_URL"], application_name=name, prelude=prelude
    ) as server:
        yield server


def new_message(fan_id: int) -> dict[str, Any]:
    message: dict[str, Any] = {"recipientId": str(fan_id), "content": random.choice(_TEXTS)}
    if random.random() < 0.3:
        message["mediaUrls"] = [f"https://cdn.example.com/{random.randrange(10**6)}.jpg"]
        message["priceCents"] = random.choice((500, 1000, 2500))
    return message


async def seed(clients: list[Any], count: int) -> tuple[list[int], int]:
    """Create ``count`` fans and send each one message (opening its conversation); returns
    the fan ids and how many requests were refused."""
    pending = iter(range(count))
    fan_ids: list[int] = []
    refused = 0

    async def worker(client: Any) -> None:
        nonlocal refused
        for _ in pending:
            response = await client.post(FANS, json=new_fan(email=True))
            if response.status_code != 201:
                refused += 1
                continue
            fan_id = int(response.json()["fan"]["id"])
            fan_ids.append(fan_id)
            response = await client.post(SEND, json=new_message(fan_id))
            refused += response.status_code != 202

    await asyncio.gather(*(worker(client) for client in clients))
    return fan_ids, refused


async def drive(
    clients: list[Any], fan_ids: list[int], seconds: float, result: Result | None
) -> None:
    """Each client sends its next message as soon as its last one is answered."""

    async def send(client: Any) -> Any:
        return await client.post(SEND, json=new_message(random.choice(fan_ids)))

    await _common.drive(clients, send, seconds, result, ok=lambda r: r.status_code == 202)


async def measure_slice(
    clients: list[Any],
    fan_ids: list[int],
    seconds: float,
    result: Result,
    meter: GroupCpuMeter,
) -> None:
    before = meter.sample()
    began = time.time()
    await drive(clients, fan_ids, seconds, result)
    result.slices.append((began, time.time()))
    after = meter.sample()
    for group, value in after.items():
        used = GroupCpuMeter.delta(before[group], value)
        old = result.cpu.get(group, 0.0)
        result.cpu[group] = None if used is None or old is None else old + used
    ours = [result.cpu.get(group) for group in _GROUPS]
    host = result.cpu.get("host")
    result.cpu["others"] = (
        None if host is None or any(v is None for v in ours) else host - sum(ours)  # type: ignore[misc]
    )


class ActivitySampler:
    """What one API server's Postgres connections (its ``application_name``) are doing,
    sampled from pg_stat_activity every few milliseconds while requests run: waiting for the
    API (idle, idle in transaction), running (active, no wait event: on CPU or waiting for
    one), or waiting on something (WAL flush, a lock...)."""

    def __init__(self, url: str, application_name: str, interval: float = 0.01) -> None:
        self._url = url
        self._name = application_name
        self._interval = interval
        self.counts: Counter[str] = Counter()
        self.samples = 0
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> ActivitySampler:
        self._conn = await asyncpg.connect(self._url)
        self._task = asyncio.create_task(self._sample())
        return self

    async def __aexit__(self, *_: object) -> None:
        assert self._task is not None
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        await self._conn.close()

    async def _sample(self) -> None:
        query = (
            "SELECT state, wait_event_type, wait_event FROM pg_stat_activity"
            " WHERE datname = current_database() AND application_name = $1"
        )
        while True:
            for row in await self._conn.fetch(query, self._name):
                self.counts[_activity(row)] += 1
            self.samples += 1
            await asyncio.sleep(self._interval)

    def lines(self) -> list[str]:
        total = sum(self.counts.values()) or 1
        per_sample = total / (self.samples or 1)
        head = (
            f"the API's Postgres connections, {self.samples:,} samples"
            f" ({per_sample:.1f} connections open on average):"
        )
        return [head] + [
            f"  {share / total:6.1%}  {what}" for what, share in self.counts.most_common(8)
        ]


def _activity(row: asyncpg.Record) -> str:
    state = row["state"] or "?"
    if state == "idle":
        return "idle: waiting for the API to send a query"
    if state == "idle in transaction":
        return "idle in transaction: waiting for the API mid-transaction"
    if row["wait_event_type"] is None:
        return f"{state}: running (on CPU, or waiting for one)"
    return f"{state}: waiting on {row['wait_event_type']}:{row['wait_event']}"


async def fill_backlog(pool: asyncpg.Pool, count: int) -> float:
    """``count`` messages straight into the Postgres queue (``normal``), as a relay would."""
    started = time.perf_counter()
    await pool.execute(
        "INSERT INTO queue_messages (queue, body)"
        " SELECT 'normal', '{\"messageId\": \"backlog-' || i || '\"}'"
        " FROM generate_series(1, $1) AS i",
        count,
    )
    await pool.execute("VACUUM ANALYZE queue_messages")
    return time.perf_counter() - started


_STATUS_QUERIES = {
    "queue stats (x2 per request)": (
        "SELECT count(*) FILTER (WHERE queue = $1 AND visible_at <= now()) AS visible,"
        " count(*) FILTER (WHERE queue = $1 AND visible_at > now()) AS in_flight,"
        " count(*) FILTER (WHERE queue = $2) AS dead_letters"
        " FROM queue_messages WHERE queue = $1 OR queue = $2",
        ("normal", "normal.dlq"),
    ),
    "last processed message": (
        "SELECT recorded_at FROM events"
        " WHERE stream_type = 'message' AND event_type IN ('MessageSent', 'MessageFailed')"
        " ORDER BY transaction_id DESC, position DESC LIMIT 1",
        (),
    ),
    # GET /messages/status for a creator key (adapters/queue_status.py, tenant_status).
    "a creator's own counts": (
        "SELECT count(*) FILTER (WHERE status IN ('queued', 'dispatched')) AS waiting,"
        " count(*) FILTER (WHERE status = 'failed') AS failed"
        " FROM messages WHERE tenant_id = $1 AND status IN ('queued', 'dispatched', 'failed')",
        ("bench",),
    ),
    "a creator's last processed": (
        "SELECT greatest(sent_at, failed_at) FROM messages"
        " WHERE tenant_id = $1 AND greatest(sent_at, failed_at) IS NOT NULL"
        " ORDER BY greatest(sent_at, failed_at) DESC LIMIT 1",
        ("bench",),
    ),
}


async def explain_status(pool: asyncpg.Pool) -> list[str]:
    """What the queue status (adapters/queue_status.py, without Redis) costs per request now:
    the same SQL, EXPLAIN ANALYZE'd: execution time and the rows each scan read."""
    lines = []
    for label, (sql, params) in _STATUS_QUERIES.items():
        rows = await pool.fetch(f"EXPLAIN (ANALYZE, FORMAT JSON) {sql}", *params)
        plan = rows[0][0]
        plan = plan[0] if isinstance(plan, list) else plan
        scans = []
        for node in _nodes(plan["Plan"]):
            if "Relation Name" not in node and "Index Name" not in node:
                continue
            loops = node.get("Actual Loops", 1)
            kept = node.get("Actual Rows", 0) * loops
            removed = node.get("Rows Removed by Filter", 0) * loops
            where = node.get("Index Name") or node.get("Relation Name")
            scans.append(
                f"{node['Node Type']} on {where}: {kept + removed:,.0f} rows read,"
                f" {removed:,.0f} of them removed by filter"
            )
        lines.append(f"  {label:<29} {plan['Execution Time']:7.2f} ms   " + "; ".join(scans))
    return lines


def _nodes(node: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield node
    for child in node.get("Plans", ()):
        yield from _nodes(child)


async def run(args: argparse.Namespace) -> None:
    async with scratch_database(args.redis) as (url, where, redis_url):
        # A master key made up for the scratch database, shared with the API processes.
        master_key = secrets.token_urlsafe(32)
        settings = Settings.from_env(
            {"CRM_MASTER_KEY": master_key}, database_url=url, pool_min_size=1, pool_max_size=2
        )
        container = await bootstrap.build(settings)
        try:
            key, _ = await create_api_key(container.pool, user_id="bench", role="creator")
            with contextlib.ExitStack() as servers, tempfile.TemporaryDirectory() as scratch:
                waits = Path(scratch, "connection-waits.json") if args.workers == 1 else None
                plain = servers.enter_context(api_server(url, master_key, None, args, waits))
                cached = (
                    servers.enter_context(api_server(url, master_key, redis_url, args))
                    if redis_url
                    else None
                )
                ready_s = max([await wait_ready(s) for s in (plain, cached) if s is not None])
                await _run_servers(args, container, key, plain, cached, where, ready_s, url, waits)
        finally:
            await container.close()


async def _member_key(container: bootstrap.Container, base_url: str, owner_key: str) -> str:
    """A chatter of every account, as a client invites one; the workspaces view caught up
    (no projection worker runs here), so its key is looked up as in steady state."""
    from projections.runner import ProjectionRunner
    from projections.workspaces import WorkspacesProjection

    owner = {"Authorization": f"Bearer {owner_key}"}
    async with httpx.AsyncClient(base_url=base_url, timeout=30) as client:
        invite = {"role": "chatter", "accounts": "all", "name": "Chatter"}
        invited = await client.post("/api/workspace/members", json=invite, headers=owner)
        token = {"token": invited.json()["inviteToken"]}
        accepted = await client.post("/api/workspace/invites/accept", json=token)
        if accepted.status_code != 201:
            raise SystemExit(f"accepting the invite answered {accepted.status_code}")
    await ProjectionRunner(container.projection_store, WorkspacesProjection()).catch_up()
    return str(accepted.json()["apiKey"])


async def _run_servers(
    args: argparse.Namespace,
    container: bootstrap.Container,
    key: str,
    plain: Server,
    cached: Server | None,
    where: str,
    ready_s: float,
    url: str,
    waits: Path | None,
) -> None:
    pool = container.pool
    async with contextlib.AsyncExitStack() as stack:
        clients = await stack.enter_async_context(
            _clients(args.client, plain.base_url, key, args.concurrency)
        )
        redis_clients = (
            await stack.enter_async_context(
                _clients(args.client, cached.base_url, key, args.concurrency)
            )
            if cached is not None
            else None
        )
        t0 = time.perf_counter()
        fan_ids, refused = await seed(clients[:20], args.seed)
        seed_s = time.perf_counter() - t0
        if not fan_ids:
            raise SystemExit(f"no fan could be created:\n{plain.tail()}")
        version = await pool.fetchval("SHOW server_version")
        pool_max = args.pool_max or Settings(database_url="-").pool_max_size
        print(
            f"fancrm send benchmark: crm serve --workers {args.workers} (pool max {pool_max}"
            f" per worker), PostgreSQL {version} ({where}), {os.cpu_count()} CPUs shared by"
            " the load generator, API and Postgres; no relay (accepted messages stay in the"
            " outbox)"
        )
        print(
            f"ready in {ready_s:.1f} s; seeded {len(fan_ids)} fans and one message each via the"
            f" API in {seed_s:.1f} s ({refused} refused); {args.concurrency} clients"
            f" ({_CLIENT_NAMES[args.client]} each), {args.warmup:g} s warm-up +"
            f" {args.duration:g} s per scenario in {args.rounds} interleaved slices"
        )
        scenarios: list[tuple[Result, list[Any]]] = [
            (Result(f"POST {SEND.rsplit('/', 2)[-2]}/send", args.concurrency), clients)
        ]
        if redis_clients is not None:
            scenarios.append((Result("  same, REDIS_URL set", args.concurrency), redis_clients))
        if args.member:
            member = await _member_key(container, plain.base_url, key)
            member_clients = await stack.enter_async_context(
                _clients(args.client, plain.base_url, member, args.concurrency)
            )
            scenarios.append((Result("  same, a member's key", args.concurrency), member_clients))
        for _, group in scenarios:
            await drive(group, fan_ids, args.warmup, None)
        api_pids = [s.proc.pid for s in (plain, cached) if s is not None]
        # After the warm-up: the pools are open.
        meter = GroupCpuMeter(api_pids, await pg_pids(pool), host=True)
        print(_header(), flush=True)
        slice_s = args.duration / args.rounds
        sampler = ActivitySampler(url, plain.application_name)
        for r in range(args.rounds):
            for k in range(len(scenarios)):
                result, group = scenarios[(k + r) % len(scenarios)]
                if group is clients:  # the default scenario's
                    async with sampler:
                        await measure_slice(group, fan_ids, slice_s, result, meter)
                else:
                    await measure_slice(group, fan_ids, slice_s, result, meter)
        for result, _ in scenarios:
            print(_row(result), flush=True)
        if args.backlog:
            fill_s = await fill_backlog(pool, args.backlog)
            result = Result(f"  same, {args.backlog:,} queued", args.concurrency)
            await drive(clients, fan_ids, args.warmup, None)
            meter = GroupCpuMeter(api_pids, await pg_pids(pool), host=True)
            await measure_slice(clients, fan_ids, args.duration, result, meter)
            print(_row(result) + f"  (backlog inserted in {fill_s:.1f} s)", flush=True)
            scenarios.append((result, clients))
        for server in (plain, cached):
            if server is not None and server.proc.poll() is not None:
                print(f"crm serve exited with {server.proc.returncode}:\n{server.tail()}")
        outbox = await pool.fetchval("SELECT count(*) FROM outbox")
        events = await pool.fetchval("SELECT count(*) FROM events WHERE stream_type = 'message'")
        queued = await pool.fetchval("SELECT count(*) FROM queue_messages")
        print()
        print(
            f"after the run: {outbox:,} messages in the outbox, {events:,} message events in the"
            f" log, {queued:,} in queue_messages; each send without Redis runs these for its"
            " estimatedSendTime:"
        )
        for line in await explain_status(pool):
            print(line)
        print()
        for line in sampler.lines():
            print(line)
        print()
        plain_results = [result for result, group in scenarios if group is clients]
        for line in await connection_waits(plain, waits, plain_results):
            print(line)
        _summary([result for result, _ in scenarios], args)


async def connection_waits(server: Server, path: Path | None, results: list[Result]) -> list[str]:
    """The first API's waits for a pool connection during each of ``results``' slices."""
    if path is None:
        return ["wait for a connection: measured with --workers 1 only"]
    os.kill(server.proc.pid, signal.SIGUSR1)
    deadline = time.perf_counter() + 10
    while not path.exists():
        if time.perf_counter() > deadline or server.proc.poll() is not None:
            return [f"wait for a connection: the API wrote none:\n{server.tail()}"]
        await asyncio.sleep(0.05)
    waits = _connection_wait.read_waits(path)
    lines = ["wait for a connection in the first API's pool (from asking acquire() to holding one)"]
    for r in results:
        inside = [s for ended, s in waits if any(a <= ended < b for a, b in r.slices)]
        if not inside:
            lines.append(f"  {r.name.strip():<24} no waits recorded")
            continue
        figures = "  ".join(
            f"{label} {percentile(inside, q) * 1000:6.2f} ms"
            for label, q in (("p50", 0.5), ("p95", 0.95), ("p99", 0.99), ("max", 1.0))
        )
        lines.append(f"  {r.name.strip():<24} {len(inside):>8,} waits  {figures}")
    return lines


_CLIENT_NAMES = {"raw": "a RawClient connection", "httpx": "an httpx.AsyncClient"}


def _clients(kind: str, base_url: str, key: str, count: int) -> Any:
    """The load generator's virtual clients (an async context manager of a list)."""
    return (
        raw_clients(base_url, key, count) if kind == "raw" else load_clients(base_url, key, count)
    )


def _header() -> str:
    return (
        f"{'scenario':<24} {'clients':>7} {'accepted':>8} {'acc/s':>6} {'p50 ms':>7}"
        f" {'p95 ms':>7} {'p99 ms':>7} {'max ms':>7} {'errors':>6}"
        f"  {'cores used':>23}  {'cpu ms/request':>16}\n"
        f"{'':<80}  {'bench  api   pg others':>23}  {'bench  api   pg':>16}\n" + "-" * 123
    )


_GROUPS = ("bench", "api", "pg")


def _row(r: Result) -> str:
    count = len(r.latencies)
    cpu = [r.cpu.get(k) for k in _GROUPS]
    used = " ".join(
        f"{v / r.seconds:>5.2f}" if v is not None else "  n/a" for v in [*cpu, r.cpu.get("others")]
    )
    per = " ".join(f"{v / count * 1000:>5.2f}" if v is not None and count else "  n/a" for v in cpu)
    return (
        f"{r.name:<24} {r.concurrency:>7} {r.accepted:>8} {r.accepted / r.seconds:>6.0f}"
        f" {r.percentile_ms(0.50):>7.1f} {r.percentile_ms(0.95):>7.1f}"
        f" {r.percentile_ms(0.99):>7.1f} {r.percentile_ms(1.0):>7.1f} {r.errors:>6}"
        f"  {used:>23}  {per:>16}"
    )


def _summary(results: list[Result], args: argparse.Namespace) -> None:
    print()
    for r in results:
        if r.error_kinds:
            kinds = ", ".join(f"{k}: {n}" for k, n in sorted(r.error_kinds.items()))
            print(f"errors of {r.name.strip()}: {kinds}")
    note = (
        ""
        if args.concurrency == GOAL_CONCURRENCY
        else f" (measured at {args.concurrency} clients, the goal is stated at 50)"
    )
    for r in results:
        p95 = r.percentile_ms(0.95)
        for label, goal in (("goal", P95_GOAL_MS), ("reference target", REFERENCE_P95_MS)):
            verdict = "met" if p95 < goal and not r.errors else "NOT met"
            print(f"{label}: {r.name.strip()} p95 < {goal:g} ms: {p95:.1f} ms -> {verdict}{note}")


def main() -> None:
    parser = argparse.ArgumentParser(
        description="POST /api/onlyfans/messages/send under concurrent clients (see docstring)."
    )
    parser.add_argument(
        "--concurrency", type=int, default=GOAL_CONCURRENCY, help="concurrent clients (50)"
    )
    parser.add_argument(
        "--duration", type=float, default=15.0, help="timed seconds per scenario (15)"
    )
    parser.add_argument("--rounds", type=int, default=3, help="interleaved slices per scenario (3)")
    parser.add_argument(
        "--warmup", type=float, default=2.0, help="untimed seconds per scenario first (2)"
    )
    parser.add_argument("--workers", type=int, default=1, help="crm serve --workers (1)")
    parser.add_argument(
        "--client",
        choices=sorted(_CLIENT_NAMES),
        default="raw",
        help="load generator: bare asyncio streams (raw, default) or httpx.AsyncClient",
    )
    parser.add_argument(
        "--pool-max",
        type=int,
        default=None,
        help="CRM_POOL_MAX_SIZE for the API (default: the API's own default); each worker of"
        " both servers may open this many: keep 2 x workers x pool-max under max_connections",
    )
    parser.add_argument(
        "--seed", type=int, default=500, help="fans created, one message each, before (500)"
    )
    parser.add_argument(
        "--redis",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="also run the API with REDIS_URL, an embedded redis-server (default: yes)",
    )
    parser.add_argument(
        "--member",
        action=argparse.BooleanOptionalAction,
        default=False,
        help="also send with a workspace member's key, interleaved (default: no)",
    )
    parser.add_argument(
        "--backlog",
        type=int,
        default=100_000,
        help="then measure again with this many messages in queue_messages (100000; 0: skip)",
    )
    args = parser.parse_args()
    if args.concurrency < 1 or args.workers < 1 or args.duration <= 0 or args.seed < 1:
        parser.error("--concurrency, --workers and --seed must be at least 1, --duration > 0")
    if args.rounds < 1 or args.backlog < 0:
        parser.error("--rounds must be at least 1, --backlog at least 0")
    configure_logging("WARNING", json=False)
    asyncio.run(run(args))


if __name__ == "__main__":
    main()
