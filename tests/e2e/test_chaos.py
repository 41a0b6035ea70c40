"""The sender under chaos: 2,000 queued messages, a platform that answers 5xx to 30% of sends
and hangs on 10% (half of those after delivering), and sender processes SIGKILLed at random
moments and restarted, two running at a time. Afterwards, from the event log, the queues and
the simulator's own record: no message was delivered twice, and none was lost; each one is
sent (delivered exactly once, with the platform id the delivery got) or failed with a reason
or dead-lettered.

Tolerated, and reported in the printed summary (run with ``-s``): a message whose last receive's
sender was killed is dead-lettered by the queue with no outcome recorded (still "dispatched",
possibly delivered); a timeout on the last receive records "failed" though the platform may
have delivered it (the reason says so); a message recorded sent on its last receive whose
sender died before deleting it leaves a copy in the dead-letter queue.

The sender's retry backoff (2 s, 4 s, 8 s, ... per receive, not configurable) bounds how many
receives fit in the run: with SQS_MAX_RECEIVE_COUNT=5 the last receive of a message that keeps
failing comes ~30 s after its first and dead-letters ~32 s later; with 8 it would take ~4 min.
``CHAOS_MESSAGES`` overrides the count (for a quick local run).
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import random
import signal
import sys
import time
import uuid
from asyncio.subprocess import Process
from collections import Counter
from collections.abc import AsyncIterator, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from adapters import bootstrap
from adapters.onlyfans.server import BackgroundServer
from adapters.onlyfans.simulator import SimulatorConfig, SimulatorState, create_simulator_app
from application.context import CommandContext
from application.fans import CreateFan, create_fan
from application.messages import QueueMessage, queue_message
from application.ports import Checkpoint
from application.queue import QueueName
from domain.message import message_id_of
from tests.support.settings import TEST_MASTER_KEY, settings_for
from worker.relay import Relay

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]

ROOT = Path(__file__).resolve().parents[2]
QUEUES: tuple[QueueName, ...] = ("high", "normal")

MESSAGES = int(os.environ.get("CHAOS_MESSAGES", "2000"))
TENANTS = 2
FANS_PER_TENANT = 3
SENDERS = 2  # running at once
KILL_EVERY = (1.0, 3.0)  # seconds between kills, uniform
VISIBILITY_TIMEOUT = 3  # a killed sender's records come back this long after their receive
MAX_RECEIVE_COUNT = 5
# Once every message has been received once, the slowest can still take the sender's whole
# backoff (2 + 4 + ... + 2**MAX_RECEIVE_COUNT s) before it is dead-lettered; a few seconds more
# for kills and polling. The run gives up at the latest SEND_CAP seconds after the first start.
BACKOFF_TAIL = sum(2.0 * 2 ** (k - 1) for k in range(1, MAX_RECEIVE_COUNT + 1))
TAIL_MARGIN = 20.0
SEND_CAP = 160.0
SEED = int(os.environ.get("CHAOS_SEED", str(random.SystemRandom().randrange(2**32))))

CHAOS = SimulatorConfig(
    seed=SEED,
    latency=0.005,
    latency_jitter=0.02,
    error_rate=0.3,  # 500/502/503
    timeout_rate=0.1,  # hang for timeout_seconds, then 504...
    timeout_seconds=2.0,  # ...well past the sender's ONLYFANS_TIMEOUT
    timeout_delivery_rate=0.5,  # half of those delivered before hanging
)


class CountingSimulator(SimulatorState):
    """The simulator's state, also counting the repeats it answered from a stored 200
    (``Idempotent-Replayed``): each one a delivery that would otherwise have happened twice."""

    def __init__(self, config: SimulatorConfig) -> None:
        super().__init__(config)
        self.replayed: Counter[str] = Counter()

    async def send(
        self, account: str, recipient: str, headers: Mapping[str, str], raw: bytes
    ) -> Any:
        answer = await super().send(account, recipient, headers, raw)
        if answer.headers.get("Idempotent-Replayed") == "true":
            self.replayed[headers.get("idempotency-key", "")] += 1
        return answer


# --- setup -----------------------------------------------------------------------------------


def context(tenant: str) -> CommandContext:
    return CommandContext(tenant=tenant, actor=f"{tenant}:key", correlation_id=uuid.uuid4().hex)


async def queue_messages(container: bootstrap.Container, count: int) -> dict[str, QueueName]:
    """``count`` messages over a few fans of a few creators, a quarter of them replies (high
    priority): message id -> its queue."""
    recipients: list[tuple[str, int]] = []
    for t in range(TENANTS):
        tenant = f"chaos-{t}-{uuid.uuid4().hex[:8]}"
        for f in range(FANS_PER_TENANT):
            created = await create_fan(
                CreateFan(name=f"Fan {t}.{f}", handle=f"@fan_{t}_{f}"),
                context(tenant),
                store=container.events,
                ids=container.ids,
            )
            recipients.append((tenant, created.fan.fan_id))
    queued: dict[str, QueueName] = {}

    async def one(i: int) -> None:
        tenant, fan_id = recipients[i % len(recipients)]
        priority = 9 if i % 4 == 0 else 5
        accepted = await queue_message(
            QueueMessage(
                recipient_id=fan_id,
                content=f"message {i}: {uuid.uuid4().hex}",
                priority=priority,
                price_cents=500 if i % 5 == 0 else 0,
            ),
            context(tenant),
            store=container.events,
            ids=container.ids,
        )
        assert accepted.created
        queued[accepted.message_id] = "high" if priority >= 8 else "normal"

    # The first message to each fan alone: it opens the fan's conversation.
    for i in range(min(len(recipients), count)):
        await one(i)
    gate = asyncio.Semaphore(16)

    async def gated(i: int) -> None:
        async with gate:
            await one(i)

    await asyncio.gather(*(gated(i) for i in range(len(recipients), count)))
    return queued


async def relay_all(container: bootstrap.Container) -> None:
    relay = Relay(container.outbox, container.queue, container.events)
    while await container.outbox.pending():
        if not await relay.run_once():
            await asyncio.sleep(0.01)


# --- the senders -----------------------------------------------------------------------------


class Senders:
    """``SENDERS`` `crm worker sender` processes, each logging to a file of its own."""

    def __init__(self, env: dict[str, str], logs: Path) -> None:
        self.env = env
        self.logs = logs
        self.procs: list[Process | None] = [None] * SENDERS
        self.names = [""] * SENDERS
        self.started = 0
        self.kills = 0
        self.killed: list[str] = []  # "<UTC time> sender-<n>"

    async def start(self, slot: int) -> None:
        self.started += 1
        self.names[slot] = f"sender-{self.started}"
        log = (self.logs / f"{self.names[slot]}.log").open("wb")
        try:
            self.procs[slot] = await asyncio.create_subprocess_exec(
                sys.executable,
                "-c",
                "from adapters.cli import main; main()",
                "worker",
                "sender",
                cwd=ROOT,
                env=self.env,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=log,
                stderr=log,
            )
        finally:
            log.close()  # the child holds its own copy

    def check_alive(self) -> None:
        for proc in self.procs:
            if proc is not None and proc.returncode is not None:
                raise AssertionError(
                    f"a sender exited on its own ({proc.returncode}):\n{self.tail()}"
                )

    async def kill_one(self, rng: random.Random) -> None:
        slot = rng.randrange(SENDERS)
        proc = self.procs[slot]
        assert proc is not None
        proc.send_signal(signal.SIGKILL)
        await proc.wait()
        self.kills += 1
        self.killed.append(f"{datetime.now(UTC):%H:%M:%S.%f} {self.names[slot]}")
        await self.start(slot)

    async def stop(self) -> None:
        """SIGTERM: each finishes the batch in hand, then exits."""
        for proc in self.procs:
            if proc is not None and proc.returncode is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.procs:
            if proc is None:
                continue
            try:
                await asyncio.wait_for(proc.wait(), 15)
            except TimeoutError:
                proc.kill()
                await proc.wait()

    def log_events(self) -> Counter[str]:
        """How often each log event appears across every sender's log."""
        events: Counter[str] = Counter()
        for path in self.logs.glob("sender-*.log"):
            for line in path.read_text(errors="replace").splitlines():
                try:
                    events[str(json.loads(line).get("event"))] += 1
                except (json.JSONDecodeError, AttributeError):
                    events["(not json)"] += 1
        return events

    def mentions(self, message_id: str) -> list[str]:
        """Log lines about one message, oldest first: (process, receive count, event)."""
        found = []
        for path in self.logs.glob("sender-*.log"):
            for line in path.read_text(errors="replace").splitlines():
                if message_id in line:
                    entry = json.loads(line)
                    found.append(
                        f"{entry.get('timestamp')} {path.stem}"
                        f" receive {entry.get('receive_count')}: {entry.get('event')}"
                        f" ({entry.get('reason') or entry.get('error')})"
                    )
        return sorted(found)

    def tail(self, lines: int = 40) -> str:
        newest = max(self.logs.glob("sender-*.log"), key=lambda p: p.stat().st_mtime)
        return "\n".join(newest.read_text(errors="replace").splitlines()[-lines:])


