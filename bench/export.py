"""`crm export events` over a large log: export rate, bytes per event, a DuckDB query over it.

    uv run python bench/export.py                   # 1,000,000 events, embedded Postgres
    uv run python bench/export.py --events 200000   # a smaller log
    DATABASE_URL=postgresql://... uv run python bench/export.py   # a scratch database there

The log is bench/replay.py's (fans with every personal field set, updates, a conversation,
two messages with content, a dispatch, a deletion for every tenth fan; one tenant, personal
fields encrypted as ``adapters.bootstrap.build`` wires the store) with revenue added to each
fan's stream: a ``FanTransactionImported`` (kinds in turn, dated over the year before) and,
for every fourth fan, a ``FanPurchaseRecorded``; about 9 events per fan.
The export runs as `crm export events` runs it (``adapters.export.events.export_events``, its
default zstd compression), from an empty folder, with a cold key cache; then a second run that
finds nothing new. Then DuckDB reads the folder as examples/duckdb_report.py does (its
connection and its queries: events per type, revenue per UTC day with imports on the day they
happened), and the price per UTC day and tenant of the messages queued; each timed cold (first
query in a new connection; the files are in the OS cache, just written) and warm (the best of
three). Nothing asserts a timing.
"""

from __future__ import annotations

import argparse
import asyncio
import runpy
import secrets
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from _common import database_server, scratch_databases
from replay import Unit, build_units, fill

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
from domain.fan import TRANSACTION_KINDS, Fan

# The example's own code: what an analyst runs is what is timed.
REPORT = runpy.run_path(str(Path(__file__).resolve().parents[1] / "examples/duckdb_report.py"))
EVERYONE = {"tenant": None}
QUERIES: dict[str, tuple[str, dict[str, Any]]] = {
    "events per type": (REPORT["EVENTS_PER_TYPE"], EVERYONE),
    "revenue per day": (REPORT["REVENUE_PER_DAY"], EVERYONE),
    "price per day and tenant": (
        "SELECT day, tenant, count(*), sum(price_cents) FROM events"
        " WHERE event_type = 'MessageQueued' GROUP BY ALL ORDER BY ALL",
        {},
    ),
}


def with_revenue(units: list[Unit], events: int) -> list[Unit]:
    """The units, each fan's stream with its revenue appended, until ``events`` events."""
    start = datetime(2025, 12, 1, tzinfo=UTC)
    kept, total = [], 0
    for i, unit in enumerate(units, start=1):
        if total >= events:
            break
        write = unit.writes[0]
        fan: Any = None
        for event in write.events:
            fan = event.mutate(fan)
        assert isinstance(fan, Fan)
        when = start + timedelta(minutes=i * 97 % (365 * 24 * 60))
        kind = TRANSACTION_KINDS[i % len(TRANSACTION_KINDS)]
        fan.import_transaction(
            amount_cents=100 + i % 5000, kind=kind, occurred_at=when, transaction_key=f"t-{i}"
        )
        if i % 4 == 0:
            fan.record_purchase(500, f"bench-purchase-{i}")
        write.events.extend(fan.collect_events())
        kept.append(unit)
        total += unit.events
    return kept


def timed_query(folder: Path, sql: str, params: dict[str, Any]) -> tuple[float, float, int]:
    connection = REPORT["connect"](folder)
    started = time.perf_counter()
    rows = connection.execute(sql, params).fetchall()
    cold = time.perf_counter() - started
    warm = []
    for _ in range(3):
        started = time.perf_counter()
        connection.execute(sql, params).fetchall()
        warm.append(time.perf_counter() - started)
    connection.close()
    return cold, min(warm), len(rows)


async def run(args: argparse.Namespace) -> None:
    units = with_revenue(build_units(args.events), args.events)
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
                for name, (sql, params) in QUERIES.items():
                    cold, warm, rows = timed_query(target, sql, params)
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
