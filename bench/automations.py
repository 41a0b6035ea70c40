"""Sequences (issue 19): many steps falling due in the same minute, through the durable timers.

    uv run python bench/automations.py                       # 100,000 runs, embedded Postgres
    uv run python bench/automations.py --runs 10000          # fewer
    DATABASE_URL=postgresql://... uv run python bench/automations.py   # a scratch database there

Setup (not measured): a scratch database wired as ``adapters.bootstrap.build`` wires it; one
account with a sequence (trigger fanCreated, one step "Hi {{first_name}}, ..."); ``--runs``
fans (FanCreated, no conversation yet, as new fans are) and one run each, appended directly
(``Enrolment.enrol``: its step due at a moment spread evenly over ``--spread`` seconds (60)
after a base moment); the sequences projector caught up, so the timers view holds every run.

Measured: ``--workers`` AutomationWorkers (``fire_due_once`` in a loop, as ``run`` does) in
this process, on a clock that shows the base moment when measuring starts and runs at real
speed (so the first step is due at once and the last ``--spread`` s later), with the sequences
projector and the outbox relay running as tasks here too. Each step is one transaction: the
fan held (and its conversation opened), the message and its outbox row, the run's StepSent.

Printed: when every step was queued (committed with its outbox row) and when every message was
on the Postgres queue (``queue.stats("normal").visible``), in seconds from the first due time;
timer lateness p50 / p95 / max (the moment a step's append committed, on the worker's clock,
minus its due time); CPU seconds per 1,000 steps of this process (workers, projector, relay)
and of Postgres (the database's backends and the server's background processes).

Goal (from the issue): 100,000 steps due in the same minute all on the queue within 30 s of
it. Nothing here asserts a timing: the script prints figures.
"""

from __future__ import annotations

import argparse
import asyncio
import secrets
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _common import PgCpuMeter, database_server, percentile, pg_pids, scratch_databases

from adapters import bootstrap
from adapters.config import Settings
from adapters.observability import configure_logging
from application.context import CommandContext
from application.ports import StreamWrite
from application.sequence_queries import DueEnrolment
from application.sequences import CreateSequence, create_sequence
from domain.enrolment import Enrolment
from domain.fan import Fan
from domain.sequence_rules import Step, Trigger
from projections.runner import ProjectionRunner
from projections.sequences import SequencesProjection
from worker import automation_timers
from worker.automations import AutomationWorker
from worker.relay import run_relay

TENANT = "bench-automations"


def _write(aggregate: Fan | Enrolment, stream_type: str) -> StreamWrite:
    pending = aggregate.collect_events()
    return StreamWrite(aggregate.id, stream_type, pending, pending[0].originator_version - 1)


async def setup(
    container: bootstrap.Container, runs: int, spread: float, base: datetime
) -> dict[str, datetime]:
    """The fans and their runs; each run's due time by its stream."""
    ctx = CommandContext(tenant=TENANT, actor="bench", correlation_id="bench-automations")
    step = Step(content="Hi {{first_name|babe}}, welcome!")
    sequence = (
        await create_sequence(
            CreateSequence(name="Welcome", trigger=Trigger(type="fanCreated"), steps=(step,)),
            ctx,
            store=container.events,
            ids=container.ids,
        )
    ).sequence
    fan_ids = await container.ids.next_ids("fan", runs)
    due: dict[str, datetime] = {}
    for start in range(0, runs, 1000):
        writes = []
        for n, fan_id in enumerate(fan_ids[start : start + 1000], start):
            fan = Fan.register(fan_id=fan_id, tenant=TENANT, name=f"Fan {fan_id}")
            at = base + timedelta(seconds=spread * n / runs)
            run = Enrolment.enrol(
                sequence_id=sequence.sequence_id,
                fan_id=fan_id,
                tenant=TENANT,
                entry=1,
                trigger=f"bench:{fan_id}",
                now=base,
                first_due=at,
            )
            due[run.id] = at
            writes += [_write(fan, "fan"), _write(run, "enrolment")]
        await container.events.append_all(writes, metadata=ctx.metadata())
    runner = ProjectionRunner(container.projection_store, SequencesProjection(), batch_size=5000)
    await runner.catch_up()
    return due