async def queue_depths(container: bootstrap.Container) -> dict[str, tuple[int, int, int]]:
    """(visible, in flight, dead letters) per queue."""
    depths = {}
    for name in QUEUES:
        stats = await container.queue.stats(name)
        depths[name] = (stats.visible, stats.in_flight, stats.dead_letters)
    return depths


def settled(depths: dict[str, tuple[int, int, int]]) -> bool:
    return all(visible == 0 and in_flight == 0 for visible, in_flight, _ in depths.values())


# --- what happened ---------------------------------------------------------------------------


async def message_histories(container: bootstrap.Container) -> dict[str, list[Any]]:
    """Every message stream's events, read from the global log: message id -> events (each
    message id is used by one tenant here)."""
    histories: dict[str, list[Any]] = {}
    after = Checkpoint()
    while batch := await container.events.read_all(after, 1000):
        for recorded in batch:
            if recorded.stream_type == "message":
                histories.setdefault(message_id_of(recorded.stream_id), []).append(recorded)
        after = Checkpoint(batch[-1].transaction_id, batch[-1].position)
    return histories


async def dead_lettered(container: bootstrap.Container) -> dict[QueueName, Counter[str]]:
    """How many times each message id sits in each dead-letter queue. Read from the table:
    the senders' sweep hides dead letters it has looked at, so a receive would miss them."""
    found: dict[QueueName, Counter[str]] = {}
    for name in QUEUES:
        rows = await container.pool.fetch(
            "SELECT body FROM queue_messages WHERE queue = $1", f"{name}.dlq"
        )
        found[name] = Counter(str(json.loads(row["body"])["messageId"]) for row in rows)
    return found


