"""Bulk campaigns (issue 6): the 202 of POST /api/messages/bulk and the fan-out of a
100,000-fan audience onto the Postgres queue.

    uv run python bench/campaign.py                       # embedded Postgres, temp folder
    uv run python bench/campaign.py --fans 5000           # a smaller audience
    uv run python bench/campaign.py --workers inproc      # workers as tasks of this process
    DATABASE_URL=postgresql://... uv run python bench/campaign.py   # a scratch database there

Setup (not measured): a scratch database wired as ``adapters.bootstrap.build`` wires it (a
master key made up for it, so personal data is encrypted and message bodies sealed), one
creator account (``create_api_key``) and ``--fans`` (100,000) fans of it, each a
``FanCreated`` event (``Fan.register``, tagged ``bench``), appended ``--fill-batch`` (1,000)
fans per ``append_all`` by 2 writers, with ids from the fan sequence; no conversation yet
(as after an import). Then the projectors are run until every view has reached the log's head.

Measured, with the projectors, the campaign worker and the outbox relay running:

- ``--workers procs`` (the default, as deployed): the API is ``crm serve`` (1 worker) and
  the workers are ``crm worker projections``, ``crm worker campaigns`` and ``crm worker
  relay``, each a child process, so the CPU of each is measured apart;
- ``--workers inproc``: the API is ``create_app`` driven through httpx's ASGITransport and
  the workers are asyncio tasks (``run_projectors``, ``CampaignWorker.run``, ``run_relay``),
  all in this one process and event loop; the time spent in ``fan_out_chunk``,
  ``Relay.run_once`` and the projectors' ``run_batch`` is then noted by wrappers set on
  those functions in this process (wall time: they share one loop), inside fan_out_chunk
  (``load_campaign``, the audience query, ``_record_chunk``'s ``append_all``), and in the
  request until its 202 (``absent_fans``, ``segment_size``, the launch event's save, the
  inline chunk, ``_queued_ahead``). The pool is ``--inproc-pool`` (40): at the default 10 one
  run hung at its first launch (not reproduced since; see the note in ``run``).

Runs, one after the other (the queue is emptied between them, the projectors caught up and
the read tables vacuumed, as autovacuum would where it is on):

1. ``--small`` (5) launches to ``--small-size`` (100) explicit recipient ids: queued inline
   by the request itself (``campaign_inline_recipients``); the 202's median is printed;
2. a segment matching every fan (``{"tags": ["bench"]}``): the fan-out also opens each
   fan's conversation (3 streams per recipient);
3. every fan by explicit ``recipientIds`` (100,000 ids, ~0.7 MB of JSON): the fans now have
   their conversation (1 stream per recipient), and the campaign's launch event holds the ids.

For each large run: the 202's latency (client-side, one launch: the figure), then polled
every ``--poll`` s: the messages fanned out (outbox rows + queue depth: nothing consumes the
queue here) and those on the queue (``queue.stats("normal").visible``, as queue_status reads
it). Printed: when fan-out and relay reached the audience's size (seconds after the 202),
the rate in messages/s, the outbox's peak backlog (a growing outbox means the relay is
behind the fan-out), and CPU seconds per 1,000 recipients from the request to the last
message on the queue: this process (``bench``; with ``inproc`` everything), each child
process (``api``, ``camp``, ``relay``, ``proj``), and Postgres (the database's backends and
the server's background processes, re-listed at each sample; ``pg``). ``others`` is the rest
of the host's busy time meanwhile, in cores: the machine has 2 cores shared with other work.

Goal (from the issue): the 202 in under 200 ms and all 100,000 messages on the queue in
under 30 s on this 2-core machine. Nothing here asserts a timing: the script prints figures.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import os
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import asyncpg
import httpx
import msgspec
from _common import (
    PG_PIDS_SQL,
    ROOT,
    crm_serve,
    database_server,
    free_port,
    host_busy,
    scratch_databases,
    wait_ready,
)

from adapters import bootstrap
from adapters.config import Settings
from adapters.observability import configure_logging
from adapters.postgres.api_keys import create_api_key
from application.context import CommandContext
from application.ports import StreamWrite
from domain.fan import Fan

GOAL_202_MS = 200.0
GOAL_QUEUE_S = 30.0
TENANT = "bench-creator"
TAG = "bench"
BULK = "/api/messages/bulk"
CONTENT = "Hi {{name}}, a new set just dropped: want a preview?"
WORKERS = ("projections", "campaigns", "relay")
SHORT = {"projections": "proj", "campaigns": "camp", "relay": "relay"}


# --- setup -----------------------------------------------------------------------------------


def _write(fan: Fan) -> StreamWrite:
    pending = fan.collect_events()
    return StreamWrite(fan.id, "fan", pending, pending[0].originator_version - 1)


async def create_fans(container: bootstrap.Container, count: int, batch: int) -> list[int]:
    """``count`` fans of TENANT, ``batch`` per append_all, by 2 writers."""
    ctx = CommandContext(tenant=TENANT, actor="bench", correlation_id="bench-fans")
    ids = await container.ids.next_ids("fan", count)
    starts = iter(range(0, count, batch))

    async def writer() -> None:
        for start in starts:
            writes = []
            for fan_id in ids[start : start + batch]:
                fan = Fan.register(
                    fan_id=fan_id,
                    tenant=TENANT,
                    platform_id=f"of-{fan_id}",
                    name=f"Fan {fan_id}",
                    handle=f"fan_{fan_id}",
                    email=f"fan.{fan_id}@example.com",
                    value_cents=fan_id * 7 % 100_000,
                    tags=[TAG, "vip"] if fan_id % 3 else [TAG, "promo"],
                )
                writes.append(_write(fan))
            await container.events.append_all(writes, metadata=ctx.metadata())

    await asyncio.gather(writer(), writer())
    return ids


async def caught_up(container: bootstrap.Container) -> bool:
    head = await container.pool.fetchval("SELECT max(position) FROM events")
    if head is None:
        return True
    for projection in bootstrap.all_projections():
        if not await container.projection_store.has_applied(projection.name, head):
            return False
    return True


async def wait_caught_up(container: bootstrap.Container, timeout: float = 900.0) -> float:
    started = time.perf_counter()
    while not await caught_up(container):
        if time.perf_counter() - started > timeout:
            raise SystemExit(f"the projectors did not catch up within {timeout:.0f} s")
        await asyncio.sleep(0.2)
    return time.perf_counter() - started


# --- workers ---------------------------------------------------------------------------------


@contextlib.contextmanager
def crm_worker(kind: str, env_extra: dict[str, str]) -> Iterator[subprocess.Popen[str]]:
    """`crm worker KIND` in a child process (LOG_LEVEL=WARNING), stopped on the way out."""
    env = {**os.environ, **env_extra, "LOG_LEVEL": "WARNING", "LOG_FORMAT": "console"}
    env.pop("REDIS_URL", None)
    command = [sys.executable, "-c", "from adapters.cli import main; main()", "worker", kind]
    with tempfile.TemporaryFile(mode="w+") as log:
        proc = subprocess.Popen(command, env=env, cwd=ROOT, stdout=log, stderr=log, text=True)
        try:
            yield proc
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            log.seek(0)
            tail = log.read()[-2000:]
            if proc.returncode not in (0, -15) and tail:
                print(f"crm worker {kind} exited with {proc.returncode}:\n{tail}")


@dataclass
class Stage:
    """Wall time spent inside one wrapped coroutine function (inproc mode only)."""

    calls: int = 0
    seconds: float = 0.0
    items: int = 0


@dataclass
class Stages:
    by_name: dict[str, Stage] = field(default_factory=dict)

    def wrap(self, name: str, fn: Callable[..., Awaitable[Any]], count: Any = None) -> Any:
        stage = self.by_name.setdefault(name, Stage())

        @functools.wraps(fn)
        async def timed(*args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            try:
                result = await fn(*args, **kwargs)
            finally:
                stage.calls += 1
                stage.seconds += time.perf_counter() - started
            if count is not None:
                stage.items += count(result)
            return result

        return timed

    def snapshot(self) -> dict[str, tuple[int, float, int]]:
        return {k: (v.calls, v.seconds, v.items) for k, v in self.by_name.items()}


def instrument(stages: Stages) -> None:
    """Wrappers on the production functions, in this process only (inproc mode)."""
    import worker.campaigns
    import worker.relay
    from projections.runner import ProjectionRunner

    worker.campaigns.fan_out_chunk = stages.wrap(  # type: ignore[assignment]
        "fan_out_chunk",
        worker.campaigns.fan_out_chunk,
        lambda r: r.queued if r is not None else 0,
    )
    # Inside fan_out_chunk: the campaign's stream load, the audience query, the append.
    import application.campaign_fan_out as fan_out
    from adapters.postgres.campaign_read_model import PostgresCampaignReadModel

    fan_out.load_campaign = stages.wrap(" load_campaign", fan_out.load_campaign)  # type: ignore[assignment]
    PostgresCampaignReadModel.chunk = stages.wrap(  # type: ignore[method-assign]
        " audience chunk", PostgresCampaignReadModel.chunk, lambda c: len(c.recipients)
    )
    fan_out._record_chunk = stages.wrap(  # type: ignore[assignment]
        " append_all (_record_chunk)", fan_out._record_chunk, lambda r: r.queued
    )
    # What the request does before its 202 (launch_new_campaign, the inline chunk, the
    # estimate's queue count).
    import adapters.http.campaigns as http_campaigns
    import application.campaign_launch as campaign_launch
    import application.campaigns as campaigns

    for name in ("catch_up", "absent_fans", "segment_size"):
        setattr(
            PostgresCampaignReadModel,
            name,
            stages.wrap(f" audience.{name}", getattr(PostgresCampaignReadModel, name)),
        )
    campaigns.save = stages.wrap(" save (launch event)", campaigns.save)  # type: ignore[assignment]
    http_campaigns._queued_ahead = stages.wrap(" _queued_ahead", http_campaigns._queued_ahead)  # type: ignore[assignment]
    campaign_launch.fan_out_chunk = stages.wrap(  # type: ignore[assignment]
        " inline fan_out_chunk", campaign_launch.fan_out_chunk
    )
    worker.relay.Relay.run_once = stages.wrap(  # type: ignore[method-assign]
        "relay run_once", worker.relay.Relay.run_once, lambda n: n
    )
    ProjectionRunner.run_batch = stages.wrap(  # type: ignore[method-assign]
        "projector run_batch", ProjectionRunner.run_batch, lambda n: n
    )


# --- CPU -------------------------------------------------------------------------------------


class CpuMeter:
    """CPU seconds by group: this process (``bench``), each child process by name, Postgres
    (the database's backends and the server's background processes, re-listed at each sample:
    pools open connections on demand), and the whole host's busy time."""

    def __init__(self, pool: asyncpg.Pool, children: dict[str, int]) -> None:
        self._pool = pool
        self._children = children
        self._known: dict[int, Any] = {}
        try:
            import psutil

            self._psutil: Any = psutil
        except ImportError:
            self._psutil = None

    def _times(self, pid: int) -> float | None:
        try:
            proc = self._known.get(pid) or self._psutil.Process(pid)
            self._known[pid] = proc
            times = proc.cpu_times()
        except Exception:  # gone, or not on this machine
            return None
        return float(times.user + times.system)

    async def sample(self) -> dict[str, Any]:
        out: dict[str, Any] = {"bench": time.process_time()}
        if self._psutil is None:
            return out
        rows = await self._pool.fetch(PG_PIDS_SQL)
        pg = {}
        for row in rows:
            used = self._times(row["pid"])
            if used is not None:
                pg[row["pid"]] = used
        out["pg"] = pg
        for name, pid in self._children.items():
            total = 0.0
            with contextlib.suppress(self._psutil.Error):
                root = self._psutil.Process(pid)
                for proc in [root, *root.children(recursive=True)]:
                    total += self._times(proc.pid) or 0.0
            out[name] = total
        out["host"] = host_busy(self._psutil)
        return out

    @staticmethod
    def used(before: dict[str, Any], after: dict[str, Any]) -> dict[str, float]:
        """Seconds per group; Postgres processes that appeared meanwhile count from zero."""
        out = {}
        for name, value in after.items():
            if name == "pg":
                old = before.get("pg", {})
                out[name] = sum(v - old.get(pid, 0.0) for pid, v in value.items())
            else:
                out[name] = value - before.get(name, 0.0)
        return out


