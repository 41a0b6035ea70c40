"""HTTP API latency and throughput under a fixed number of concurrent clients.

    uv run python bench/api.py                    # embedded Postgres in a temp folder
    uv run python bench/api.py --workers 2        # two uvicorn worker processes
    DATABASE_URL=postgresql://... uv run python bench/api.py   # a scratch database there

The API runs as it does in production, in a separate process: ``crm serve`` (uvicorn,
``--workers`` processes) with ``DATABASE_URL`` pointing at a fresh, migrated scratch database,
``LOG_LEVEL=WARNING`` and a ``CRM_MASTER_KEY`` made up for the run. This process creates an
API key (role creator), seeds ``--seed`` fans through ``POST /api/crm/fans``, runs the fans
projector once so the read table holds them, then drives each endpoint in turn with
``--concurrency`` clients (asyncio tasks, each with its own httpx.AsyncClient holding one
HTTP/1.1 keep-alive connection), each sending its next request as soon as the previous one is
answered, for ``--warmup`` seconds (not counted) then ``--duration`` seconds:

* ``GET /api/crm/fans``: the default page (50 newest fans of the tenant);
* ``POST /api/crm/fans``: a new fan with a random name, handle and value;
* ``GET /health`` only if asked (``--endpoints``): ``SELECT 1`` without an API key, a floor
  for what the framework, the pool and the load generator cost per request.

Printed per endpoint: requests/s, latency percentiles (ms, from sending the request to having
read the whole response), errors (non-2xx answers or transport errors), and the CPU cores
used on average by this load generator (``bench``), the API processes (``api``) and Postgres
(``pg``: the database's backends and background writers, when the server is on this machine).

Why an AsyncClient per client: one AsyncClient whose pool holds 50 connections spends about
3.5 ms of CPU per request in its connection pool (measured against a trivial server: ~280
requests/s at 100% of a core), so the load generator, not the API, would set the pace; with a
client each it is ~0.6 ms. ``--shared-client`` restores the shared pool to see this.

Goal (from the issue): p95 under 50 ms at 50 concurrent clients on the 2-core reference
machine. Mind that the load generator, the API and Postgres share those 2 cores: the load
generator's CPU (see ``cpu ms/request``) is CPU the server does not get, so the figures
understate what the API would do with the machine to itself. With a closed loop of N clients,
latency is about N / throughput (Little's law): the p95 goal at 50 clients needs roughly 1,000+
requests/s. Nothing here asserts a timing: the script prints figures.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import httpx
from _common import (
    FANS,
    GroupCpuMeter,
    HttpResult,
    crm_serve,
    drive,
    free_port,
    load_clients,
    new_fan,
    pg_pids,
    scratch_database,
    wait_ready,
)

from adapters import bootstrap
from adapters.config import Settings
from adapters.observability import configure_logging
from adapters.postgres.api_keys import create_api_key
from application.ports import Checkpoint
from projections.fans import FansProjection
from projections.runner import ProjectionRunner

P95_GOAL_MS = 50.0
GOAL_CONCURRENCY = 50

Call = Callable[[httpx.AsyncClient], Awaitable[httpx.Response]]


@dataclass
class Result(HttpResult):
    cores: dict[str, float | None] = field(default_factory=dict)


async def list_fans(client: httpx.AsyncClient) -> httpx.Response:
    return await client.get(FANS)


async def create_fan(client: httpx.AsyncClient) -> httpx.Response:
    return await client.post(FANS, json=new_fan())


async def health(client: httpx.AsyncClient) -> httpx.Response:
    return await client.get("/health")


async def measure(
    clients: list[httpx.AsyncClient],
    name: str,
    call: Call,
    args: argparse.Namespace,
    make_meter: Callable[[], Awaitable[GroupCpuMeter]],
) -> Result:
    await drive(clients, call, args.warmup, None)
    meter = await make_meter()  # after the warm-up: the API's pool opens connections on demand
    result = Result(name, args.concurrency)
    before = meter.sample()
    await drive(clients, call, args.duration, result)
    after = meter.sample()
    for group, value in after.items():
        used = GroupCpuMeter.delta(before[group], value)
        result.cores[group] = None if used is None else used / result.seconds
    return result


async def seed(clients: list[httpx.AsyncClient], count: int) -> int:
    """Create ``count`` fans through the API; returns how many were refused."""
    queue = iter(range(count))
    failures = 0

    async def worker(client: httpx.AsyncClient) -> None:
        nonlocal failures
        for _ in queue:
            response = await client.post(FANS, json=new_fan())
            if response.status_code != 201:
                failures += 1

    await asyncio.gather(*(worker(client) for client in clients))
    return failures


async def run(args: argparse.Namespace) -> None:
    async with scratch_database() as (url, where):
        # A master key made up for the scratch database, shared with the API process (used if
        # the services encrypt personal data).
        master_key = secrets.token_urlsafe(32)
        settings = Settings.from_env(
            {"CRM_MASTER_KEY": master_key}, database_url=url, pool_min_size=1, pool_max_size=2
        )
        container = await bootstrap.build(settings)
        try:
            key, _ = await create_api_key(container.pool, user_id="bench", role="creator")
            port = free_port()
            base_url = f"http://127.0.0.1:{port}"
            env = {"DATABASE_URL": url, "CRM_MASTER_KEY": master_key}
            if args.pool_max is not None:
                env["CRM_POOL_MAX_SIZE"] = str(args.pool_max)
            with crm_serve(env, port, args.workers) as server:
                async with (
                    httpx.AsyncClient(base_url=base_url) as probe,
                    load_clients(base_url, key, args.concurrency, args.shared_client) as clients,
                ):
                    ready_s = await wait_ready(server, probe)
                    t0 = time.perf_counter()
                    refused = await seed(clients[:20], args.seed)
                    projected = await _project_seeded(container)
                    seed_s = time.perf_counter() - t0
                    page = (await clients[0].get(FANS)).json()
                    version = await container.pool.fetchval("SHOW server_version")
                    pool_max = args.pool_max or Settings(database_url="-").pool_max_size
                    mode = "one shared AsyncClient" if args.shared_client else "AsyncClient each"
                    print(
                        f"fancrm API benchmark: crm serve --workers {args.workers} (pool max"
                        f" {pool_max} per worker), PostgreSQL {version} ({where}),"
                        f" {os.cpu_count()} CPUs shared by the load generator, API and Postgres"
                    )
                    print(
                        f"ready in {ready_s:.1f} s; seeded {args.seed} fans via POST"
                        f" ({refused} refused), projected {projected} events in {seed_s:.1f} s;"
                        f" GET page holds {len(page.get('fans', []))} fans;"
                        f" {args.concurrency} clients ({mode}),"
                        f" {args.warmup:g} s warm-up + {args.duration:g} s per endpoint"
                    )
                    print(_header(), flush=True)
                    calls: dict[str, tuple[str, Call]] = {
                        "list": (f"GET {FANS}", list_fans),
                        "create": (f"POST {FANS}", create_fan),
                        "health": ("GET /health", health),
                    }
                    results = []

                    async def make_meter() -> GroupCpuMeter:
                        return GroupCpuMeter([server.proc.pid], await pg_pids(container.pool))

                    for endpoint in args.endpoints:
                        name, call = calls[endpoint]
                        result = await measure(clients, name, call, args, make_meter)
                        results.append(result)
                        print(_row(result), flush=True)
                    if server.proc.poll() is not None:
                        code = server.proc.returncode
                        print(f"crm serve exited with {code} during the run:\n{server.tail()}")
            _summary(results, args)
        finally:
            await container.close()


def _header() -> str:
    return (
        f"{'endpoint':<19} {'clients':>7} {'requests':>8} {'req/s':>6} {'p50 ms':>7}"
        f" {'p95 ms':>7} {'p99 ms':>7} {'max ms':>7} {'errors':>6}"
        f"  {'cores used':>16}  {'cpu ms/request':>16}\n"
        f"{'':<75}  {'bench  api   pg':>16}  {'bench  api   pg':>16}\n" + "-" * 111
    )


def _row(r: Result) -> str:
    count = len(r.latencies)
    cores = [r.cores.get(k) for k in _GROUPS]
    used = " ".join(f"{v:>5.2f}" if v is not None else "  n/a" for v in cores)
    per = " ".join(
        f"{v * r.seconds / count * 1000:>5.2f}" if v is not None and count else "  n/a"
        for v in cores
    )
    return (
        f"{r.name:<19} {r.concurrency:>7} {count:>8} {count / r.seconds:>6.0f}"
        f" {r.percentile_ms(0.50):>7.1f} {r.percentile_ms(0.95):>7.1f}"
        f" {r.percentile_ms(0.99):>7.1f} {r.percentile_ms(1.0):>7.1f} {r.errors:>6}"
        f"  {used:>16}  {per:>16}"
    )


_GROUPS = ("bench", "api", "pg")


def _summary(results: list[Result], args: argparse.Namespace) -> None:
    print()
    for r in results:
        if r.error_kinds:
            kinds = ", ".join(f"{k}: {n}" for k, n in sorted(r.error_kinds.items()))
            print(f"errors of {r.name}: {kinds}")
        if r.name == "GET /health":
            continue  # a baseline, not an endpoint the goal is about
        p95 = r.percentile_ms(0.95)
        note = (
            ""
            if args.concurrency == GOAL_CONCURRENCY
            else f" (measured at {args.concurrency} clients, the goal is stated at 50)"
        )
        verdict = "met" if p95 < P95_GOAL_MS and not r.errors else "NOT met"
        print(f"goal: {r.name} p95 < {P95_GOAL_MS:g} ms: {p95:.1f} ms -> {verdict}{note}")


def _endpoints(text: str) -> list[str]:
    values = [part.strip() for part in text.split(",") if part.strip()]
    if not values or any(v not in ("list", "create", "health") for v in values):
        raise argparse.ArgumentTypeError("a comma-separated list of: list, create, health")
    return values


async def _project_seeded(container: bootstrap.Container) -> int:
    """Apply every seeded fan to the fans view. The key's reads wait for its own writes, and
    a projector reads only below the oldest transaction running on the whole server (other
    databases' too): one pass may stop short of the seed."""
    runner = ProjectionRunner(container.projection_store, FansProjection())
    row = await container.pool.fetchrow(
        "SELECT transaction_id, position FROM events"
        " ORDER BY transaction_id DESC, position DESC LIMIT 1"
    )
    head = Checkpoint(row["transaction_id"], row["position"]) if row else Checkpoint()
    projected = await runner.catch_up()
    deadline = time.monotonic() + 60
    while await container.projection_store.checkpoint(runner.name) < head:
        if time.monotonic() > deadline:
            raise SystemExit(f"the fans projector never reached {head}")
        await asyncio.sleep(0.01)
        projected += await runner.catch_up()
    return projected


def main() -> None:
    parser = argparse.ArgumentParser(
        description="HTTP API latency under concurrent clients (see the docstring)."
    )
    parser.add_argument(
        "--concurrency", type=int, default=GOAL_CONCURRENCY, help="concurrent clients (50)"
    )
    parser.add_argument(
        "--duration", type=float, default=10.0, help="timed seconds per endpoint (10)"
    )
    parser.add_argument(
        "--warmup", type=float, default=2.0, help="untimed seconds per endpoint first (2)"
    )
    parser.add_argument("--workers", type=int, default=1, help="crm serve --workers (1)")
    parser.add_argument(
        "--pool-max",
        type=int,
        default=None,
        help="CRM_POOL_MAX_SIZE for the API (default: the API's own default)",
    )
    parser.add_argument("--seed", type=int, default=500, help="fans created before (500)")
    parser.add_argument(
        "--shared-client",
        action="store_true",
        help="one AsyncClient with a pool of --concurrency connections for all clients"
        " (costs several times the CPU per request: see the docstring)",
    )
    parser.add_argument(
        "--endpoints",
        type=_endpoints,
        default=["list", "create"],
        help="which to run, in order, of list, create, health (SELECT 1 and no key:"
        " a floor for the framework and pool); default list,create",
    )
    args = parser.parse_args()
    if args.concurrency < 1 or args.workers < 1 or args.duration <= 0 or args.seed < 0:
        parser.error("--concurrency and --workers must be at least 1, --duration above 0")
    configure_logging("WARNING", json=False)
    asyncio.run(run(args))


if __name__ == "__main__":
    main()
