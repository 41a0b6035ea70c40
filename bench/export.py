"""`crm export events` over a large log: export rate, bytes per event, a DuckDB query over it.

    uv run python bench/export.py                   # 1,000,000 events, embedded Postgres
    uv run python bench/export.py --events 200000   # a smaller log
    DATABASE_URL=postgresql://... uv run python bench/export.py   # a scratch database there

The log is bench/replay.py's (fans with every personal field set, updates, a conversation,
two messages with content, a dispatch, a deletion for every tenth fan; about 8 events per
fan, one tenant, personal fields encrypted as ``adapters.bootstrap.build`` wires the store).
The export runs as `crm export events` runs it (``adapters.export.events.export_events``, its
default zstd compression), from an empty folder, with a cold key cache; then a second run that
finds nothing new. Then DuckDB reads the folder: rows per event type, and the price per UTC day
and tenant of the messages queued (the shape of a revenue query), each timed cold (first
query in a new connection) and warm (the best of three). Nothing asserts a timing.
"""

from __future__ import annotations

import argparse
import asyncio
import secrets
import tempfile
import time
from pathlib import Path

import duckdb
from _common import database_server, scratch_databases
from replay import build_units, fill

from adapters import bootstrap
from adapters.config import Settings
from adapters.crypto import MasterKey
from adapters.export.destinations import LocalFolder
from adapters.export.events import export_events
from adapters.export.pseudonyms import load_pseudonyms
from adapters.observability import configure_logging
from adapters.postgres.event_store import PostgresEventStore
from adapters.postgres.listen import Notifier
from adapters.postgres.personal_data import PersonalDataCodec
from adapters.postgres.subject_keys import SubjectKeys

QUERIES = {
    "events per type": "SELECT event_type, count(*) FROM {src} GROUP BY ALL ORDER BY 1",
    "price per day and tenant": (
        "SELECT day, tenant, count(*), sum(price_cents) FROM {src}"
        " WHERE event_type = 'MessageQueued' GROUP BY ALL ORDER BY ALL"
    ),
}


def timed_query(folder: Path, sql: str) -> tuple[float, float, int]:
    src = f"read_parquet('{folder}/**/*.parquet', hive_partitioning=true)"
    connection = duckdb.connect()
    started = time.perf_counter()
    rows = connection.sql(sql.format(src=src)).fetchall()
    cold = time.perf_counter() - started
    warm = []
    for _ in range(3):
        started = time.perf_counter()
        connection.sql(sql.format(src=src)).fetchall()
        warm.append(time.perf_counter() - started)
    connection.close()
    return cold, min(warm), len(rows)


async def run(args: argparse.Namespace) -> None:
    units = build_units(args.events)
    total = sum(unit.events for unit in units)
    master_key = secrets.token_urlsafe(32)
    async with database_server() as (admin_url, where, _), scratch_databases(admin_url, 1) as urls:
        settings = Settings.from_env(
            {"CRM_MASTER_KEY": master_key}, database_url=urls[0], pool_min_size=4, pool_max_size=4
        )
        container = await bootstrap.build(settings)
        try:
            fill_s = await fill(container.events, units, 4)
            await container.pool.execute("VACUUM ANALYZE events")
            print(f"log: {total} events ({len(units)} fans) appended in {fill_s:.1f} s; {where}")
            master = MasterKey.parse(master_key)
            # A cold key cache, as a `crm export events` process starts with.
            notifier = Notifier(container.pool)
            store = PostgresEventStore(
                container.pool,
                PersonalDataCodec(SubjectKeys(container.pool, master)),
                notifier,
            )
            pseudonyms = await load_pseudonyms(container.pool, [master])
            with tempfile.TemporaryDirectory(prefix="fancrm-export-") as folder:
                target = Path(folder)
                report = await export_events(
                    store, pseudonyms, LocalFolder(target), args.batch_size
                )
                print(report.summary())
                print(
                    f"export: {report.events / report.seconds:,.0f} events/s,"
                    f" {report.bytes / report.events:.1f} bytes/event (zstd),"
                    f" batch {args.batch_size}"
                )
                again = await export_events(store, pseudonyms, LocalFolder(target), args.batch_size)
                print(f"second run: {again.events} events, {again.seconds:.2f} s")
                for name, sql in QUERIES.items():
                    cold, warm, rows = timed_query(target, sql)
                    print(
                        f"duckdb {name}: {rows} rows, cold {cold * 1000:.0f} ms,"
                        f" warm {warm * 1000:.0f} ms"
                    )
            await notifier.close()
        finally:
            await container.close()


def main() -> None:
    parser = argparse.ArgumentParser(description="Parquet export rate and a DuckDB query.")
    parser.add_argument("--events", type=int, default=1_000_000, help="events, about (1000000)")
    parser.add_argument("--batch-size", type=int, default=10_000, help="events per read (10000)")
    args = parser.parse_args()
    if args.events < 1 or args.batch_size < 1:
        parser.error("--events and --batch-size must be at least 1")
    configure_logging("WARNING", json=False)
    asyncio.run(run(args))


if __name__ == "__main__":
    main()
