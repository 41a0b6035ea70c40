"""An analyst's projection through eventsourcing's ProjectionRunner over fancrm's log, beside
fancrm's own replay of the same log in the same run.

    DATABASE_URL=postgresql://... uv run python bench/replay_eventsourcing.py
    uv run python bench/replay_eventsourcing.py --events 100000   # embedded Postgres

One scratch database holds ``--events`` events (1,000,000) appended through the store as
bootstrap wires it (personal fields encrypted), the log of bench/replay.py (its ``build_units``
and ``fill``), sealed by the event chain (eventsourcing's notification ids are the chain's
numbers: adapters/postgres/event_store/notifications.py). Then, one after the other, each from
the start of the log to its end, with the replay's garbage-collector thresholds:

* ``fancrm bare read_all``: ``store.read_all`` in batches of ``--batch-size``, no projection;
* ``fancrm core, one pass``: bench/replay.py's job of that name, what ``crm projections
  rebuild --all`` runs (the core projections into fresh tables, their indexes at the end);
* ``eventsourcing ProjectionRunner``: ``ProjectionRunner(application_class=FancrmLog, ...)``
  with a projection counting events per type into an in-memory view (POPO) with tracking:
  the runner's own threads, the recorder's subscription, every event decoded as fancrm
  decodes it; with the master key (personal fields opened) and without it (left sealed);
* ``analytics.replay``: the same count as a function, through ``adapters.analytics.replay``.

Nothing asserts a timing: the script prints events per second of wall time.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import secrets
import time
import uuid
from collections import Counter
from typing import Any

import _common
from eventsourcing.persistence import Tracking
from eventsourcing.popo import POPOTrackingRecorder
from eventsourcing.projection import Projection, ProjectionRunner
from replay import as_rebuild, bare_reader, build_units, fill, rebuild_schema_of

from adapters import bootstrap
from adapters.analytics import replay
from adapters.config import Settings
from adapters.observability import configure_logging
from adapters.postgres.event_chain_store import PostgresEventChain
from adapters.postgres.eventsourcing_log import FancrmLog
from adapters.postgres.pool import create_pool
from adapters.postgres.projection_store import PostgresProjectionStore
from projections.runner import ProjectionGroupRunner, replay_gc


class CountsView(POPOTrackingRecorder):
    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.counts: Counter[str] = Counter()


class CountByType(Projection[CountsView]):
    def process_event(self, domain_event: Any, tracking: Tracking) -> None:
        self.view.counts[type(domain_event).__qualname__] += 1
        self.view.insert_tracking(tracking)


def through_runner(env: dict[str, str]) -> tuple[int, float]:
    started = time.perf_counter()
    with ProjectionRunner(
        application_class=FancrmLog, projection_class=CountByType, view_class=CountsView, env=env
    ) as runner:
        runner.wait(runner.app.recorder.max_notification_id(), timeout=3600)
        elapsed = time.perf_counter() - started
        return sum(runner.projection.view.counts.values()), elapsed


def through_replay(env: dict[str, str]) -> tuple[int, float]:
    counts: Counter[str] = Counter()

    def count(recorded: Any) -> None:
        counts[recorded.event_type] += 1

    started = time.perf_counter()
    replay(count, env=env)
    return sum(counts.values()), time.perf_counter() - started


async def until_the_end(step: Any) -> tuple[int, float]:
    events = 0
    started = time.perf_counter()
    while applied := await step():
        events += applied
    return events, time.perf_counter() - started


async def run(args: argparse.Namespace) -> None:
    units = build_units(args.events)
    master_key = secrets.token_urlsafe(32)
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
            fill_s = await fill(container.events, units, args.writers)
            total = sum(unit.events for unit in units)
            del units
            gc.collect()
            started = time.perf_counter()
            sealed = await PostgresEventChain(container.pool).catch_up()
            seal_s = time.perf_counter() - started
            await container.pool.execute("VACUUM ANALYZE events")
            await container.pool.execute("VACUUM ANALYZE event_chain")
        finally:
            await container.close()
        version_pool = await create_pool(url, min_size=1, max_size=1)
        version = await version_pool.fetchval("SHOW server_version")
        await version_pool.close()
        print(
            f"replay through eventsourcing: PostgreSQL {version} ({where}), {os.cpu_count()}"
            f" CPUs; {total:,} events appended in {fill_s:.1f} s ({total / fill_s:,.0f}/s),"
            f" {sealed:,} sealed in {seal_s:.1f} s ({sealed / seal_s:,.0f}/s)"
        )
        results: list[tuple[str, int, float]] = []
        with replay_gc():
            results.append(("fancrm bare read_all", *await _fancrm_bare(url, master_key, args)))
            results.append(("fancrm core, one pass", *await _fancrm_core(url, master_key, args)))
            env = {
                "DATABASE_URL": url,
                "CRM_MASTER_KEY": master_key,
                "PERSISTENCE_MODULE": "eventsourcing.popo",
            }
            no_key = {**env, "CRM_MASTER_KEY": ""}
            for name, job, job_env in (
                ("eventsourcing ProjectionRunner, key", through_runner, env),
                ("eventsourcing ProjectionRunner, no key", through_runner, no_key),
                ("analytics.replay (a function), key", through_replay, env),
            ):
                gc.collect()
                results.append((name, *await asyncio.to_thread(job, job_env)))
        for name, events, seconds in results:
            rate = events / seconds
            print(f"{name:<40} {events:>10,} events in {seconds:6.1f} s: {rate:8,.0f} events/s")


async def _fancrm_bare(url: str, master_key: str, args: argparse.Namespace) -> tuple[int, float]:
    container = await bootstrap.build(
        Settings.from_env({"CRM_MASTER_KEY": master_key}, database_url=url)
    )
    try:
        return await until_the_end(bare_reader(container.events, args.batch_size))
    finally:
        await container.close()


async def _fancrm_core(url: str, master_key: str, args: argparse.Namespace) -> tuple[int, float]:
    size = len(bootstrap.core_projections()) + 2
    container = await bootstrap.build(
        Settings.from_env(
            {"CRM_MASTER_KEY": master_key}, database_url=url, pool_min_size=size, pool_max_size=size
        )
    )
    schema = f"replay_{uuid.uuid4().hex[:8]}"
    projections = bootstrap.core_projections()
    await rebuild_schema_of(container.pool, schema, projections)
    store = PostgresProjectionStore(container.pool, container.events, url)
    group = ProjectionGroupRunner(store, projections, schema=schema, batch_size=args.batch_size)
    try:
        return await until_the_end(as_rebuild(group, container.pool, schema, projections))
    finally:
        await group.close()
        await store.close()
        await container.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--writers", type=int, default=4)
    parser.add_argument("--batch-size", type=int, default=5000)
    args = parser.parse_args()
    configure_logging("WARNING", json=False)
    asyncio.run(run(args))


if __name__ == "__main__":
    main()