async def measure(container: bootstrap.Container, args: argparse.Namespace) -> None:
    base = datetime(2030, 1, 1, tzinfo=UTC)
    started = time.perf_counter()
    due = await setup(container, args.runs, args.spread, base)
    print(f"setup: {args.runs:,} fans and runs in {time.perf_counter() - started:.1f} s")

    committed: dict[str, datetime] = {}
    clock_start = time.perf_counter()

    def clock() -> datetime:
        return base + timedelta(seconds=time.perf_counter() - clock_start)

    workers = [
        AutomationWorker(container, now=clock, timer_batch=args.timer_batch)
        for _ in range(args.workers)
    ]
    # The moment each step's append committed (on the worker's clock), by its run: noted
    # around the fast path and the slow one.
    batch = automation_timers.send_due_steps

    async def noted_batch(*args: Any, **kwargs: Any) -> Any:
        batched = await batch(*args, **kwargs)
        for queued in batched.queued:
            committed[queued.stream_id] = clock()
        return batched

    automation_timers.send_due_steps = noted_batch  # type: ignore[assignment]
    for worker in workers:
        fire = worker.timers._fire

        async def noted(run: DueEnrolment, now: datetime, fire: Any = fire) -> Any:
            outcome = await fire(run, now)
            if outcome is not None:
                committed[run.stream_id] = clock()
            return outcome

        worker.timers._fire = noted  # type: ignore[method-assign]

    stop = asyncio.Event()
    # Every pooled connection opened first, so that the meter knows each backend's process.
    held = [await container.pool.acquire() for _ in range(container.pool.get_max_size())]
    for conn in held:
        await container.pool.release(conn)
    meter = PgCpuMeter(await pg_pids(container.pool))
    cpu_before = meter.sample()
    clock_start = time.perf_counter()

    async def fire_loop(worker: AutomationWorker) -> None:
        while not stop.is_set():
            if not await worker.fire_due_once():
                await asyncio.sleep(0.05)

    async def project() -> None:
        runner = ProjectionRunner(container.projection_store, SequencesProjection())
        while not stop.is_set():
            if not await runner.run_batch():
                await asyncio.sleep(0.05)

    tasks = [asyncio.create_task(fire_loop(w)) for w in workers]
    tasks += [asyncio.create_task(project()), asyncio.create_task(run_relay(container, stop))]
    all_queued = on_queue = None
    while on_queue is None:
        await asyncio.sleep(0.2)
        elapsed = time.perf_counter() - clock_start
        if all_queued is None and len(committed) >= args.runs:
            all_queued = elapsed
        if (await container.queue.stats("normal")).visible >= args.runs:
            on_queue = elapsed
        if elapsed > args.timeout:
            print(f"gave up after {elapsed:.0f} s: {len(committed):,} steps queued")
            break
    cpu_after = meter.sample()
    stop.set()
    await asyncio.gather(*tasks, return_exceptions=True)

    late = [(committed[s] - due[s]).total_seconds() for s in committed]
    steps = max(len(committed), 1)
    mine = cpu_after[0] - cpu_before[0]
    pg = meter.delta(cpu_before[1], cpu_after[1])
    print(
        f"{args.runs:,} steps due over {args.spread:.0f} s, {args.workers} worker(s),"
        f" {args.timer_batch} runs per claim:"
        f" all queued at {_s(all_queued)}, all on the queue at {_s(on_queue)}"
        f" (from the first due time; the last fell due at {args.spread:.0f} s)"
    )
    print(
        f"lateness p50 {percentile(late, 0.5):.2f} s, p95 {percentile(late, 0.95):.2f} s,"
        f" max {max(late, default=float('nan')):.2f} s"
    )
    pg_text = "n/a" if pg is None else f"{pg / steps * 1000:.2f}"
    print(f"CPU per 1,000 steps: this process {mine / steps * 1000:.2f} s, postgres {pg_text} s")


def _s(value: float | None) -> str:
    return "never" if value is None else f"{value:.1f} s"


async def run(args: argparse.Namespace) -> None:
    configure_logging("WARNING")  # a log line per step would be measured too
    async with database_server() as (admin_url, where, _), scratch_databases(admin_url) as urls:
        settings = Settings.from_env(
            {"CRM_MASTER_KEY": secrets.token_urlsafe(32)},
            database_url=urls[0],
            pool_max_size=20,
        )
        container = await bootstrap.build(settings)
        print(f"postgres: {where}; run {uuid.uuid4().hex[:8]}")
        try:
            await measure(container, args)
        finally:
            await container.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=100_000)
    parser.add_argument("--spread", type=float, default=60.0, help="seconds the due times span")
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--timer-batch", type=int, default=200, help="runs per claim")
    parser.add_argument("--timeout", type=float, default=900.0)
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