# --- measuring -------------------------------------------------------------------------------


@dataclass
class Run:
    label: str
    recipients: int
    latency_ms: float
    status: str
    total: int
    queued_inline: int
    fanned_s: float | None = None
    queued_s: float | None = None
    first_s: float | None = None
    peak_outbox: int = 0
    wall_s: float = 0.0
    cpu: dict[str, float] = field(default_factory=dict)
    cpu_from: dict[str, float] = field(default_factory=dict)  # the meter's sample at the start
    stages: dict[str, tuple[int, float, int]] = field(default_factory=dict)
    launch_stages: dict[str, tuple[int, float, int]] = field(default_factory=dict)


async def counts(pool: asyncpg.Pool, queue: Any) -> tuple[int, int]:
    outbox = await pool.fetchval("SELECT count(*) FROM outbox")
    depth = (await queue.stats("normal")).visible
    return int(outbox), int(depth)


async def empty_queue(container: bootstrap.Container) -> None:
    """Between runs: the last run's messages off the queue (nothing consumes it here)."""
    while (await counts(container.pool, container.queue))[0]:  # noqa: ASYNC110 - polls the db
        await asyncio.sleep(0.2)
    await container.pool.execute("DELETE FROM queue_messages")
    await container.pool.execute("VACUUM ANALYZE queue_messages, outbox")