# --- the test --------------------------------------------------------------------------------


@pytest.fixture
async def fresh(fresh_database_url: str) -> AsyncIterator[bootstrap.Container]:
    container = await bootstrap.build(
        settings_for(
            fresh_database_url,
            visibility_timeout=float(VISIBILITY_TIMEOUT),
            max_receive_count=MAX_RECEIVE_COUNT,
        )
    )
    try:
        yield container
    finally:
        await container.close()


@pytest.fixture
def simulator() -> Any:
    state = CountingSimulator(CHAOS)
    server = BackgroundServer(create_simulator_app(state=state))
    server.start()
    try:
        yield state, server.url
    finally:
        server.stop()


async def test_killed_senders_and_a_failing_platform_never_send_twice_nor_lose_a_message(
    fresh: bootstrap.Container,
    fresh_database_url: str,
    simulator: tuple[CountingSimulator, str],
    tmp_path: Path,
) -> None:
    platform, platform_url = simulator
    rng = random.Random(SEED)
    loop = asyncio.get_running_loop()
    timings: dict[str, float] = {}
    print(f"\nchaos seed {SEED} (CHAOS_SEED={SEED}: the same draws and kill intervals)")

    began = time.perf_counter()
    queued = await queue_messages(fresh, MESSAGES)
    timings["queue"] = time.perf_counter() - began
    began = time.perf_counter()
    await relay_all(fresh)
    timings["relay"] = time.perf_counter() - began
    depths = await queue_depths(fresh)
    assert sum(visible for visible, _, _ in depths.values()) == MESSAGES, depths

    env = {
        key: value
        for key, value in os.environ.items()
        if key not in ("REDIS_URL", "RATE_LIMITS", "CRM_PREVIOUS_MASTER_KEYS")
    } | {
        "DATABASE_URL": fresh_database_url,
        "CRM_MASTER_KEY": TEST_MASTER_KEY,
        "CRM_QUEUE": "postgres",
        "ONLYFANS_API_URL": platform_url,
        "ONLYFANS_TIMEOUT": "0.5",
        "RATE_LIMITER_ENABLED": "false",
        "SQS_VISIBILITY_TIMEOUT": str(VISIBILITY_TIMEOUT),
        "SQS_MAX_RECEIVE_COUNT": str(MAX_RECEIVE_COUNT),
        "LOG_LEVEL": "WARNING",
        "LOG_FORMAT": "json",
        "CRM_POOL_MIN_SIZE": "1",
        "CRM_POOL_MAX_SIZE": "6",
    }
    senders = Senders(env, tmp_path)
    began = time.perf_counter()
    deadline = loop.time() + SEND_CAP
    for slot in range(SENDERS):
        await senders.start(slot)
    next_kill = loop.time() + rng.uniform(*KILL_EVERY)
    next_report = loop.time() + 10
    try:
        while True:
            depths = await queue_depths(fresh)
            if settled(depths) or loop.time() > deadline:
                break
            if "first pass" not in timings and not any(v for v, _, _ in depths.values()):
                # Every message has been received at least once.
                timings["first pass"] = time.perf_counter() - began
                deadline = min(deadline, loop.time() + BACKOFF_TAIL + TAIL_MARGIN)
            senders.check_alive()
            if loop.time() >= next_kill:
                await senders.kill_one(rng)
                next_kill = loop.time() + rng.uniform(*KILL_EVERY)
            if loop.time() >= next_report:
                print(
                    f"  {time.perf_counter() - began:5.1f} s: {depths}, kills {senders.kills},"
                    f" delivered {len(platform.deliveries())}"
                )
                next_report = loop.time() + 10
            await asyncio.sleep(0.2)
    finally:
        await senders.stop()
    timings["send"] = time.perf_counter() - began
    depths = await queue_depths(fresh)
    if not settled(depths):
        left = await fresh.pool.fetch(
            "SELECT queue, receive_count, round(extract(epoch FROM visible_at - now())) AS in_s"
            " FROM queue_messages WHERE queue NOT LIKE '%.dlq' ORDER BY visible_at"
        )
        raise AssertionError(
            f"not settled after {timings['send']:.0f} s (first pass"
            f" {timings.get('first pass', math.inf):.0f} s): (visible, in flight, dead)"
            f" {depths}; left: {[tuple(row) for row in left]}"
        )

    # What happened, as the log, the dead-letter queues and the platform tell it.
    histories = await message_histories(fresh)
    dlq = await dead_lettered(fresh)
    deliveries = platform.deliveries()
    delivered = Counter(d.idempotency_key for d in deliveries)
    platform_ids = {d.idempotency_key: d.platform_message_id for d in deliveries}
    delivered_at = {d.idempotency_key: d.delivered_at for d in deliveries}

    assert set(delivered) <= set(queued), "the platform got a message nobody queued"
    twice = {message_id: n for message_id, n in delivered.items() if n > 1}
    assert not twice, f"delivered more than once: {twice}"

    for name in QUEUES:
        assert set(dlq[name]) <= {m for m, q in queued.items() if q == name}
        repeated = {message_id: n for message_id, n in dlq[name].items() if n > 1}
        assert not repeated, f"dead-lettered twice on {name}: {repeated}"
    in_dlq = set(dlq["high"]) | set(dlq["normal"])

    sent, failed, dlq_only, lost = set(), set(), set(), set()
    delivered_not_sent: dict[str, str] = {}
    sent_and_dlq: dict[str, datetime] = {}
    for message_id in queued:
        history = histories.get(message_id, [])
        types = [r.event_type for r in history]
        assert types[:2] == ["MessageQueued", "MessageDispatched"], (message_id, types)
        assert types.count("MessageDispatched") == 1, (message_id, types)
        assert types.count("MessageSent") <= 1, (message_id, types)
        if "MessageSent" in types:
            sent.add(message_id)
            assert delivered[message_id] == 1, f"{message_id} recorded sent, never delivered"
            [recorded] = [r for r in history if r.event_type == "MessageSent"]
            assert recorded.event.platform_message_id == platform_ids[message_id], message_id
            if message_id in in_dlq:
                # Its last receive recorded it sent, and its sender died before deleting it.
                sent_and_dlq[message_id] = recorded.recorded_at
            continue
        if "MessageFailed" in types:
            failed.add(message_id)
            [recorded] = [r for r in history if r.event_type == "MessageFailed"]
            assert recorded.event.reason, message_id
            assert message_id in in_dlq, f"{message_id} failed but not dead-lettered"
            if delivered[message_id]:
                delivered_not_sent[message_id] = recorded.event.reason
            continue
        if message_id in in_dlq:
            # Dead-lettered by the queue with no outcome recorded: its last receive's sender
            # was killed before it could record one.
            dlq_only.add(message_id)
            if delivered[message_id]:
                delivered_not_sent[message_id] = "dead-lettered, still dispatched"
            continue
        lost.add(message_id)

    events = senders.log_events()
    summary = {
        "messages": MESSAGES,
        "sent": len(sent),
        "failed (recorded, dead-lettered)": len(failed),
        "dead-lettered, no outcome recorded": len(dlq_only),
        "dlq total": len(in_dlq),
        "sent, and a copy dead-lettered": len(sent_and_dlq),
        "lost": len(lost),
        "delivered": len(deliveries),
        "delivered twice": len(twice),
        "duplicates prevented (Idempotent-Replayed answers)": sum(platform.replayed.values()),
        "messages that needed a replay": len(platform.replayed),
        "delivered but not recorded sent": len(delivered_not_sent),
        "platform answers": dict(sorted(platform.requests.items())),
        "kills": senders.kills,
        "sender processes started": senders.started,
        "sender log events": dict(events.most_common()),
        "seconds": {name: round(value, 1) for name, value in timings.items()},
    }
    print(json.dumps(summary, indent=2))
    if delivered_not_sent:
        print("delivered, not recorded sent:", json.dumps(delivered_not_sent, indent=2))
    if dlq_only or sent_and_dlq:
        print("kills:", ", ".join(senders.killed))
    for message_id, at in sorted(sent_and_dlq.items()):
        print(f"sent at {at:%H:%M:%S.%f}, yet dead-lettered: {message_id}")
        for line in senders.mentions(message_id):
            print(f"    {line}")
    for message_id in sorted(dlq_only):
        # Still "dispatched" in the log, so POST /messages/{id}/retry refuses it (not failed).
        at = delivered_at.get(message_id)
        print(
            f"dead-lettered with no outcome recorded: {message_id}"
            + (f" (delivered at {at:%H:%M:%S.%f})" if at else " (never delivered)")
        )
        for line in senders.mentions(message_id):
            print(f"    {line}")

    assert not lost, f"{len(lost)} messages neither sent, failed nor dead-lettered: {sorted(lost)}"
    assert len(sent) + len(failed) + len(dlq_only) == MESSAGES
    assert len(in_dlq) == len(failed) + len(dlq_only) + len(sent_and_dlq)
    assert senders.kills >= 10, "too few kills to mean anything"
    # Every delivery the sender never heard of (a timeout that delivered, a kill) was asked
    # again with the same key and recorded sent, unless that was its last receive: then the
    # recorded reason says it may have been delivered, or the queue dead-lettered it.
    for message_id, reason in delivered_not_sent.items():
        assert "may have been delivered" in reason or reason.startswith("dead-lettered"), (
            message_id,
            reason,
        )
    assert not events["sender record failed"], "a record failed in the sender (see its logs)"
