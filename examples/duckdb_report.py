"""Events per type and revenue per day, read with DuckDB from `crm export events --to DIR`.

    uv run crm export events --to exported/          # the log as Parquet (again: only what is new)
    uv run python examples/duckdb_report.py exported/
    uv run python examples/duckdb_report.py exported/ --tenant creator-1

DuckDB is one of fancrm's dev dependencies (``uv sync`` installs it); elsewhere,
``pip install duckdb``. Nothing here needs fancrm's code or database: only the files, as a
warehouse would have them (hive partitions ``day=YYYY-MM-DD/type=EventType/``).

Revenue is what fans paid: ``FanPurchaseRecorded`` (a PPV message bought, a pledge) on the
day it was recorded, and ``FanTransactionImported`` (an earnings export: subscriptions, tips,
...) on the day it happened, which its ``data`` holds as ``occurred_at``. ``MessagePurchased``
is left out: a PPV purchase records it beside ``FanPurchaseRecorded``, so counting both would
count the purchase twice. Days are UTC days.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import duckdb

EVENTS_PER_TYPE = """
SELECT event_type, count(*) AS events FROM events
WHERE $tenant IS NULL OR tenant = $tenant
GROUP BY ALL ORDER BY 1
"""

# `type` is the hive partition: filtering on it lets DuckDB skip every other type's files.
REVENUE_PER_DAY = """
WITH revenue AS (
    SELECT tenant, recorded_at AS paid_at, amount_cents, false AS imported
    FROM events WHERE type = 'FanPurchaseRecorded'
    UNION ALL
    SELECT tenant, CAST(json_extract_string(data, '$.occurred_at') AS TIMESTAMPTZ),
           amount_cents, true
    FROM events WHERE type = 'FanTransactionImported'
)
SELECT tenant,
       CAST(paid_at AS DATE) AS day,
       coalesce(sum(amount_cents) FILTER (WHERE NOT imported), 0) AS purchases_cents,
       coalesce(sum(amount_cents) FILTER (WHERE imported), 0) AS imported_cents,
       sum(amount_cents) AS total_cents,
       count(*) AS payments
FROM revenue
WHERE $tenant IS NULL OR tenant = $tenant
GROUP BY ALL
ORDER BY ALL
"""


def connect(folder: Path) -> duckdb.DuckDBPyConnection:
    """A connection where ``events`` is every exported file, and days are UTC days."""
    files = folder / "**" / "*.parquet"
    if not any(folder.rglob("*.parquet")):
        raise SystemExit(f"no Parquet files under {folder}: run `crm export events --to DIR`")
    connection = duckdb.connect()
    connection.execute("SET TimeZone = 'UTC'")
    # union_by_name: files written before a column was added still read, with it NULL.
    # A view cannot take a parameter: the path goes in as a quoted SQL string.
    quoted = "'" + str(files).replace("'", "''") + "'"
    connection.execute(
        f"CREATE VIEW events AS SELECT * FROM read_parquet({quoted}, hive_partitioning = true,"
        " union_by_name = true)"
    )
    return connection


def events_per_type(
    connection: duckdb.DuckDBPyConnection, tenant: str | None = None
) -> list[tuple[str, int]]:
    return connection.execute(EVENTS_PER_TYPE, {"tenant": tenant}).fetchall()


def revenue_per_day(
    connection: duckdb.DuckDBPyConnection, tenant: str | None = None
) -> list[tuple[str, object, int, int, int, int]]:
    return connection.execute(REVENUE_PER_DAY, {"tenant": tenant}).fetchall()


def print_table(title: str, header: tuple[str, ...], rows: list[tuple[object, ...]]) -> None:
    cells = [header, *[tuple(str(value) for value in row) for row in rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    print(title)
    for row in cells:
        # Text to the left, numbers to the right, as a spreadsheet shows them.
        print(
            "  ".join(
                c.rjust(w) if c.isdigit() else c.ljust(w) for c, w in zip(row, widths, strict=True)
            )
        )
    print()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("folder", type=Path, help="the folder `crm export events --to` wrote")
    parser.add_argument("--tenant", help="one creator account's revenue only")
    args = parser.parse_args(argv)
    connection = connect(args.folder)
    print_table(
        "events per type", ("event_type", "events"), events_per_type(connection, args.tenant)
    )
    print_table(
        "revenue per UTC day (cents)",
        ("tenant", "day", "purchases", "imported", "total", "payments"),
        revenue_per_day(connection, args.tenant),
    )


if __name__ == "__main__":
    main(sys.argv[1:])