async def launch(http: httpx.AsyncClient, body: dict[str, Any]) -> tuple[float, dict[str, Any]]:
    # Encoded before the clock starts: 100,000 ids through httpx's json= (the standard
    # library's encoder) took ~20 ms of this client's own time, not the server's.
    content = msgspec.json.encode(body)
    headers = {"Content-Type": "application/json"}
    started = time.perf_counter()
    response = await http.post(BULK, content=content, headers=headers)
    elapsed = time.perf_counter() - started
    if response.status_code != 202:
        raise SystemExit(f"POST {BULK}: {response.status_code} {response.text[:500]}")
    return elapsed, response.json()


async def large_run(
    label: str,
    body: dict[str, Any],
    expected: int,
    http: httpx.AsyncClient,
    container: bootstrap.Container,
    meter: CpuMeter,
    stages: Stages,
    poll: float,
    timeout: float,
) -> Run:
    before_stages = stages.snapshot()
    cpu_before = await meter.sample()
    started = time.perf_counter()
    latency, answer = await launch(http, body)
    during_202 = stages.snapshot()
    run = Run(
        label,
        expected,
        latency * 1000,
        answer["status"],
        answer["totalRecipients"],
        answer["queued"],
    )
    accepted = time.perf_counter()
    while True:
        outbox, depth = await counts(container.pool, container.queue)
        now = time.perf_counter() - accepted
        run.peak_outbox = max(run.peak_outbox, outbox)
        if run.first_s is None and depth:
            run.first_s = now
        if run.fanned_s is None and outbox + depth >= expected:
            run.fanned_s = now
        if depth >= expected:
            run.queued_s = now
            break
        if now > timeout:
            print(f"  {label}: timed out after {timeout:.0f} s: outbox {outbox:,}, queue {depth:,}")
            break
        await asyncio.sleep(poll)
    run.wall_s = time.perf_counter() - started
    run.launch_stages = _between(before_stages, during_202)
    run.cpu = CpuMeter.used(cpu_before, await meter.sample())
    run.cpu_from = cpu_before
    run.stages = _between(before_stages, stages.snapshot())
    return run


def _between(
    before: dict[str, tuple[int, float, int]], after: dict[str, tuple[int, float, int]]
) -> dict[str, tuple[int, float, int]]:
    out = {}
    for name, (calls, seconds, items) in after.items():
        calls0, seconds0, items0 = before.get(name, (0, 0.0, 0))
        if calls > calls0:
            out[name] = (calls - calls0, seconds - seconds0, items - items0)
    return out


def _s(value: float | None) -> str:
    return f"{value:.2f}" if value is not None else "-"


def report(run: Run, groups: list[str]) -> None:
    per = run.recipients / 1000
    rate_fan = run.recipients / run.fanned_s if run.fanned_s else float("nan")
    rate_q = run.recipients / run.queued_s if run.queued_s else float("nan")
    print(f"\n{run.label}: {run.recipients:,} recipients")
    print(
        f"  202 in {run.latency_ms:,.0f} ms (goal < {GOAL_202_MS:.0f} ms): status {run.status!r},"
        f" totalRecipients {run.total:,}, queued inline {run.queued_inline:,}"
    )
    print(
        f"  after the 202: first message on the queue {_s(run.first_s)} s; all fanned out"
        f" (outbox + queue) {_s(run.fanned_s)} s ({rate_fan:,.0f} msg/s); all on the queue"
        f" {_s(run.queued_s)} s ({rate_q:,.0f} msg/s; goal < {GOAL_QUEUE_S:.0f} s for 100,000);"
        f" outbox peak {run.peak_outbox:,}"
    )
    cpu = run.cpu
    parts = [f"{g} {cpu[g] / per:.2f}" for g in groups if g in cpu]
    mine = sum(cpu[g] for g in groups if g in cpu)
    others = (cpu["host"] - mine) / run.wall_s if "host" in cpu else float("nan")
    print(
        f"  CPU s per 1,000 recipients (request to last on the queue, {run.wall_s:.1f} s):"
        f" {', '.join(parts)}; total {mine / per:.2f}; others {others:.2f} cores"
    )
    if run.launch_stages:
        text = ", ".join(
            f"{name.strip()} {seconds * 1000:.0f} ms" + (f" ({calls} calls)" if calls > 1 else "")
            for name, (calls, seconds, _) in run.launch_stages.items()
            if name.startswith(" ") and "relay" not in name
        )
        print(f"  until the 202 (wall, this loop; nested): {text}")
    if run.stages:
        text = ", ".join(
            f"{name} {calls:,} calls {seconds:.1f} s ({items:,} items)"
            for name, (calls, seconds, items) in run.stages.items()
        )
        print(f"  wall time inside (one event loop, overlapping): {text}")


# --- main ------------------------------------------------------------------------------------


@contextlib.asynccontextmanager
async def running(
    args: argparse.Namespace, url: str, master_key: str, container: bootstrap.Container
) -> AsyncIterator[tuple[httpx.AsyncClient, dict[str, int], Stages, str]]:
    """The API and the workers, as ``--workers`` says; yields (client, child pids, stages,
    description)."""
    key, _ = await create_api_key(container.pool, user_id=TENANT, role="creator")
    headers = {"Authorization": f"Bearer {key}"}
    timeout = httpx.Timeout(120.0)
    stages = Stages()
    if args.workers == "inproc":
        from adapters.http.app import create_app
        from worker.campaigns import CampaignWorker
        from worker.projections import run_projectors
        from worker.relay import run_relay

        instrument(stages)
        stop = asyncio.Event()
        tasks = [
            asyncio.create_task(run_projectors(container, stop)),
            asyncio.create_task(CampaignWorker(container).run(stop)),
            asyncio.create_task(run_relay(container, stop)),
        ]
        transport = httpx.ASGITransport(app=create_app(container=container))
        try:
            async with httpx.AsyncClient(
                transport=transport, base_url="http://bench", headers=headers, timeout=timeout
            ) as http:
                yield (
                    http,
                    {},
                    stages,
                    (
                        "API create_app (ASGITransport) and workers (run_projectors,"
                        " CampaignWorker.run, run_relay) as tasks of this process, one event loop"
                    ),
                )
        finally:
            stop.set()
            for task in tasks:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(task, 10)
        return
    env = {
        "DATABASE_URL": url,
        "CRM_MASTER_KEY": master_key,
        "CRM_CAMPAIGN_CHUNK_SIZE": str(args.chunk_size or container.settings.campaign_chunk_size),
    }
    with contextlib.ExitStack() as stack:
        children = {SHORT[kind]: stack.enter_context(crm_worker(kind, env)).pid for kind in WORKERS}
        port = free_port()
        server = stack.enter_context(crm_serve(env, port, 1, unset=["REDIS_URL"]))
        children["api"] = server.proc.pid
        async with httpx.AsyncClient(
            base_url=server.base_url, headers=headers, timeout=timeout
        ) as http:
            await wait_ready(server, http)
            yield (
                http,
                children,
                stages,
                (
                    "API `crm serve` (1 worker); `crm worker projections`, `crm worker campaigns`,"
                    " `crm worker relay`: one child process each"
                ),
            )


async def run(args: argparse.Namespace) -> None:
    master_key = secrets.token_urlsafe(32)
    async with (
        database_server() as (admin_url, where, _),
        scratch_databases(admin_url, 1) as urls,
    ):
        url = urls[0]
        # inproc: one pool for the API and every worker, as `crm dev` shares one. At the
        # default 10, one run (5,000 fans, busy host) hung at its first launch for 9 minutes:
        # each projector runner holds a connection for its batch's transaction while
        # read_all takes another, and the relay's claim holds one while send_batch takes
        # another, so 9 runners and the relay can plausibly take all 10 and wait on each other.
        pool_max = args.inproc_pool if args.workers == "inproc" else 10
        overrides: dict[str, Any] = {"database_url": url, "pool_max_size": pool_max}
        if args.chunk_size:
            overrides["campaign_chunk_size"] = args.chunk_size
        settings = Settings.from_env({"CRM_MASTER_KEY": master_key}, **overrides)
        container = await bootstrap.build(settings)
        try:
            await measure(args, url, master_key, where, container)
        finally:
            await container.close()


async def measure(
    args: argparse.Namespace,
    url: str,
    master_key: str,
    where: str,
    container: bootstrap.Container,
) -> None:
    chunk = args.chunk_size or container.settings.campaign_chunk_size
    print(
        f"campaign fan-out: {args.fans:,} fans, chunk {chunk}, inline"
        f" {container.settings.campaign_inline_recipients}, Postgres {where}, cores"
        f" {os.cpu_count()}"
    )
    started = time.perf_counter()
    fans = await create_fans(container, args.fans, args.fill_batch)
    fill_s = time.perf_counter() - started
    await container.pool.execute("VACUUM ANALYZE events")
    async with running(args, url, master_key, container) as (http, children, stages, what):
        print(f"setup: {args.fans:,} fans appended in {fill_s:.1f} s", end="", flush=True)
        projected = await wait_caught_up(container)
        print(f", projected in {projected:.1f} s")
        print(what)
        meter = CpuMeter(container.pool, children)
        groups = ["bench", *children.keys(), "pg"]

        # 1. small audiences, queued inline.
        latencies = []
        for i in range(args.small):
            ids = fans[i * args.small_size : (i + 1) * args.small_size]
            latency, _ = await launch(
                http, {"recipientIds": ids, "content": CONTENT, "campaignName": f"small {i}"}
            )
            latencies.append(latency * 1000)
            await wait_caught_up(container)
        if latencies:
            print(
                f"\n{args.small} launches to {args.small_size} explicit recipients (queued inline):"
                f" 202 median {statistics.median(latencies):.0f} ms, min {min(latencies):.0f},"
                f" max {max(latencies):.0f} ({', '.join(f'{v:.0f}' for v in latencies)})"
            )
        await empty_queue(container)
        await wait_caught_up(container)

        runs = []
        bodies = [
            (
                "segment {tags: [bench]} (fans without a conversation: opened by the fan-out)",
                {"segment": {"tags": [TAG]}, "content": CONTENT, "campaignName": "segment"},
            ),
            (
                f"recipientIds x {len(fans):,} (fans with their conversation)",
                {"recipientIds": fans, "content": CONTENT, "campaignName": "explicit"},
            ),
        ]
        for label, body in bodies:
            result = await large_run(
                label, body, len(fans), http, container, meter, stages, args.poll, args.timeout
            )
            report(result, groups)
            runs.append(result)
            caught = await wait_caught_up(container)
            # The whole job: until the read models (messages, campaign metrics) show it too.
            whole = CpuMeter.used(result.cpu_from, await meter.sample())
            per = result.recipients / 1000
            print(
                f"  projectors caught up {caught:.1f} s after that; CPU s per 1,000 recipients"
                " from the request until then: "
                + ", ".join(f"{g} {whole[g] / per:.2f}" for g in groups if g in whole)
                + f"; total {sum(whole[g] for g in groups if g in whole) / per:.2f}"
            )
            await empty_queue(container)
            # The segment run rewrote every fan's row (its new conversation): vacuumed as
            # autovacuum would, which is off on some servers (this host's), the next launch
            # does not scan 100,000 dead row versions with its recipients.
            await container.pool.execute("VACUUM ANALYZE fans, conversations, messages")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--fans", type=int, default=100_000, help="audience size (100,000)")
    parser.add_argument(
        "--chunk-size", type=int, default=0, help="fans per fan-out transaction (settings: 500)"
    )
    parser.add_argument(
        "--workers",
        choices=("procs", "inproc"),
        default="procs",
        help="API and workers as child processes (procs) or in this process (inproc)",
    )
    parser.add_argument(
        "--inproc-pool", type=int, default=40, help="pool size with --workers inproc (40)"
    )
    parser.add_argument("--fill-batch", type=int, default=1000, help="fans per append_all")
    parser.add_argument("--small", type=int, default=5, help="small launches (5)")
    parser.add_argument("--small-size", type=int, default=100, help="their recipients (100)")
    parser.add_argument("--poll", type=float, default=0.25, help="seconds between polls")
    parser.add_argument("--timeout", type=float, default=600.0, help="give up a run after (s)")
    args = parser.parse_args()
    configure_logging("WARNING", json=False)
    asyncio.run(run(args))


if __name__ == "__main__":
    main()
